#!/bin/sh
# `make demo`: one household of five through the whole card round, through the command line
# (python -m enrollment) against a real server on a free loopback port and a throw-away SQLite
# store; prints every command and its answer, then the SMS the server delivered. Usage:
#   sh enrollment/demo.sh PYTHON
set -eu
PY=${1:-.venv/bin/python}
dir=$(mktemp -d "${TMPDIR:-/tmp}/amayesh-demo.XXXXXX")
pid=""
finish() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" || true
	fi
	rm -rf "$dir"
}
trap finish EXIT
trap 'exit 130' INT TERM

"$PY" -m enrollment.demo "$dir"
. "$dir/demo.env"

"$PY" server.py --listen 127.0.0.1:0 --store "sqlite:///$dir/amayesh.db" \
	--tokens-file "$dir/tokens.json" --enrollment-matcher-token "$STATION_TOKEN" \
	--sms-file "$dir/sms-outbox.jsonl" --sms-interval-s 1 --max-workers 4 \
	>"$dir/server.out" 2>"$dir/server.err" &
pid=$!
waited=0
until grep -q '^amayesh listening on ' "$dir/server.out" 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 120 ]; then
		echo "demo: the server did not start:" >&2
		cat "$dir/server.err" >&2
		exit 1
	fi
	sleep 1
	waited=$((waited + 1))
done
addr=$(sed -n 's/^amayesh listening on //p' "$dir/server.out")
echo "== server listening on $addr (store $dir/amayesh.db)"

# run ROLE ARGS...: one CLI command with the token of ROLE, echoed first.
run() {
	role=$1
	shift
	echo
	echo "\$ python -m enrollment $*    # as $role"
	case $role in
	admin) token=$ADMIN_TOKEN ;;
	caseworker) token=$CASEWORKER_TOKEN ;;
	approver) token=$APPROVER_TOKEN ;;
	*) echo "demo: unknown role $role" >&2 && exit 2 ;;
	esac
	"$PY" -m enrollment --server "$addr" --token "$token" "$@"
}

run admin add-office "$OFFICE" "پردیسان قم" 02537001122 --capacity 12
run admin open-round "$YEAR" "$FIRST" "$LAST"
run caseworker import "$dir/households.csv" --year "$YEAR" | tee "$dir/import.out"
app=$(sed -n 's/.*, file \([0-9][0-9]*\)$/\1/p' "$dir/import.out")
run caseworker recall "$app" --note "the head answered the office's call; he will wait for the SMS"
run caseworker schedule "$app"
run caseworker pay "$app" R-000187
run caseworker documents "$app"
run caseworker capture "$app" "$dir/captures"
run caseworker details "$app" "$dir/details.csv"
run caseworker submit "$app"
run approver inbox ministry
run approver approve "$app" --reason "documents and biometrics in order"
run caseworker issue "$app"
run caseworker deliver "$app"
run caseworker show "$app"
run caseworker audit "$app"
run caseworker report --from "$FIRST" --to "$LAST"

# The dispatcher delivers the outbox every second: wait for the three messages.
waited=0
while [ "$(wc -l <"$dir/sms-outbox.jsonl" 2>/dev/null || echo 0)" -lt 3 ] && [ "$waited" -lt 15 ]; do
	sleep 1
	waited=$((waited + 1))
done
echo
echo "== SMS outbox ($dir/sms-outbox.jsonl)"
cat "$dir/sms-outbox.jsonl"
echo
echo "== stopping the server"
kill -TERM "$pid"
wait "$pid" || true
pid=""
tail -n 1 "$dir/server.out"

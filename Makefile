# amayesh: the README's commands. Recipes are plain POSIX sh.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv proto run demo test bench reliability clean

venv: $(VENV)/.stamp

# Re-installs only when pyproject.toml changes; otherwise `make venv` is a no-op.
$(VENV)/.stamp: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# gRPC code is generated from proto/ by grpcio-tools into ./amayesh/v1 (ignored by git).
PROTOS := $(wildcard proto/amayesh/v1/*.proto)
GENERATED := $(PROTOS:proto/%.proto=%_pb2.py)

proto: $(GENERATED)

amayesh/v1/%_pb2.py: proto/amayesh/v1/%.proto $(VENV)/.stamp
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. $<
	touch amayesh/__init__.py amayesh/v1/__init__.py

# Development only: production sets a token file (--tokens-file) and a key file outside ./data.
AMAYESH_DEV_TOKEN ?= dev-only-token

run: venv proto
	AMAYESH_DEV_TOKEN=$(AMAYESH_DEV_TOKEN) $(BIN)/python server.py --listen 127.0.0.1:50051 \
		--store sqlite:///data/amayesh.db

# One household of five through the card round via `python -m enrollment`, against a server on a
# free port with a throw-away store; prints each command, its answer and the SMS sent.
demo: venv proto
	sh enrollment/demo.sh $(BIN)/python

test: venv proto
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: venv proto
	$(BIN)/python -m pytest benchmarks -q --benchmark-only
	$(BIN)/python -m benchmarks iris --gallery 1000000 --max-shift 8 --json
	# Needs the optional NBIS peer (benchmarks/peers/README.md); skipped with a message otherwise.
	-$(BIN)/python -m benchmarks finger --json \
		--data ../shared/data/fingerprint/fvc2002_db1_b --data ../shared/data/fingerprint/fvc2002_db3_b
	# Indexed against exhaustive 1:N on a million synthetic fingers (about half an hour, ~12 GB RAM).
	$(BIN)/python -m benchmarks.finger_index --gallery 1000000 --probes 40 --no-rebuild --json
	# The service over gRPC: 1M iris codes + 1M finger templates (about an hour, ~16 GB RAM).
	$(BIN)/python -m benchmarks service --iris-persons 500000 --finger-persons 100000 --json

# Full sizes: 20 clients x 500 calls, 20 kill -9 rounds (make test runs the same suite reduced).
reliability: venv proto
	AMAYESH_RELIABILITY_FULL=1 $(BIN)/python -m pytest -q -s tests/reliability

# Leaves .venv in place; remove it by hand for a fresh environment.
clean:
	rm -rf build amayesh *.egg-info .pytest_cache .ruff_cache .mypy_cache .benchmarks bench-out
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

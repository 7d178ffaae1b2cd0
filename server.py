"""amayesh gRPC server: the service's entry point.

    python server.py --listen 127.0.0.1:50051 --store sqlite:///data/amayesh.db

Start-up reads like the request path in DESIGN.md: settings -> store -> gRPC server (health
NOT_SERVING) -> galleries loaded from the store -> SERVING. Calls that arrive while the galleries
load get UNAVAILABLE. SIGTERM/SIGINT: health goes NOT_SERVING, in-flight calls get a grace period.

The same server serves the card round (``amayesh.v1.Enrollment``, enrollment/service.py): its
tables (``enr_*``) live in the same store, and its workflow reaches the matching service through
this server's own address, as any client does, with a station token (``--enrollment-matcher-token``;
the development token in development). SMS the workflow queues are delivered by a background
thread through a file sender (``--sms-file``, one JSON line per message) every ``--sms-interval-s``.

Every flag can also be set from the environment (AMAYESH_LISTEN, AMAYESH_STORE,
AMAYESH_STORE_KEY_FILE, AMAYESH_DEV_TOKEN, AMAYESH_TOKENS_FILE, AMAYESH_THRESHOLDS,
AMAYESH_TLS_CERT, AMAYESH_TLS_KEY, AMAYESH_TLS_CLIENT_CA, AMAYESH_METRICS_LISTEN,
AMAYESH_MAX_WORKERS, AMAYESH_MAX_MESSAGE_MB, AMAYESH_ENROLLMENT_MATCHER_TOKEN, AMAYESH_SMS_FILE,
AMAYESH_SMS_INTERVAL_S, AMAYESH_SNAPSHOT, AMAYESH_SNAPSHOT_INTERVAL_S); a flag on the command line
wins.

Galleries start from a snapshot (matcher/snapshot.py: the in-memory galleries sealed with the
store key, beside a SQLite store as ``<db>.snapshot`` unless ``--snapshot PATH`` or
``--snapshot none``), brought up to date with the store before SERVING; without a usable one they
are rebuilt from the store. A fresh snapshot is written in the background after a rebuild or a
catch-up, every ``--snapshot-interval-s`` while enrolments change the galleries, and at shutdown.

The store key (AES-256, see matcher/crypto.py) comes from --store-key-file or AMAYESH_STORE_KEY.
With neither, a SQLite store gets a development key generated beside the database file
(``<db>.key``, mode 0600); production keeps the key elsewhere.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_STORE = "sqlite:///data/amayesh.db"
SHUTDOWN_GRACE_S = 5.0
# In-flight RPCs allowed per worker thread before new calls get RESOURCE_EXHAUSTED (back-pressure).
CONCURRENT_RPCS_PER_WORKER = 4
STORE_SCHEMES = ("sqlite", "postgresql")
MATCHER_SERVICE = "amayesh.v1.Matcher"
ENROLLMENT_SERVICE = "amayesh.v1.Enrollment"
DEFAULT_SMS_FILE = "data/sms-outbox.jsonl"
DEFAULT_SMS_INTERVAL_S = 10.0
DEFAULT_SNAPSHOT_INTERVAL_S = 600.0


@dataclass(frozen=True)
class Settings:
    """Deployment settings, built once at start-up and passed down; nothing reads globals."""

    listen: str  # HOST:PORT; port 0 picks a free port
    store: str  # SQLAlchemy-style URL: sqlite:///relative.db, sqlite:////abs.db, postgresql://...
    dev_token: str | None  # development bearer token (administrator); development and tests only
    max_workers: int  # request thread pool size
    max_message_mb: int  # gRPC send/receive message limit, MiB
    max_concurrent_rpcs: int  # back-pressure: RPCs beyond this get RESOURCE_EXHAUSTED
    tokens_file: str | None = None  # JSON file of token digests and roles (matcher/auth.py)
    store_key_file: str | None = None  # AES-256 key of the store (matcher/crypto.py)
    thresholds: str | None = None  # calibration file; None = the one shipped in the package
    tls_cert: str | None = None  # server certificate chain (PEM); with tls_key, TLS is on
    tls_key: str | None = None
    tls_client_ca: str | None = None  # CA of client certificates: set = mutual TLS required
    metrics_listen: str | None = None  # HOST:PORT of the Prometheus /metrics endpoint; None = off
    # Token the card workflow calls the matching service with (a station's); None = dev_token.
    enrollment_matcher_token: str | None = None
    sms_file: str = DEFAULT_SMS_FILE  # where queued SMS are delivered, one JSON line each
    sms_interval_s: float = DEFAULT_SMS_INTERVAL_S  # seconds between SMS delivery passes
    snapshot: str | None = None  # gallery snapshot file; None = none (set for SQLite by default)
    snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _split_host_port(listen: str) -> tuple[str, int]:
    """'127.0.0.1:50051' -> ('127.0.0.1', 50051); '[::]:0' -> ('[::]', 0)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host, int(port_text)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Build Settings from the command line (argv, default sys.argv[1:]) and AMAYESH_* variables.

    Environment variables are read at call time and give the defaults; flags override them.
    Invalid values exit with status 2 and a usage message, like any argparse error.
    """
    env = os.environ
    parser = argparse.ArgumentParser(prog="server.py", description="amayesh gRPC matching server")
    parser.add_argument(
        "--listen",
        default=env.get("AMAYESH_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT to listen on; port 0 picks a free port (env AMAYESH_LISTEN)",
    )
    parser.add_argument(
        "--store",
        default=env.get("AMAYESH_STORE", DEFAULT_STORE),
        help="durable store URL, sqlite:///path.db or postgresql://... (env AMAYESH_STORE)",
    )
    parser.add_argument(
        "--dev-token",
        default=env.get("AMAYESH_DEV_TOKEN"),
        help="development bearer token with the administrator role (env AMAYESH_DEV_TOKEN)",
    )
    for flag, var, text in (
        ("--tokens-file", "AMAYESH_TOKENS_FILE", "JSON file of token digests and roles"),
        ("--store-key-file", "AMAYESH_STORE_KEY_FILE", "file holding the store's AES-256 key"),
        ("--thresholds", "AMAYESH_THRESHOLDS", "threshold calibration JSON (default: shipped)"),
        ("--tls-cert", "AMAYESH_TLS_CERT", "server certificate chain, PEM (enables TLS)"),
        ("--tls-key", "AMAYESH_TLS_KEY", "server private key, PEM"),
        ("--tls-client-ca", "AMAYESH_TLS_CLIENT_CA", "client CA, PEM (requires mutual TLS)"),
        ("--metrics-listen", "AMAYESH_METRICS_LISTEN", "HOST:PORT for Prometheus /metrics"),
        (
            "--enrollment-matcher-token",
            "AMAYESH_ENROLLMENT_MATCHER_TOKEN",
            "station token the card workflow calls the matching service with (default: dev token)",
        ),
    ):
        parser.add_argument(flag, default=env.get(var), help=f"{text} (env {var})")
    parser.add_argument(
        "--max-workers",
        type=_positive_int,
        default=env.get("AMAYESH_MAX_WORKERS", "8"),
        help="request thread pool size (env AMAYESH_MAX_WORKERS)",
    )
    parser.add_argument(
        "--max-message-mb",
        type=_positive_int,
        default=env.get("AMAYESH_MAX_MESSAGE_MB", "16"),
        help="largest gRPC message sent or received, MiB (env AMAYESH_MAX_MESSAGE_MB)",
    )
    parser.add_argument(
        "--sms-file",
        default=env.get("AMAYESH_SMS_FILE", DEFAULT_SMS_FILE),
        help="file the SMS outbox is delivered to, one JSON line a message (env AMAYESH_SMS_FILE)",
    )
    parser.add_argument(
        "--sms-interval-s",
        type=_positive_float,
        default=env.get("AMAYESH_SMS_INTERVAL_S", str(DEFAULT_SMS_INTERVAL_S)),
        help="seconds between SMS delivery passes (env AMAYESH_SMS_INTERVAL_S)",
    )
    parser.add_argument(
        "--snapshot",
        default=env.get("AMAYESH_SNAPSHOT"),
        help="gallery snapshot file for fast start-up; 'none' for none (default: <db>.snapshot "
        "beside a SQLite store, none for PostgreSQL) (env AMAYESH_SNAPSHOT)",
    )
    parser.add_argument(
        "--snapshot-interval-s",
        type=_positive_float,
        default=env.get("AMAYESH_SNAPSHOT_INTERVAL_S", str(DEFAULT_SNAPSHOT_INTERVAL_S)),
        help="seconds between snapshots while the galleries change "
        "(env AMAYESH_SNAPSHOT_INTERVAL_S)",
    )
    args = parser.parse_args(argv)

    try:
        _split_host_port(args.listen)
    except ValueError as error:
        parser.error(str(error))
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_client_ca and not args.tls_cert:
        parser.error("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
    scheme = args.store.partition("://")[0].partition("+")[0]
    if "://" not in args.store or scheme not in STORE_SCHEMES:
        parser.error(f"store URL must start with sqlite:// or postgresql://, got {args.store!r}")

    return Settings(
        listen=args.listen,
        store=args.store,
        dev_token=args.dev_token or None,
        tokens_file=args.tokens_file or None,
        store_key_file=args.store_key_file or None,
        thresholds=args.thresholds or None,
        tls_cert=args.tls_cert or None,
        tls_key=args.tls_key or None,
        tls_client_ca=args.tls_client_ca or None,
        metrics_listen=args.metrics_listen or None,
        enrollment_matcher_token=args.enrollment_matcher_token or None,
        sms_file=args.sms_file,
        sms_interval_s=args.sms_interval_s,
        snapshot=_snapshot_path(args.snapshot, args.store),
        snapshot_interval_s=args.snapshot_interval_s,
        max_workers=args.max_workers,
        max_message_mb=args.max_message_mb,
        max_concurrent_rpcs=args.max_workers * CONCURRENT_RPCS_PER_WORKER,
    )


def _sqlite_file(store: str) -> Path | None:
    prefix = "sqlite:///"
    if not store.startswith(prefix):
        return None
    path = store[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def sqlite_path(settings: Settings) -> Path | None:
    return _sqlite_file(settings.store)


def _snapshot_path(flag: str | None, store: str) -> str | None:
    if flag is not None and flag.strip():
        return None if flag.strip().lower() == "none" else flag
    db = _sqlite_file(store)
    return str(db.with_name(db.name + ".snapshot")) if db is not None else None


class Snapshots:
    """Writes the galleries' snapshot in a background thread: once now if asked, then every
    ``interval_s`` when enrolments changed the galleries, and a last time at :meth:`stop`."""

    def __init__(self, engine: Any, path: str, interval_s: float) -> None:
        self.engine, self.path, self.interval_s = engine, path, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amayesh-snapshot", daemon=True)
        self._now = False

    def start(self, now: bool) -> None:
        self._now = now
        self._thread.start()

    def _save(self) -> None:
        try:
            r = self.engine.save_snapshot(self.path)
        except Exception as error:  # noqa: BLE001  (a failed snapshot costs start-up time only)
            print(f"amayesh: snapshot not written: {error}", file=sys.stderr, flush=True)
            return
        print(
            f"amayesh snapshot of {r.persons} persons written to {self.path} "
            f"({r.bytes / 2**20:.0f} MiB, {r.seconds:.1f} s; "
            f"changes waited {r.changes_blocked_s:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    def _run(self) -> None:
        if self._now:
            self._save()
        while not self._stop.wait(self.interval_s):
            if self.engine.changes_since_snapshot:
                self._save()

    def stop(self) -> None:
        """Stop the thread; write a last snapshot if the galleries changed since the previous."""
        self._stop.set()
        self._thread.join()
        if self.engine.changes_since_snapshot:
            self._save()


def prepare_store_location(settings: Settings) -> None:
    """Create the parent folder of a SQLite store file."""
    path = sqlite_path(settings)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def store_key(settings: Settings) -> bytes:
    """The store's key: the key file, else AMAYESH_STORE_KEY, else a development key beside a
    SQLite database (generated on first use)."""
    from matcher.crypto import KEY_ENV, generate_key_file, load_key

    if settings.store_key_file:
        return load_key(settings.store_key_file)
    if os.environ.get(KEY_ENV):
        return load_key(None)
    path = sqlite_path(settings)
    if path is None:
        raise ValueError(
            f"the store needs a key: --store-key-file FILE or {KEY_ENV} (32 bytes, hex or base64)"
        )
    key_path = path.with_name(path.name + ".key")
    if key_path.exists():
        return load_key(key_path)
    print(f"amayesh: generated a development store key at {key_path}", file=sys.stderr, flush=True)
    return generate_key_file(key_path)


def build_server(
    settings: Settings, service: Any = None, enrollment: Any = None
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create and bind (not start) the gRPC server; ``service`` is the matcher's servicer,
    ``enrollment`` the card workflow's (either may be None).

    Returns (server, bound_port, health_servicer). The bound port is the real one when
    settings.listen asks for port 0. Health starts with no status set; main() sets SERVING once
    the server has started.
    """
    max_bytes = settings.max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=settings.max_workers, thread_name_prefix="amayesh-rpc"
        ),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
        ],
    )

    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    service_names = [
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    if service is not None:
        from amayesh.v1 import matcher_pb2, matcher_pb2_grpc

        matcher_pb2_grpc.add_MatcherServicer_to_server(service, server)
        service_names.append(matcher_pb2.DESCRIPTOR.services_by_name["Matcher"].full_name)
    if enrollment is not None:
        from amayesh.v1 import enrollment_pb2, enrollment_pb2_grpc

        enrollment_pb2_grpc.add_EnrollmentServicer_to_server(enrollment, server)
        service_names.append(enrollment_pb2.DESCRIPTOR.services_by_name["Enrollment"].full_name)
    reflection.enable_server_reflection(service_names, server)

    # Older grpcio returns 0 on a failed bind, newer raises RuntimeError; handle both the same.
    try:
        if settings.tls_cert and settings.tls_key:
            client_ca = (
                Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
            )
            creds = grpc.ssl_server_credentials(
                [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            port = server.add_secure_port(settings.listen, creds)
        else:
            port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {settings.listen}: {error}") from error
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return server, port, health_servicer


def open_service(settings: Settings) -> Any:
    """Store, thresholds, engine (empty galleries) and the servicer, ready to be served."""
    from matcher.auth import Authenticator
    from matcher.engine import Engine
    from matcher.service import MatcherService
    from matcher.store import Store
    from matcher.thresholds import Thresholds

    store = Store.open(settings.store, store_key(settings))
    engine = Engine(store, Thresholds.load(settings.thresholds))
    auth = Authenticator.from_settings(settings.dev_token, settings.tokens_file)
    if not len(auth):
        print(
            "amayesh: no tokens configured: every call will be refused", file=sys.stderr, flush=True
        )
    return MatcherService(engine, auth, settings.store.partition(":")[0])


def open_enrollment(settings: Settings, auth: Any) -> Any:
    """The card workflow's store (same URL, ``enr_*`` tables) and its servicer, not yet started."""
    from enrollment.service import EnrollmentService
    from enrollment.store import EnrollmentStore

    return EnrollmentService(EnrollmentStore.open(settings.store, key=store_key(settings)), auth)


def own_address(settings: Settings, port: int) -> str:
    """Where this server's own clients reach it: the listen host (loopback for a wildcard)."""
    host, _ = _split_host_port(settings.listen)
    if host in ("0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def start_enrollment(settings: Settings, enrollment: Any, port: int) -> tuple[Any, Any]:
    """Give the servicer its workflow, whose MatcherClient calls this server, and start the SMS
    dispatcher. Returns (client, dispatcher) for shutdown. Call once the galleries are loaded."""
    from enrollment.sms import Dispatcher, FileSender, Outbox
    from enrollment.workflow import Workflow
    from matcher.client import TLS, MatcherClient

    token = settings.enrollment_matcher_token or settings.dev_token
    if not token:
        print(
            "amayesh: no --enrollment-matcher-token (or dev token): card captures will be refused",
            file=sys.stderr,
            flush=True,
        )
    tls = None
    if settings.tls_cert and settings.tls_key:
        # The server's own certificate chain as the trust root; under mutual TLS its own pair as
        # the client certificate (the client CA must trust the server certificate's issuer).
        cert = Path(settings.tls_cert).read_bytes()
        key = Path(settings.tls_key).read_bytes()
        mutual = settings.tls_client_ca is not None
        tls = TLS(cert, cert if mutual else None, key if mutual else None)
    client = MatcherClient(
        own_address(settings, port),
        token=token or "",
        tls=tls,
        max_message_mb=settings.max_message_mb,
    )
    enrollment.start(Workflow(enrollment.store, client))
    sms_file = Path(settings.sms_file)
    sms_file.parent.mkdir(parents=True, exist_ok=True)
    dispatcher = Dispatcher(Outbox(enrollment.store, FileSender(sms_file)), settings.sms_interval_s)
    dispatcher.start()
    return client, dispatcher


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    prepare_store_location(settings)
    from matcher.errors import MatcherError

    try:
        service = open_service(settings)
        enrollment = open_enrollment(settings, service.auth)
        server, port, health_servicer = build_server(settings, service, enrollment)
    except (OSError, ValueError, MatcherError) as error:
        print(f"amayesh: {error}", file=sys.stderr, flush=True)
        return 1

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    server.start()
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    health_servicer.set("", not_serving)
    health_servicer.set(MATCHER_SERVICE, not_serving)
    health_servicer.set(ENROLLMENT_SERVICE, not_serving)
    report = service.engine.load(snapshot_path=settings.snapshot)
    if settings.snapshot and report.note:
        why = (
            f"no gallery snapshot at {settings.snapshot} yet: galleries built from the store"
            if not Path(settings.snapshot).exists()
            else f"gallery snapshot not used: {report.note}"
        )
        print(f"amayesh: {why}", file=sys.stderr, flush=True)
    service.ready.set()
    service.metrics.set_counts(service.engine.counts())
    if settings.metrics_listen:
        mport = service.metrics.serve(settings.metrics_listen)
        print(f"amayesh metrics on port {mport} (/metrics)", file=sys.stderr, flush=True)
    resumed = service.dedup.resume()
    if resumed:
        print(f"amayesh resumed dedup jobs {', '.join(resumed)}", file=sys.stderr, flush=True)
    counts = service.engine.counts()
    caught_up = (
        f"; {report.persons_read} read from the store, {report.persons_dropped} dropped"
        if report.source == "snapshot"
        else ""
    )
    print(
        f"amayesh loaded {counts['persons']} persons ({counts['fingers']} fingers, "
        f"{counts['irises']} irises) from the {report.source}{caught_up} in {report.seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    try:
        client, dispatcher = start_enrollment(settings, enrollment, port)
    except (OSError, ValueError) as error:
        print(f"amayesh: {error}", file=sys.stderr, flush=True)
        server.stop(grace=None).wait()
        return 1
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(MATCHER_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(ENROLLMENT_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    snapshots = None
    if settings.snapshot:
        snapshots = Snapshots(service.engine, settings.snapshot, settings.snapshot_interval_s)
        snapshots.start(
            now=report.source == "store" or bool(report.persons_read + report.persons_dropped)
        )

    host, _ = _split_host_port(settings.listen)
    print(f"amayesh listening on {host}:{port}", flush=True)
    plain = "" if settings.tls_cert else "-plaintext "
    auth = '-H "authorization: Bearer $TOKEN" '
    print(f"try: grpcurl {plain}{host}:{port} list", flush=True)
    print(f"     grpcurl {plain}{auth}{host}:{port} amayesh.v1.Matcher/GetInfo", flush=True)

    # Event.wait with a timeout returns on signals promptly; a bare wait() can block them.
    while not stop_requested.wait(timeout=1.0):
        pass

    # Tell load balancers first, then let in-flight calls finish within the grace period.
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=SHUTDOWN_GRACE_S).wait()
    dispatcher.stop()
    client.close()
    enrollment.store.close()
    service.dedup.stop()  # workers stop at the next person; their checkpoints hold
    if snapshots is not None:
        snapshots.stop()  # after the calls drained: the last changes are in it
    service.engine.store.close()
    print("amayesh stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

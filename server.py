"""amayesh gRPC server: the service's entry point.

    python server.py --listen 127.0.0.1:50051 --store sqlite:///data/amayesh.db

Start-up reads like the request path in DESIGN.md: settings -> store -> gRPC server (health
NOT_SERVING) -> galleries loaded from the store -> SERVING. Calls that arrive while the galleries
load get UNAVAILABLE. SIGTERM/SIGINT: health goes NOT_SERVING, in-flight calls get a grace period.

Every flag can also be set from the environment (AMAYESH_LISTEN, AMAYESH_STORE,
AMAYESH_STORE_KEY_FILE, AMAYESH_DEV_TOKEN, AMAYESH_TOKENS_FILE, AMAYESH_THRESHOLDS,
AMAYESH_TLS_CERT, AMAYESH_TLS_KEY, AMAYESH_TLS_CLIENT_CA, AMAYESH_METRICS_LISTEN,
AMAYESH_MAX_WORKERS, AMAYESH_MAX_MESSAGE_MB); a flag on the command line wins.

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
import time
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
        max_workers=args.max_workers,
        max_message_mb=args.max_message_mb,
        max_concurrent_rpcs=args.max_workers * CONCURRENT_RPCS_PER_WORKER,
    )


def sqlite_path(settings: Settings) -> Path | None:
    prefix = "sqlite:///"
    if not settings.store.startswith(prefix):
        return None
    path = settings.store[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


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
    settings: Settings, service: Any = None
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create and bind (not start) the gRPC server.

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


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    prepare_store_location(settings)
    from matcher.errors import MatcherError

    try:
        service = open_service(settings)
        server, port, health_servicer = build_server(settings, service)
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
    t0 = time.perf_counter()
    service.engine.load()
    service.ready.set()
    service.metrics.set_counts(service.engine.counts())
    if settings.metrics_listen:
        mport = service.metrics.serve(settings.metrics_listen)
        print(f"amayesh metrics on port {mport} (/metrics)", file=sys.stderr, flush=True)
    resumed = service.dedup.resume()
    if resumed:
        print(f"amayesh resumed dedup jobs {', '.join(resumed)}", file=sys.stderr, flush=True)
    counts = service.engine.counts()
    print(
        f"amayesh loaded {counts['persons']} persons ({counts['fingers']} fingers, "
        f"{counts['irises']} irises) in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(MATCHER_SERVICE, health_pb2.HealthCheckResponse.SERVING)

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
    service.dedup.stop()  # workers stop at the next person; their checkpoints hold
    service.engine.store.close()
    print("amayesh stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

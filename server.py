"""amayesh gRPC server: the service's entry point.

    python server.py --listen 127.0.0.1:50051 --store sqlite:///data/amayesh.db

Start-up reads like the request path in DESIGN.md: settings -> store -> galleries -> gRPC server.
Today only the settings and the gRPC shell exist: the health service (grpc.health.v1) and server
reflection. The store, the galleries, the matcher servicer and token authentication arrive with
the service issue.

Every flag can also be set from the environment (AMAYESH_LISTEN, AMAYESH_STORE,
AMAYESH_DEV_TOKEN, AMAYESH_MAX_WORKERS, AMAYESH_MAX_MESSAGE_MB); a flag on the command line wins.
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

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_STORE = "sqlite:///data/amayesh.db"
SHUTDOWN_GRACE_S = 5.0
# In-flight RPCs allowed per worker thread before new calls get RESOURCE_EXHAUSTED (back-pressure).
CONCURRENT_RPCS_PER_WORKER = 4
STORE_SCHEMES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Settings:
    """Deployment settings, built once at start-up and passed down; nothing reads globals."""

    listen: str  # HOST:PORT; port 0 picks a free port
    store: str  # SQLAlchemy-style URL: sqlite:///relative.db, sqlite:////abs.db, postgresql://...
    dev_token: str | None  # development bearer token; accepted, not yet enforced
    max_workers: int  # request thread pool size
    max_message_mb: int  # gRPC send/receive message limit, MiB
    max_concurrent_rpcs: int  # back-pressure: RPCs beyond this get RESOURCE_EXHAUSTED

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
        help="development bearer token; accepted, not enforced yet (env AMAYESH_DEV_TOKEN)",
    )
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
    scheme = args.store.partition("://")[0].partition("+")[0]
    if "://" not in args.store or scheme not in STORE_SCHEMES:
        parser.error(f"store URL must start with sqlite:// or postgresql://, got {args.store!r}")

    return Settings(
        listen=args.listen,
        store=args.store,
        dev_token=args.dev_token or None,
        max_workers=args.max_workers,
        max_message_mb=args.max_message_mb,
        max_concurrent_rpcs=args.max_workers * CONCURRENT_RPCS_PER_WORKER,
    )


def prepare_store_location(settings: Settings) -> None:
    """Create the parent folder of a SQLite store file.

    The store itself (matcher.store: open, migrate, load galleries) arrives with the service issue;
    until then the URL is only parsed and its folder made ready.
    """
    prefix = "sqlite:///"
    if not settings.store.startswith(prefix):
        return
    path = settings.store[len(prefix) :]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def build_server(settings: Settings) -> tuple[grpc.Server, int, health.HealthServicer]:
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

    service_names = (
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(service_names, server)

    # Older grpcio returns 0 on a failed bind, newer raises RuntimeError; handle both the same.
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {settings.listen}: {error}") from error
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return server, port, health_servicer


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    prepare_store_location(settings)
    try:
        server, port, health_servicer = build_server(settings)
    except OSError as error:
        print(f"amayesh: {error}", file=sys.stderr, flush=True)
        return 1

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    host, _ = _split_host_port(settings.listen)
    print(f"amayesh listening on {host}:{port}", flush=True)
    print(f"try: grpcurl -plaintext {host}:{port} list", flush=True)

    # Event.wait with a timeout returns on signals promptly; a bare wait() can block them.
    while not stop_requested.wait(timeout=1.0):
        pass

    # Tell load balancers first, then let in-flight calls finish within the grace period.
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=SHUTDOWN_GRACE_S).wait()
    print("amayesh stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

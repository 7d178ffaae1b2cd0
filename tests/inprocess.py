"""A matching server in the test process, on a loopback port, over a fresh SQLite store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import server
from matcher.auth import Authenticator, digest
from matcher.crypto import generate_key_file
from matcher.engine import Engine
from matcher.service import MatcherService
from matcher.store import Store
from matcher.thresholds import Thresholds


@contextmanager
def matcher_server(
    folder: Path, thresholds: Thresholds, tokens: Mapping[str, str], max_message_mb: int = 8
) -> Iterator[tuple[str, MatcherService]]:
    """``(address, service)`` of a started, loaded server; ``tokens`` maps role -> token (each
    token's actor is ``<role>-user``). Stopped and its store closed on leaving."""
    store = Store.open(f"sqlite:///{folder / 'store.db'}", generate_key_file(folder / "key"))
    auth = Authenticator([(f"{r}-user", r, digest(t)) for r, t in tokens.items()])
    service = MatcherService(Engine(store, thresholds), auth, "sqlite")
    settings = server.Settings(
        listen="127.0.0.1:0",
        store="sqlite:///unused",
        dev_token=None,
        max_workers=4,
        max_message_mb=max_message_mb,
        max_concurrent_rpcs=16,
    )
    srv, port, _ = server.build_server(settings, service)
    srv.start()
    try:
        service.engine.load()
        service.ready.set()
        yield f"127.0.0.1:{port}", service
    finally:
        srv.stop(grace=None).wait()
        store.close()

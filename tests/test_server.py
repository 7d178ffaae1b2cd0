"""server.py: settings parsing, and the real server over loopback gRPC in a subprocess."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import server

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 15.0

ENV_NAMES = (
    "AMAYESH_LISTEN",
    "AMAYESH_STORE",
    "AMAYESH_DEV_TOKEN",
    "AMAYESH_MAX_WORKERS",
    "AMAYESH_MAX_MESSAGE_MB",
    "AMAYESH_SNAPSHOT",
    "AMAYESH_SNAPSHOT_INTERVAL_S",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_parse_args_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = server.parse_args([])
    assert settings == server.Settings(
        listen="127.0.0.1:50051",
        store="sqlite:///data/amayesh.db",
        dev_token=None,
        max_workers=8,
        max_message_mb=16,
        max_concurrent_rpcs=8 * server.CONCURRENT_RPCS_PER_WORKER,
        snapshot="data/amayesh.db.snapshot",
    )
    assert settings.max_message_bytes == 16 * 1024 * 1024


def test_snapshot_location(clean_env: pytest.MonkeyPatch) -> None:
    assert server.parse_args(["--store", "postgresql://u@db/x"]).snapshot is None
    assert server.parse_args(["--snapshot", "none"]).snapshot is None
    assert server.parse_args(["--store", "sqlite:///:memory:"]).snapshot is None
    given = server.parse_args(["--store", "postgresql://u@db/x", "--snapshot", "/srv/g.snap"])
    assert given.snapshot == "/srv/g.snap"
    clean_env.setenv("AMAYESH_SNAPSHOT", "none")
    assert server.parse_args([]).snapshot is None


def test_parse_args_env_overrides_default_and_flag_overrides_env(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AMAYESH_LISTEN", "0.0.0.0:6000")
    clean_env.setenv("AMAYESH_STORE", "postgresql://amayesh@db/amayesh")
    clean_env.setenv("AMAYESH_MAX_WORKERS", "3")

    from_env = server.parse_args([])
    assert from_env.listen == "0.0.0.0:6000"
    assert from_env.store == "postgresql://amayesh@db/amayesh"
    assert from_env.max_workers == 3

    from_flag = server.parse_args(["--listen", "127.0.0.1:7000", "--max-workers", "2"])
    assert from_flag.listen == "127.0.0.1:7000"
    assert from_flag.max_workers == 2
    assert from_flag.store == "postgresql://amayesh@db/amayesh"


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "no-port"],
        ["--listen", "127.0.0.1:99999"],
        ["--store", "mysql://x/y"],
        ["--max-workers", "0"],
        ["--max-message-mb", "lots"],
    ],
)
def test_parse_args_rejects_bad_values(clean_env: pytest.MonkeyPatch, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        server.parse_args(argv)
    assert exit_info.value.code == 2


def _read_lines(stream, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """server.py on a free loopback port; yields (process, address, store file)."""
    store_file = tmp_path / "store" / "amayesh.db"
    env = {name: value for name, value in os.environ.items() if name not in ENV_NAMES}
    env["PYTHONUNBUFFERED"] = "1"
    stderr_file = tmp_path / "server.stderr"
    with stderr_file.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "server.py"),
                "--listen",
                "127.0.0.1:0",
                "--store",
                f"sqlite:///{store_file}",
                "--max-workers",
                "2",
                "--sms-file",
                str(tmp_path / "sms-outbox.jsonl"),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        try:
            first = lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            first = None
        prefix = "amayesh listening on "
        if first is None or not first.startswith(prefix):
            pytest.fail(
                f"server did not announce its address (first line {first!r});"
                f" stderr:\n{stderr_file.read_text()}"
            )
        yield process, first[len(prefix) :].strip(), store_file
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=EXIT_TIMEOUT_S)


def test_server_serves_health_and_reflection_then_stops_on_sigterm(
    running_server: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, address, store_file = running_server
    assert store_file.parent.is_dir(), "the SQLite store's folder should be created at start-up"

    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)

        health_stub = health_pb2_grpc.HealthStub(channel)
        reply = health_stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT_S)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflection_stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(
            reflection_stub.ServerReflectionInfo(iter([request]), timeout=RPC_TIMEOUT_S)
        )
        services = {s.name for r in responses for s in r.list_services_response.service}
        assert "grpc.health.v1.Health" in services
        assert "grpc.reflection.v1alpha.ServerReflection" in services
        assert {"amayesh.v1.Matcher", "amayesh.v1.Enrollment"} <= services
        for name in ("amayesh.v1.Matcher", "amayesh.v1.Enrollment"):
            reply = health_stub.Check(
                health_pb2.HealthCheckRequest(service=name), timeout=RPC_TIMEOUT_S
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=EXIT_TIMEOUT_S) == 0

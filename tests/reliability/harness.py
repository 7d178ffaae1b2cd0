"""What the reliability tests share: a real ``server.py`` subprocess on loopback, a synthetic
population with mates for probing, and small helpers for statuses, health and metrics.

Sizes: the suite runs reduced under ``make test`` and full under ``make reliability``, which sets
``AMAYESH_RELIABILITY_FULL=1`` (:func:`size`).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from matcher.crypto import generate_key_file
from matcher.finger import match
from matcher.formats import iso19794_2
from matcher.iris import IrisGeometry, hamming_distance, normalize_hd
from matcher.synthetic.finger import finger_chunks
from matcher.synthetic.iris import genuine_probes, random_codes, random_masks
from matcher.templates import FingerTemplate
from matcher.thresholds import Calibration, Thresholds

REPO_ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("AMAYESH_RELIABILITY_FULL", "") not in ("", "0")
STARTUP_TIMEOUT_S = 60.0
RPC_TIMEOUT_S = 30.0  # every call has a deadline: a hang shows as DEADLINE_EXCEEDED, not a stall
ADMIN_TOKEN = "reliability-admin"
GEO = IrisGeometry()
# Server settings read from the environment; the tests pass flags and leave none of these set.
_SERVER_ENV = (
    "AMAYESH_LISTEN",
    "AMAYESH_STORE",
    "AMAYESH_STORE_KEY",
    "AMAYESH_STORE_KEY_FILE",
    "AMAYESH_DEV_TOKEN",
    "AMAYESH_TOKENS_FILE",
    "AMAYESH_THRESHOLDS",
    "AMAYESH_TLS_CERT",
    "AMAYESH_TLS_KEY",
    "AMAYESH_TLS_CLIENT_CA",
    "AMAYESH_METRICS_LISTEN",
    "AMAYESH_MAX_WORKERS",
    "AMAYESH_MAX_MESSAGE_MB",
)


def size(reduced: int, full: int) -> int:
    """``full`` under ``make reliability`` (AMAYESH_RELIABILITY_FULL=1), else ``reduced``."""
    return full if FULL else reduced


def free_port() -> int:
    """A loopback port free at the time of the call (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_of(error: grpc.RpcError) -> grpc.StatusCode:
    return error.code()  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------- the population
@dataclasses.dataclass(frozen=True)
class Person:
    """One synthetic person: four fingers (positions 1-4) and two eyes, each with a new capture."""

    fingers: dict[int, FingerTemplate]
    finger_probes: dict[int, FingerTemplate]
    irises: dict[str, tuple[np.ndarray, np.ndarray]]  # eye -> (code, mask), bool (8, 128, 2)
    iris_probes: dict[str, tuple[np.ndarray, np.ndarray]]

    def records(self, positions: Sequence[int], probe: bool = False) -> dict[int, bytes]:
        """ISO/IEC 19794-2:2005 records of these positions (enrolment or probe captures)."""
        src = self.finger_probes if probe else self.fingers
        return {p: iso19794_2.encode([src[p]]) for p in positions}

    def codes(self, eyes: Sequence[str], probe: bool = False) -> dict[str, tuple[np.ndarray, ...]]:
        src = self.iris_probes if probe else self.irises
        return {e: src[e] for e in eyes}


POSITIONS = (1, 2, 3, 4)
EYES = ("L", "R")


def population(n: int, seed: int = 7) -> list[Person]:
    """``n`` distinct synthetic persons, reproducible from ``seed``."""
    per = 10  # finger_chunks numbers fingers; person k owns fingers 10k .. 10k+9
    enrolled = next(finger_chunks(n * per, seed=seed, chunk=n * per, take=0))
    again = next(finger_chunks(n * per, seed=seed, chunk=n * per, take=1))
    rng = np.random.default_rng(seed)
    codes = random_codes(2 * n, GEO, rng)
    masks = random_masks(2 * n, GEO, rng)
    # Mild capture noise: these tests check answers under load and crashes, not accuracy.
    probes = genuine_probes(codes, rng, noise=(0.05, 0.15))
    out = []
    for k in range(n):
        out.append(
            Person(
                fingers={
                    p: dataclasses.replace(enrolled[per * k + p - 1], position=p) for p in POSITIONS
                },
                finger_probes={
                    p: dataclasses.replace(again[per * k + p - 1], position=p) for p in POSITIONS
                },
                irises={e: (codes[2 * k + j], masks[2 * k + j]) for j, e in enumerate(EYES)},
                iris_probes={
                    e: (probes.codes[2 * k + j], probes.masks[2 * k + j])
                    for j, e in enumerate(EYES)
                },
            )
        )
    return out


def calibrate(seed: int = 99) -> Thresholds:
    """Thresholds fitted to this synthetic population's own impostor scores (the shipped ones are
    fitted to real data, where synthetic genuine scores need not clear them)."""
    fingers = next(finger_chunks(60, seed=seed, chunk=60))
    finger_impostor = [
        match(fingers[i], fingers[j]) for i in range(0, 60, 3) for j in range(1, 60, 7) if i != j
    ]
    rng = np.random.default_rng(seed)
    codes = random_codes(60, GEO, rng)
    masks = random_masks(60, GEO, rng)
    iris_impostor = []
    for i in range(0, 60, 2):
        for j in range(1, 60, 6):
            hd, _, bits = hamming_distance(codes[i], masks[i], codes[j], masks[j], max_shift=8)
            iris_impostor.append(float(normalize_hd(hd, bits)))
    return Thresholds(
        Calibration.fit("finger", finger_impostor, True, "synthetic"),
        Calibration.fit("iris", iris_impostor, False, "synthetic"),
    )


# --------------------------------------------------------------------------- the server
class ServerProcess:
    """``server.py`` in a subprocess on a fixed loopback port, restartable on the same store.

    ``start()`` waits for the "amayesh listening on" line (printed once the galleries are loaded
    and health is SERVING); ``kill()`` is SIGKILL; ``stop()`` is SIGTERM (drain) with a SIGKILL
    fallback. ``extra`` flags are passed as given (e.g. ``--tokens-file``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        thresholds: Thresholds | None = None,
        extra: Sequence[str] = (),
        max_workers: int = 8,
        max_message_mb: int = 16,
        metrics: bool = False,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.store_url = f"sqlite:///{workdir / 'store.db'}"
        self.key_file = workdir / "store.key"
        if not self.key_file.exists():
            generate_key_file(self.key_file)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_port = free_port() if metrics else None
        self.args = [
            sys.executable,
            str(REPO_ROOT / "server.py"),
            "--listen",
            self.address,
            "--store",
            self.store_url,
            "--store-key-file",
            str(self.key_file),
            "--dev-token",
            ADMIN_TOKEN,
            "--max-workers",
            str(max_workers),
            "--max-message-mb",
            str(max_message_mb),
            *extra,
        ]
        if thresholds is not None:
            path = workdir / "thresholds.json"
            thresholds.save(path)
            self.args += ["--thresholds", str(path)]
        if self.metrics_port is not None:
            self.args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.stderr"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        self.starts += 1
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                self.args,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: object) -> None:
            for line in stream:  # type: ignore[attr-defined]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        try:
            first = lines.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            first = None
        if first is None or not first.startswith("amayesh listening on "):
            self.kill()
            raise RuntimeError(
                f"server did not start (first line {first!r}); stderr:\n{self.stderr_tail()}"
            )

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            return self.stderr_path.read_text()[-chars:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no drain, no close; what the store holds is what was committed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait for the drain; the exit status (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def health(self, service: str = "") -> int:
        """The health status of ``service`` ("" = the server), or raises grpc.RpcError."""
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            return int(reply.status)

    def serving(self) -> bool:
        return self.alive() and self.health() == health_pb2.HealthCheckResponse.SERVING

    def calls(self) -> dict[tuple[str, str], int]:
        """``(method, code) -> calls`` from the server's own /metrics counters."""
        if self.metrics_port is None:
            raise RuntimeError("this server was started without metrics")
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        out: dict[tuple[str, str], int] = {}
        pattern = r'^amayesh_calls_total\{code="(\w+)",method="(\w+)"\} ([0-9.e+]+)$'
        for code, method, value in re.findall(pattern, text, re.M):
            out[(method, code)] = int(float(value))
        return out

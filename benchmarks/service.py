"""The service end to end: ``python -m benchmarks service --iris-persons N --finger-persons M``.

1. A SQLite store in a temporary folder is filled in bulk (``Store.enroll_many``) with synthetic
   persons: ``N`` with two irises each (``2 N`` iris codes), the first ``M`` of them also with
   ten fingers each.
2. ``server.py`` starts on it as a subprocess, rebuilds the galleries from the store and writes
   their snapshot; it is stopped and started again, now from the snapshot. Start-up time runs
   from spawning the process to its "listening" line, which it prints once the galleries hold
   the store (health SERVING); both starts are reported, the second is the service's start-up.
3. Over loopback gRPC with :class:`matcher.client.MatcherClient`, one call at a time:
   ``Verify`` with two fingers, ``Verify`` with two irises, ``Identify`` with two irises, each
   with a new capture of a random enrolled person: p50 / p99 latency and calls per second.
4. The same probes straight on an in-process :class:`matcher.engine.Engine` over the same store
   (the kernel and decision time, no gRPC, no request decoding): gRPC overhead is
   ``(gRPC p50 - engine p50) / engine p50``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def _populate(path: Path, key: bytes, iris_persons: int, finger_persons: int, seed: int) -> Any:
    """Fill the store; return the probes (new captures) of a sample of persons."""
    from tqdm import tqdm

    from matcher.iris import IrisGeometry, IrisTemplate
    from matcher.store import Actor, Biometrics, Store
    from matcher.synthetic.finger import finger_chunks
    from matcher.synthetic.iris import genuine_probes, random_codes, random_masks

    geo = IrisGeometry()
    rng = np.random.default_rng(seed)
    store = Store.open(f"sqlite:///{path}", key)
    actor = Actor("bench-import", "admin")
    batch = 2000
    probes: dict[str, Any] = {"iris": {}, "finger": {}}
    want = set(rng.choice(iris_persons, size=min(iris_persons, 400), replace=False).tolist())
    fingers = finger_chunks(finger_persons * 10, seed=seed, chunk=batch * 10, take=0)
    finger_again = finger_chunks(finger_persons * 10, seed=seed, chunk=batch * 10, take=1)
    with tqdm(total=iris_persons, desc="enrol", unit="person", file=sys.stderr) as bar:
        for start in range(0, iris_persons, batch):
            n = min(batch, iris_persons - start)
            codes = random_codes(2 * n, geo, rng)
            masks = random_masks(2 * n, geo, rng)
            fchunk = next(fingers) if start < finger_persons else []
            fagain = next(finger_again) if start < finger_persons else []
            people = []
            for k in range(n):
                p = start + k
                irises = {
                    e: IrisTemplate(codes[2 * k + j], masks[2 * k + j], e)
                    for j, e in enumerate("LR")
                }
                fs = {}
                if p < finger_persons:
                    fs = {pos: _at(fchunk[10 * k + pos - 1], pos) for pos in range(1, 11)}
                people.append((f"P-{p}", Biometrics(fingers=fs, irises=irises), None))
                if p in want:
                    g = genuine_probes(codes[2 * k : 2 * k + 2], rng)
                    probes["iris"][f"P-{p}"] = {
                        e: (g.codes[j], g.masks[j]) for j, e in enumerate("LR")
                    }
                    if p < finger_persons:
                        probes["finger"][f"P-{p}"] = {
                            pos: _at(fagain[10 * k + pos - 1], pos) for pos in (2, 7)
                        }
            store.enroll_many(people, actor)
            bar.update(n)
    store.close()
    return probes


def _at(t: Any, pos: int) -> Any:
    import dataclasses

    return dataclasses.replace(t, position=pos)


def _timed(calls: list[Callable[[], Any]]) -> dict[str, float]:
    calls[0]()  # warm-up: first-call set-up and JIT are not timed
    times = []
    t_all = time.perf_counter()
    for c in calls:
        t0 = time.perf_counter()
        c()
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_all
    ms = np.asarray(times) * 1e3
    return {
        "calls": len(calls),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "calls_per_s": round(len(calls) / total, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from matcher.client import MatcherClient
    from matcher.crypto import generate_key_file, load_key

    with tempfile.TemporaryDirectory(prefix="amayesh-bench-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = work / "store.db"
        key_file = work / "store.key"
        probes_file = work / "probes.pickle"  # our own synthetic probes, read back by this code
        snap = work / "store.snapshot"
        t0 = time.perf_counter()
        if probes_file.exists():  # a store this benchmark filled before (--workdir)
            key = load_key(key_file)
            probes = pickle.loads(probes_file.read_bytes())
        else:
            db.unlink(missing_ok=True)
            snap.unlink(missing_ok=True)
            key = generate_key_file(key_file, overwrite=True)
            probes = _populate(db, key, args.iris_persons, args.finger_persons, args.seed)
            probes_file.write_bytes(pickle.dumps(probes))
        populate_s = time.perf_counter() - t0

        first_s = None
        if not snap.exists():
            first_s, proc, _ = _start(db, key_file, snap)
            try:  # the first start rebuilds the galleries and then writes their snapshot
                _wait_for(snap, proc)
            finally:
                _stop(proc)
        snapshot_mib = snap.stat().st_size / 2**20
        startup_s, proc, address = _start(db, key_file, snap)
        try:
            rng = np.random.default_rng(args.seed + 1)
            out: dict[str, Any] = {
                "benchmark": "service",
                "iris_codes": 2 * args.iris_persons,
                "finger_templates": 10 * args.finger_persons,
                "populate_s": round(populate_s, 1),
                "startup_to_serving_s": round(startup_s, 2),
                "startup_rebuilding_galleries_s": None if first_s is None else round(first_s, 2),
                "snapshot_mib": round(snapshot_mib, 1),
            }
            with MatcherClient(address, TOKEN, timeout_s=600) as c:
                out["grpc"] = _measure(c, probes, rng, args.probes, via_grpc=True)
        finally:
            _stop(proc)
        out["engine"] = _engine_side(db, key, snap, probes, args.seed + 1, args.probes)
        for call, r in out["grpc"].items():
            e = out["engine"][call]
            r["grpc_overhead_vs_engine_p50"] = round((r["p50_ms"] - e["p50_ms"]) / e["p50_ms"], 3)
        return out


def _start(db: Path, key_file: Path, snap: Path) -> tuple[float, subprocess.Popen[str], str]:
    """Spawn server.py on the store; (seconds until it prints its listening line, process,
    address)."""
    env = dict(os.environ, AMAYESH_DEV_TOKEN=TOKEN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "server.py",
            "--listen",
            "127.0.0.1:0",
            "--store",
            f"sqlite:///{db}",
            "--store-key-file",
            str(key_file),
            "--snapshot",
            str(snap),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    seconds = time.perf_counter() - t0
    if not line.startswith("amayesh listening on "):
        _stop(proc)
        raise RuntimeError(f"server did not start: {line!r}")
    return seconds, proc, line.split()[-1]


def _wait_for(path: Path, proc: subprocess.Popen[str], limit_s: float = 4 * 3600) -> None:
    t0 = time.perf_counter()
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before writing {path}")
        if time.perf_counter() - t0 > limit_s:
            raise RuntimeError(f"no snapshot at {path} after {limit_s} s")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _measure(
    target: Any, probes: dict[str, Any], rng: np.random.Generator, n: int, via_grpc: bool
) -> dict[str, Any]:
    iris_people = sorted(probes["iris"])
    finger_people = sorted(probes["finger"])
    pick_i = [iris_people[i] for i in rng.integers(0, len(iris_people), n)]
    pick_f = (
        [finger_people[i] for i in rng.integers(0, len(finger_people), n)] if finger_people else []
    )

    def iris_t(p: str) -> Any:
        from matcher.iris import IrisTemplate

        return {e: IrisTemplate(c, m, e) for e, (c, m) in probes["iris"][p].items()}

    res: dict[str, Any] = {}
    if via_grpc:
        if pick_f:
            res["verify_2_fingers"] = _timed(
                [lambda p=p: target.verify(p, fingers=probes["finger"][p]) for p in pick_f]
            )
        res["verify_2_irises"] = _timed(
            [lambda p=p: target.verify(p, irises=probes["iris"][p]) for p in pick_i]
        )
        res["identify_2_irises"] = _timed(
            [lambda p=p: target.identify(irises=probes["iris"][p]) for p in pick_i]
        )
    else:
        if pick_f:
            res["verify_2_fingers"] = _timed(
                [lambda p=p: target.verify(p, probes["finger"][p], {}) for p in pick_f]
            )
        res["verify_2_irises"] = _timed(
            [lambda p=p: target.verify(p, {}, iris_t(p)) for p in pick_i]
        )
        res["identify_2_irises"] = _timed(
            [lambda p=p: target.identify({}, iris_t(p)) for p in pick_i]
        )
    return res


def _engine_side(
    db: Path, key: bytes, snap: Path, probes: dict[str, Any], seed: int, n: int
) -> dict[str, Any]:
    from matcher.engine import Engine
    from matcher.store import Store
    from matcher.thresholds import Thresholds

    store = Store.open(f"sqlite:///{db}", key)
    try:
        engine = Engine(store, Thresholds.load())
        engine.load(snapshot_path=snap)
        return _measure(engine, probes, np.random.default_rng(seed), n, via_grpc=False)
    finally:
        store.close()


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("service", help="gRPC latency, start-up time and overhead vs the engine")
    p.add_argument("--iris-persons", type=int, default=20_000, help="persons with two irises")
    p.add_argument("--finger-persons", type=int, default=2_000, help="of those, with ten fingers")
    p.add_argument("--probes", type=int, default=200, help="calls timed per kind")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--workdir",
        help="keep the filled store, its probes and the snapshot here and reuse them next time "
        "(the same sizes and seed); default: a temporary folder",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.finger_persons > args.iris_persons:
        print("--finger-persons must not exceed --iris-persons", file=sys.stderr)
        return 2
    out = run(args)
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0

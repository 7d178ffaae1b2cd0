"""Batch N x N deduplication: is anyone enrolled twice, under different ids?

A job runs in a worker thread the server owns, never in a request thread, so it outlives the
client that started it. Steps:

1. The job's persons (the whole gallery, or a subset) are fixed when it starts, in row order.
2. Their samples stream from the store in row order (fingers and irises merged by row, in
   batches; one audit row for the job, not one per person). Each person is searched against the
   galleries (:meth:`matcher.engine.Engine.duplicates_of`) at the job's per-comparison FMR.
3. Every matching pair is kept once (lower row first). Every ``CHECKPOINT_EVERY`` persons the
   position and the pairs so far are committed as the job's checkpoint, so a restarted server
   resumes from there (:meth:`DedupRunner.resume`), not from the start.
4. At the end, pairs become clusters (connected components, union-find): each cluster lists
   its persons with the best score linking each in. Results are stored with the job.

Progress counts persons searched. A job that fails records its error and stays listable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from matcher.engine import Engine
from matcher.iris import IrisTemplate
from matcher.store import Actor
from matcher.templates import FingerTemplate

log = logging.getLogger("amayesh.dedup")

KIND = "dedup"
CHECKPOINT_EVERY = 200
MAX_PAIRS = 20_000  # a checkpoint holds the pairs found so far; beyond this the job stops
SYSTEM = Actor("dedup-worker", "admin")


def _clusters(pairs: list[tuple[int, int, float]]) -> list[list[tuple[int, float]]]:
    """Connected components of the pair graph; per member the best score of its pairs."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    best: dict[int, float] = {}
    for a, b, s in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        best[a] = max(best.get(a, s), s)
        best[b] = max(best.get(b, s), s)
    groups: dict[int, list[int]] = {}
    for r in sorted(best):
        groups.setdefault(find(r), []).append(r)
    return [[(r, best[r]) for r in members] for _, members in sorted(groups.items())]


def _persons(
    engine: Engine, wanted: set[int]
) -> Iterator[tuple[int, dict[int, FingerTemplate], dict[str, IrisTemplate]]]:
    """``(row, fingers, irises)`` for the wanted rows, in row order, merged from two streams."""
    fingers = engine.store.iter_fingers(2_000)
    irises = engine.store.iter_irises(2_000)

    def flat_f() -> Iterator[tuple[int, int, FingerTemplate]]:
        for rows, positions, templates in fingers:
            yield from zip(rows.tolist(), positions.tolist(), templates, strict=True)

    def flat_i() -> Iterator[tuple[int, str, IrisTemplate]]:
        for rows, eyes, templates in irises:
            yield from zip(rows.tolist(), eyes, templates, strict=True)

    f_it, i_it = flat_f(), flat_i()
    f_next, i_next = next(f_it, None), next(i_it, None)
    while f_next is not None or i_next is not None:
        row = min(x[0] for x in (f_next, i_next) if x is not None)
        fs: dict[int, FingerTemplate] = {}
        es: dict[str, IrisTemplate] = {}
        while f_next is not None and f_next[0] == row:
            fs[f_next[1]] = f_next[2]
            f_next = next(f_it, None)
        while i_next is not None and i_next[0] == row:
            es[i_next[1]] = i_next[2]
            i_next = next(i_it, None)
        if row in wanted:
            yield row, fs, es


class DedupRunner:
    """Starts, runs and resumes dedup jobs over one engine. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def start(self, person_ids: list[str] | None, fmr: float, actor: Actor) -> str:
        if not 0 < fmr < 1:
            raise ValueError(f"target FMR must be in (0, 1), got {fmr}")
        rows = (
            sorted({self.engine.row_of(p) for p in person_ids})
            if person_ids
            else self.engine.rows()
        )
        store = self.engine.store
        job_id = store.create_job(KIND, {"rows": rows, "fmr": fmr, "by": actor.name})
        store.update_job(job_id, total=len(rows))
        store.audit(actor, "start_dedup", None, f"job {job_id}: {len(rows)} persons, fmr {fmr}")
        self._spawn(job_id)
        return job_id

    def resume(self) -> list[str]:
        """Restart every job a previous process left queued or running."""
        resumed = []
        for job in self.engine.store.jobs(limit=1000):
            if job["kind"] == KIND and job["state"] in ("queued", "running"):
                self._spawn(job["job_id"])
                resumed.append(job["job_id"])
        return resumed

    def stop(self) -> None:
        """Ask workers to stop at the next person (the job stays resumable) and wait."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for t in threads:
            t.join(timeout=10)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        with self._lock:
            t = self._threads.get(job_id)
        if t is not None:
            t.join(timeout)

    def _spawn(self, job_id: str) -> None:
        t = threading.Thread(target=self._run, args=(job_id,), name=f"dedup-{job_id}", daemon=True)
        with self._lock:
            self._threads[job_id] = t
        t.start()

    def _run(self, job_id: str) -> None:
        store = self.engine.store
        try:
            self._work(job_id)
        except Exception as e:  # noqa: BLE001  # a worker's last line: record why, keep serving
            log.exception("dedup job %s failed", job_id)
            store.update_job(job_id, state="failed", error=f"{type(e).__name__}: {e}")

    def _work(self, job_id: str) -> None:
        store = self.engine.store
        job = store.job(job_id)
        params: dict[str, Any] = job["params"]
        rows: list[int] = list(params["rows"])
        fmr = float(params["fmr"])
        cp = job["checkpoint"] or {"next": 0, "pairs": []}
        start = int(cp["next"])
        pairs: list[tuple[int, int, float]] = [
            (int(a), int(b), float(s)) for a, b, s in cp["pairs"]
        ]
        seen = {(a, b) for a, b, _ in pairs}
        store.update_job(job_id, state="running", done=start, total=len(rows))
        store.audit(SYSTEM, "read_biometrics", None, f"dedup job {job_id} from person {start}")
        wanted = set(rows[start:])
        among = set(rows)
        done = start
        for row, fingers, irises in _persons(self.engine, wanted):
            if self._stop.is_set():
                return  # the checkpoint holds; resume() continues from there
            if row not in among:
                continue
            for other, scores in self.engine.duplicates_of(row, fingers, irises, fmr, among=among):
                key = (min(row, other), max(row, other))
                if key not in seen:
                    seen.add(key)
                    pairs.append((*key, _strength(scores)))
            done += 1
            if len(pairs) > MAX_PAIRS:
                raise RuntimeError(f"more than {MAX_PAIRS} duplicate pairs: threshold too loose?")
            if done % CHECKPOINT_EVERY == 0:
                store.update_job(
                    job_id, done=done, checkpoint={"next": done, "pairs": [list(p) for p in pairs]}
                )
        clusters = _clusters(pairs)
        names = store.person_ids(sorted({r for c in clusters for r, _ in c}))
        results = [(k, names[r], s) for k, c in enumerate(clusters) for r, s in c]
        store.add_job_results(job_id, results)
        store.update_job(
            job_id,
            state="done",
            done=len(rows),
            checkpoint={"next": len(rows), "pairs": [list(p) for p in pairs]},
        )


def _strength(scores: dict[str, float]) -> float:
    """One number per pair for the cluster listing: finger similarity, else 1 - iris HD."""
    if "finger" in scores:
        return round(float(scores["finger"]), 6)
    return round(1.0 - float(scores.get("iris", 1.0)), 6)

"""Iris engine throughput and fast-mode recall: ``python -m benchmarks iris --gallery N --json``.

One run builds a synthetic gallery, plants genuine mates of a set of probes in it, and measures in
the same process, after a warm-up so no JIT compilation is timed:

- ``reference``: the straightforward parallel numba kernel
  (:func:`matcher.kernels.cpu.reference_scan`) on a row-major copy of the same codes: each
  template read once, compared word by word at every rotation. It is the yardstick every
  ratio is taken against.
- ``exact``: :meth:`IrisGallery.search` with ``exact=True`` (blocked, lane-vectorised).
- ``fast``: ``exact=False`` (subset screening, then exact comparison of the survivors), and its
  recall: the share of genuine probes (mate HD <= 0.35) whose fast top-1 is the exact top-1.
- ``batch``: :meth:`IrisGallery.search_batch` on ``--batch`` probes at once, per probe.
- ``pairs``: 1:1 comparisons/s on one thread (:func:`matcher.iris.hamming_distance_packed`).
- memory of the gallery, peak RSS of the process, and ``load`` time of a saved gallery.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
from tqdm import tqdm

from matcher.gallery import IrisGallery
from matcher.iris import (
    IrisGeometry,
    hamming_distance,
    hamming_distance_packed,
    pack_codes,
    probe_rotations,
    unpack_codes,
)
from matcher.kernels import cpu
from matcher.synthetic.iris import code_chunks, genuine_probes, random_masks


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build_gallery(
    n: int, geometry: IrisGeometry, max_shift: int, n_mates: int, seed: int, progress: bool = True
) -> tuple[IrisGallery, np.ndarray, np.ndarray, np.ndarray]:
    """A gallery of ``n`` synthetic codes; returns it with ``n_mates`` enrolled codes to probe."""
    g = IrisGallery(geometry, max_shift)
    g.reserve(n)
    rng = np.random.default_rng(seed + 1)
    mate_rows = np.sort(rng.choice(n, size=min(n_mates, n), replace=False))
    mate_codes = np.empty((mate_rows.size, *geometry.shape), bool)
    done = 0
    bar = tqdm(total=n, desc="building gallery", unit="code", disable=not progress, file=sys.stderr)
    for codes, masks in code_chunks(n, geometry, seed):
        m = codes.shape[0]
        g.add(np.arange(done, done + m, dtype=np.int64), codes, masks)
        inside = (mate_rows >= done) & (mate_rows < done + m)
        mate_codes[inside] = codes[mate_rows[inside] - done]
        done += m
        bar.update(m)
    bar.close()
    probes = genuine_probes(mate_codes, rng, max_shift=max_shift)
    return g, mate_rows, probes.codes, probes.masks


def _recall(
    g: IrisGallery,
    codes: np.ndarray,
    masks: np.ndarray,
    mate_ids: np.ndarray,
    mates: tuple[np.ndarray, np.ndarray],
    max_shift: int,
    args: argparse.Namespace,
    what: str,
) -> tuple[dict[str, Any], list[float]]:
    """Fast top-1 against exact top-1 for probes whose mate is at HD <= 0.35.

    Exact answers come from batch searches, whose per-probe times are returned as well.
    """
    n = codes.shape[0]
    exact_top1 = np.empty(n, np.int64)
    batch_times = []
    for b0 in tqdm(
        range(0, n, args.batch), desc=f"exact batches, {what}", disable=args.quiet, file=sys.stderr
    ):
        sl = slice(b0, b0 + args.batch)
        t0 = time.perf_counter()
        _, ids, _ = g.search_batch(codes[sl], masks[sl], k=10)
        dt = time.perf_counter() - t0
        if ids.shape[0] == args.batch:
            batch_times.append(dt / args.batch)
        exact_top1[sl] = ids[:, 0]
    fast_top1 = np.empty_like(exact_top1)
    for i in tqdm(range(n), desc=f"fast recall, {what}", disable=args.quiet, file=sys.stderr):
        fast_top1[i] = g.search(codes[i], masks[i], k=1, exact=False)[1][0]
    mate_hd = np.asarray(hamming_distance(codes, masks, mates[0], mates[1], max_shift)[0])
    pop = mate_hd <= 0.35
    agree = fast_top1[pop] == exact_top1[pop]
    return {
        "probes": int(n),
        "probes_with_mate_hd_le_0.35": int(pop.sum()),
        "recall_of_exact_top1": float(agree.mean()) if pop.any() else None,
        "misses": int((~agree).sum()),
        "exact_top1_is_mate": float(np.mean(exact_top1[pop] == mate_ids[pop]))
        if pop.any()
        else None,
        "mate_hd_median": round(float(np.median(mate_hd)), 4),
        "mate_hd_max_in_population": round(float(mate_hd[pop].max()), 4) if pop.any() else None,
    }, batch_times


def run(args: argparse.Namespace) -> dict[str, Any]:
    geometry = IrisGeometry(args.rings, args.columns, args.bits)
    n, s = args.gallery, args.max_shift
    threads = numba.get_num_threads()
    g, mate_ids, probe_codes, probe_masks = build_gallery(
        n, geometry, s, args.probes, args.seed, not args.quiet
    )
    gallery_bytes = g.nbytes
    rss_after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # Mate distances, to select the probes the recall figure is about.
    mate_c, mate_m = g.packed(mate_ids)
    del mate_c, mate_m
    gc, gm, n_rows, _ = g._snapshot()

    # Row-major copy for the straightforward kernel (not counted in the gallery's memory).
    ref_codes = np.ascontiguousarray(gc.transpose(0, 2, 1).reshape(-1, g.words)[:n])
    ref_masks = np.ascontiguousarray(gm.transpose(0, 2, 1).reshape(-1, g.words)[:n])

    def rotations(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return probe_rotations(probe_codes[i], probe_masks[i], geometry, s, g.groups)

    # Warm-up: compile every kernel on the real arrays once, untimed.
    _, pc0, pm0 = rotations(0)
    cpu.reference_scan(ref_codes[:1024], ref_masks[:1024], pc0, pm0, g.min_valid_bits)
    g.search(probe_codes[0], probe_masks[0], k=10)
    g.search(probe_codes[0], probe_masks[0], k=10, exact=False)
    g.search_batch(probe_codes[:2], probe_masks[:2], k=10)

    timed = min(args.timed_probes, probe_codes.shape[0])
    t_ref = []
    t_exact = []
    t_fast = []
    for i in tqdm(range(timed), desc="timing single probes", disable=args.quiet, file=sys.stderr):
        _, pc, pm = rotations(i)
        t_ref.append(
            _median_time(
                lambda pc=pc, pm=pm: cpu.reference_scan(
                    ref_codes, ref_masks, pc, pm, g.min_valid_bits
                ),
                1,
            )
        )
        t_exact.append(_median_time(lambda i=i: g.search(probe_codes[i], probe_masks[i], k=10), 1))
        t_fast.append(
            _median_time(lambda i=i: g.search(probe_codes[i], probe_masks[i], k=10, exact=False), 1)
        )
    # Check once that the yardstick and the engine agree on the answer.
    _, pc, pm = rotations(0)
    ref_hd, _ = cpu.reference_scan(ref_codes, ref_masks, pc, pm, g.min_valid_bits)
    ex_hd, ex_ids, _ = g.search(probe_codes[0], probe_masks[0], k=1)
    reference_agrees = bool(ref_hd.min() == ex_hd[0] and int(np.argmin(ref_hd)) == int(ex_ids[0]))

    # The mates' codes, to make the hard probes and to measure each probe's mate distance.
    mc, mm = g.packed(mate_ids)
    mates_bool = unpack_codes(mc, geometry, g.groups), unpack_codes(mm, geometry, g.groups)
    n_hard = min(args.hard_probes, mate_ids.size)
    hard = genuine_probes(
        mates_bool[0][:n_hard],
        np.random.default_rng(args.seed + 3),
        max_shift=s,
        noise=(0.30, 0.37),
    )
    spec_recall, batch_times = _recall(
        g, probe_codes, probe_masks, mate_ids, mates_bool, s, args, "genuine probes"
    )
    hard_recall, _ = _recall(
        g,
        hard.codes,
        hard.masks,
        mate_ids[:n_hard],
        (mates_bool[0][:n_hard], mates_bool[1][:n_hard]),
        s,
        args,
        "hard probes",
    )

    # 1:1 pairs on one thread, packed (the form templates are stored in) and from bool arrays.
    n_pairs = args.pairs
    rng = np.random.default_rng(args.seed + 7)
    pick = rng.integers(0, n, size=n_pairs)
    pa_c = pack_codes(
        mates_bool[0][rng.integers(0, mates_bool[0].shape[0], size=n_pairs)], geometry
    )
    pa_m = pack_codes(
        mates_bool[1][rng.integers(0, mates_bool[1].shape[0], size=n_pairs)], geometry
    )
    # b side: gallery rows, repacked to the plain layout the 1:1 kernel reads
    rows_c = unpack_codes(ref_codes[pick], geometry, g.groups)
    rows_m = unpack_codes(ref_masks[pick], geometry, g.groups)
    pb_c, pb_m = pack_codes(rows_c, geometry), pack_codes(rows_m, geometry)
    numba.set_num_threads(1)
    try:
        hamming_distance_packed(pa_c[:10], pa_m[:10], pb_c[:10], pb_m[:10], geometry, s)
        t_pairs = _median_time(
            lambda: hamming_distance_packed(pa_c, pa_m, pb_c, pb_m, geometry, s), 3
        )
        few = min(n_pairs, 20000)
        hamming_distance(rows_c[:10], rows_m[:10], rows_c[10:20], rows_m[10:20], s)
        t_bool = _median_time(
            lambda: hamming_distance(
                rows_c[:few], rows_m[:few], rows_c[::-1][:few], rows_m[::-1][:few], s
            ),
            3,
        )
    finally:
        numba.set_num_threads(threads)

    # Save / load.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gallery.bin"
        g.save(path)
        t0 = time.perf_counter()
        loaded = IrisGallery.load(path)
        t_load = time.perf_counter() - t0
        loaded_ok = len(loaded) == len(g)
        del loaded

    ref_rate = n / statistics.median(t_ref)
    exact_rate = n / statistics.median(t_exact)
    fast_rate = n / statistics.median(t_fast)
    batch_rate = n / statistics.median(batch_times) if batch_times else None
    return {
        "benchmark": "iris",
        "gallery": n,
        "geometry": list(geometry.shape),
        "code_bits": geometry.n_bits,
        "max_shift": s,
        "rotations": 2 * s + 1,
        "threads": threads,
        "cpu": _cpu_name(),
        "timed_probes": timed,
        "templates_per_s": {
            "reference": round(ref_rate),
            "exact": round(exact_rate),
            "fast": round(fast_rate),
            "exact_batch_per_probe": round(batch_rate) if batch_rate else None,
        },
        "ratio_to_reference": {
            "exact": round(exact_rate / ref_rate, 2),
            "fast": round(fast_rate / ref_rate, 2),
            "exact_batch_per_probe": round(batch_rate / ref_rate, 2) if batch_rate else None,
        },
        "batch_size": args.batch,
        "reference_agrees_with_exact": reference_agrees,
        "fast_mode": {
            "coarse_words": g.coarse_words,
            "words": g.words,
            "coarse_threshold": g.coarse_threshold,
            "coarse_shift_step": g.coarse_shift_step,
            "genuine_probes_10_30pct_noise": spec_recall,
            "hard_probes_30_37pct_noise": hard_recall,
        },
        "pairs_one_thread": {
            "packed_per_s": round(n_pairs / t_pairs),
            "bool_arrays_per_s": round(few / t_bool),
            "pairs": n_pairs,
        },
        "memory": {
            "gallery_bytes": gallery_bytes,
            "gallery_mb": round(gallery_bytes / 2**20, 1),
            "bytes_per_template": round(gallery_bytes / n, 1),
            "peak_rss_mb_after_build": round(rss_after_build / 2**20, 1),
        },
        "load_s": round(t_load, 3),
        "load_ok": loaded_ok,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("iris", help="iris engine throughput, fast-mode recall, memory, load time")
    p.add_argument("--gallery", type=int, default=1_000_000, help="codes in the gallery")
    p.add_argument("--max-shift", type=int, default=8, help="rotations each way, in columns")
    p.add_argument(
        "--probes", type=int, default=1024, help="genuine probes (mates planted in the gallery)"
    )
    p.add_argument(
        "--hard-probes",
        type=int,
        default=512,
        help="probes with 30-37 %% bit noise (mates near 0.35)",
    )
    p.add_argument("--timed-probes", type=int, default=12, help="probes timed one by one per mode")
    p.add_argument("--batch", type=int, default=64, help="probes per batch search")
    p.add_argument("--pairs", type=int, default=200_000, help="1:1 pairs timed on one thread")
    p.add_argument("--rings", type=int, default=8)
    p.add_argument("--columns", type=int, default=128)
    p.add_argument("--bits", type=int, default=2)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


__all__ = ["add_parser", "build_gallery", "run", "random_masks"]

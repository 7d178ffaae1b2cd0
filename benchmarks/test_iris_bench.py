"""pytest-benchmark suite for the iris engine (``make bench``; never part of ``make test``).

Every case runs on the same synthetic gallery in one session, after a warm-up round so JIT
compilation is never timed; at the end the session prints each mode's throughput as a ratio to
the straightforward reference kernel measured in the same run. Size with ``AMAYESH_BENCH_IRIS_N``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.iris import build_gallery
from matcher.gallery import IrisGallery
from matcher.iris import IrisGeometry, hamming_distance_packed, pack_codes, probe_rotations
from matcher.kernels import cpu

N = int(os.environ.get("AMAYESH_BENCH_IRIS_N", "200000"))
MAX_SHIFT = 8
_rates: dict[str, float] = {}


@pytest.fixture(scope="module")
def setup() -> Iterator[dict[str, object]]:
    geometry = IrisGeometry()
    g, mates, codes, masks = build_gallery(N, geometry, MAX_SHIFT, 64, seed=11, progress=False)
    gc, gm, n, _ = g._snapshot()
    ref_c = np.ascontiguousarray(gc.transpose(0, 2, 1).reshape(-1, g.words)[:n])
    ref_m = np.ascontiguousarray(gm.transpose(0, 2, 1).reshape(-1, g.words)[:n])
    _, pc, pm = probe_rotations(codes[0], masks[0], geometry, MAX_SHIFT, g.groups)
    yield {"g": g, "codes": codes, "masks": masks, "ref": (ref_c, ref_m, pc, pm), "geo": geometry}
    if "reference" in _rates:
        base = _rates["reference"]
        lines = [
            f"{k:>22}: {v / 1e6:8.1f} M templates/s  ({v / base:5.2f}x reference)"
            for k, v in _rates.items()
        ]
        print(f"\niris engine, gallery of {N} codes:\n" + "\n".join(lines))


def _record(name: str, benchmark: object, per_call: int) -> None:
    stats = benchmark.stats.stats  # type: ignore[attr-defined]
    rate = per_call / stats.median
    _rates[name] = rate
    benchmark.extra_info["templates_per_s"] = round(rate)  # type: ignore[attr-defined]


def test_reference_scan(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    ref_c, ref_m, pc, pm = setup["ref"]
    g: IrisGallery = setup["g"]
    benchmark.pedantic(
        cpu.reference_scan, args=(ref_c, ref_m, pc, pm, g.min_valid_bits), rounds=5, warmup_rounds=1
    )
    _record("reference", benchmark, N)


def test_exact_search(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    g: IrisGallery = setup["g"]
    c, m = setup["codes"][0], setup["masks"][0]
    benchmark.pedantic(g.search, args=(c, m), kwargs={"k": 10}, rounds=5, warmup_rounds=1)
    _record("exact", benchmark, N)


def test_fast_search(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    g: IrisGallery = setup["g"]
    c, m = setup["codes"][0], setup["masks"][0]
    benchmark.pedantic(
        g.search, args=(c, m), kwargs={"k": 10, "exact": False}, rounds=10, warmup_rounds=1
    )
    _record("fast", benchmark, N)


def test_exact_batch_64(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    g: IrisGallery = setup["g"]
    c, m = setup["codes"][:64], setup["masks"][:64]
    benchmark.pedantic(g.search_batch, args=(c, m), kwargs={"k": 10}, rounds=2, warmup_rounds=1)
    _record("exact batch, per probe", benchmark, N * c.shape[0])


def test_pairs_one_thread(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    import numba

    geo: IrisGeometry = setup["geo"]
    codes, masks = setup["codes"], setup["masks"]
    reps = 20000 // codes.shape[0] + 1
    a_c = np.tile(pack_codes(codes, geo), (reps, 1))
    a_m = np.tile(pack_codes(masks, geo), (reps, 1))
    b_c, b_m = np.roll(a_c, 1, axis=0), np.roll(a_m, 1, axis=0)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        benchmark.pedantic(
            hamming_distance_packed,
            args=(a_c, a_m, b_c, b_m, geo, MAX_SHIFT),
            rounds=5,
            warmup_rounds=1,
        )
    finally:
        numba.set_num_threads(threads)
    benchmark.extra_info["pairs_per_s"] = round(a_c.shape[0] / benchmark.stats.stats.median)

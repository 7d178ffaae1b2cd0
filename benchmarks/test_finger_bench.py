"""pytest-benchmark suite for the fingerprint matcher (``make bench``; never part of ``make test``).

1:1 throughput is measured as an exhaustive scan of a synthetic gallery with cylinders
precomputed (mostly impostor pairs), on one thread and on all threads; the yardstick in the same
run is the same matcher called pair by pair from Python, which is what a caller without the
gallery pays. Size with ``AMAYESH_BENCH_FINGER_N``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numba
import numpy as np
import pytest

from matcher.finger import features, match
from matcher.gallery import FingerGallery
from matcher.kernels import finger_cpu
from matcher.synthetic.finger import finger_chunks

N = int(os.environ.get("AMAYESH_BENCH_FINGER_N", "5000"))
_rates: dict[str, float] = {}


@pytest.fixture(scope="module")
def gallery() -> Iterator[tuple[FingerGallery, list]]:
    templates = [t for chunk in finger_chunks(N, seed=5) for t in chunk]
    g = FingerGallery()
    g.add(np.arange(len(templates)), templates)
    probes = [features(t) for t in templates[:200]]
    yield g, probes
    if "python loop" in _rates:
        base = _rates["python loop"]
        print(f"\nfinger matcher, gallery of {N}:")
        for name, rate in _rates.items():
            print(f"{name:>24}: {rate:10.0f} matches/s  ({rate / base:5.1f}x the Python loop)")


def _scan(g: FingerGallery, probe) -> np.ndarray:  # type: ignore[no-untyped-def]
    offsets, arrays, rows, _ = g._snapshot()
    return finger_cpu.scan(probe.kernel_args(), offsets, arrays, rows)


def test_python_loop_reference(benchmark, gallery) -> None:  # type: ignore[no-untyped-def]
    g, probes = gallery
    sample = probes[1:]

    def loop() -> None:
        for f in sample:
            match(probes[0], f)

    benchmark.pedantic(loop, rounds=5, warmup_rounds=1)
    _rates["python loop"] = len(sample) / benchmark.stats.stats.median


@pytest.mark.parametrize("threads", [1, 2])
def test_exhaustive_scan(benchmark, gallery, threads: int) -> None:  # type: ignore[no-untyped-def]
    g, probes = gallery
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        benchmark.pedantic(_scan, args=(g, probes[1]), rounds=5, warmup_rounds=1)
    finally:
        numba.set_num_threads(before)
    _rates[f"gallery scan, {threads} thread(s)"] = len(g) / benchmark.stats.stats.median

"""Indexed against exhaustive 1:N finger search on synthetic minutiae.

``python -m benchmarks.finger_index --gallery 20000 --probes 200 --json``

The gallery holds ``--gallery`` synthetic fingers (:func:`matcher.synthetic.finger.finger_chunks`,
``take=0``); probe ``i`` is another impression of finger ``i`` (``take=1``), so its mate is id
``i``. Every probe is searched exhaustively (the full matcher against every template, the
yardstick) and indexed (candidate index, then the matcher on the candidates). Reported: the mate's
rank-1 (and rank-10) hit rate of both, how often the indexed top-1 equals the exhaustive top-1,
mean latency per probe of both on ``--threads`` threads (single probes, after a warm-up so
compilation is not timed), the candidates reranked, the time to build the index over the whole
gallery in one go, and bytes per template (gallery arrays, index, both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numba
import numpy as np
from tqdm import tqdm

from matcher.finger import FingerFeatures, features
from matcher.finger_gallery import FingerGallery
from matcher.finger_index import FingerIndex, default_candidates
from matcher.synthetic.finger import finger_chunks


def _features(n: int, seed: int, take: int, pool: ThreadPoolExecutor) -> list[FingerFeatures]:
    out: list[FingerFeatures] = []
    with tqdm(total=n, desc=f"features (take={take})", unit="tpl", file=sys.stderr) as bar:
        for chunk in finger_chunks(n, seed, take=take):
            out += pool.map(features, chunk)  # cylinder building releases the GIL
            bar.update(len(chunk))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    numba.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    t0 = time.perf_counter()
    saved = args.gallery_file is not None and Path(args.gallery_file).exists()
    with ThreadPoolExecutor(args.threads) as pool:
        enrolled = [] if saved else _features(args.gallery, args.seed, 0, pool)
        probes = _features(args.probes, args.seed, 1, pool)
    features_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    if saved:  # built by an earlier run with the same --gallery and --seed
        gallery = FingerGallery.load(args.gallery_file)
        if len(gallery) != args.gallery:
            raise SystemExit(
                f"{args.gallery_file} holds {len(gallery)} templates, not {args.gallery}"
            )
    else:
        gallery = FingerGallery()
        # Large batches: each add copies the gallery's arrays once.
        step = max(4096, len(enrolled) // 8)
        for lo in tqdm(range(0, len(enrolled), step), desc="gallery add", file=sys.stderr):
            batch = enrolled[lo : lo + step]
            gallery.add(np.arange(lo, lo + len(batch)), batch)
        if args.gallery_file is not None:
            gallery.save(args.gallery_file)
    add_s = time.perf_counter() - t0
    # The same index the gallery keeps, built in one go (as loading a version-1 file does).
    build_s = None
    if not args.no_rebuild and not saved:
        t0 = time.perf_counter()
        index = FingerIndex()
        index.add(
            np.concatenate([f.bits for f in enrolled], axis=1),
            np.array([f.n for f in enrolled], np.int64),
            np.arange(len(enrolled), dtype=np.int64),
        )
        build_s = round(time.perf_counter() - t0, 3)
    del enrolled  # the gallery holds its own copy; at 1M templates this is gigabytes

    candidates = args.candidates or default_candidates(len(gallery))
    k = 10
    gallery.search(probes[0], k, candidates=candidates)  # warm-up: compile, fault pages in
    gallery.search(probes[0], k, exhaustive=True)
    timed: dict[str, list[float]] = {"exhaustive": [], "indexed": []}
    found: dict[str, list[np.ndarray]] = {"exhaustive": [], "indexed": []}
    scores_top: dict[str, list[float]] = {"exhaustive": [], "indexed": []}
    impostor_top: list[float] = []
    checked: list[int] = []  # probes the exhaustive search ran on
    n_exh = getattr(args, "exhaustive_probes", None)
    n_exh = len(probes) if n_exh is None else n_exh
    for j, probe in enumerate(tqdm(probes, desc="probes", file=sys.stderr)):
        t0 = time.perf_counter()
        scores, ids = gallery.search(probe, k, candidates=candidates)
        timed["indexed"].append(time.perf_counter() - t0)
        found["indexed"].append(ids)
        scores_top["indexed"].append(float(scores[0]))
        # The yardstick on the first --exhaustive-probes, and on every probe the index missed.
        if j < n_exh or ids[0] != j:
            checked.append(j)
            t0 = time.perf_counter()
            scores, ids = gallery.search(probe, k, exhaustive=True)
            timed["exhaustive"].append(time.perf_counter() - t0)
            found["exhaustive"].append(ids)
            scores_top["exhaustive"].append(float(scores[0]))
            impostor_top.append(float(scores[ids != j][0]))
    mates = np.arange(len(probes))
    ids_i = np.stack(found["indexed"])
    ids_e = np.stack(found["exhaustive"])
    mates_e = mates[checked]
    first_n = np.asarray(checked) < n_exh  # the unbiased part of the exhaustive sample
    missed = [
        (j, s)
        for j, ids, s in zip(checked, ids_e, scores_top["exhaustive"], strict=True)
        if ids[0] == j and ids_i[j, 0] != j
    ]
    index = gallery._index  # noqa: SLF001 (the benchmark reports the index's shape)
    gallery_bytes = gallery.arrays_nbytes / len(gallery)
    index_bytes = gallery.index_nbytes / len(gallery)
    return {
        "benchmark": "finger_index",
        "gallery": len(gallery),
        "probes": len(probes),
        "threads": args.threads,
        "hit_rate_rank1": {
            "exhaustive": round(float(np.mean(ids_e[first_n, 0] == mates_e[first_n])), 4),
            "indexed": round(float(np.mean(ids_i[:, 0] == mates)), 4),
        },
        "hit_rate_rank10": {
            "exhaustive": round(
                float(np.mean((ids_e[first_n] == mates_e[first_n, None]).any(axis=1))), 4
            ),
            "indexed": round(float(np.mean((ids_i == mates[:, None]).any(axis=1))), 4),
        },
        "exhaustive_probes": int(first_n.sum()),
        # Of the probes the index did not put the mate first: how many the exhaustive search
        # did (true index misses) and how many it missed too.
        "index_misses": {
            "mate_first_exhaustively": len(missed),
            "missed_by_both": int(
                np.sum((ids_e[:, 0] != mates_e) & (ids_i[checked, 0] != mates_e))
            ),
        },
        "top1_agreement": round(float(np.mean(ids_e[:, 0] == ids_i[checked, 0])), 4),
        # Best impostor score per probe (exhaustive): how far below it the missed mates sit.
        "exhaustive_best_impostor": {
            "median": round(float(np.median(impostor_top)), 4),
            "max": round(float(np.max(impostor_top)), 4),
        },
        "indexed_misses": [{"probe": int(p), "mate_score": round(sc, 4)} for p, sc in missed][:20],
        "latency_s": {
            "exhaustive_mean": round(float(np.mean(timed["exhaustive"])), 5),
            "indexed_mean": round(float(np.mean(timed["indexed"])), 5),
            "indexed_p95": round(float(np.percentile(timed["indexed"], 95)), 5),
        },
        "candidates": int(candidates),
        "index": {
            "kind": index.kind,
            "cylinders": index.ntotal,
            "nlist": index.nlist,
            "nprobe": index.nprobe(),
            "neighbours": index.neighbours(),
            "build_s": build_s,
        },
        "bytes_per_template": {
            "gallery": round(gallery_bytes),
            "index": round(index_bytes),
            "total": round(gallery_bytes + index_bytes),
        },
        "setup_s": {
            "features": round(features_s, 1),
            "gallery_add" if not saved else "gallery_load": round(add_s, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finger_index", description=__doc__)
    parser.add_argument("--gallery", type=int, default=2000, help="templates enrolled")
    parser.add_argument("--probes", type=int, default=100, help="mated probes searched")
    parser.add_argument("--candidates", type=int, help="templates reranked (default: gallery's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-rebuild", action="store_true", help="skip timing a one-go index build (saves RAM)"
    )
    parser.add_argument(
        "--gallery-file",
        help="load the gallery from this file if it exists (an earlier run's, same --gallery and "
        "--seed), else build it and save it there",
    )
    parser.add_argument(
        "--exhaustive-probes",
        type=int,
        help="run the exhaustive yardstick on the first N probes only (and on every probe the "
        "index misses); default: all",
    )
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.probes <= args.gallery:
        parser.error("need 1 <= --probes <= --gallery (probe i is a mate of template i)")
    result = run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

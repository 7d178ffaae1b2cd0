"""Fingerprint matcher accuracy and speed: ``python -m benchmarks finger --data DIR --json``.

Accuracy is the matcher alone on the same minutiae as the peer: NBIS ``mindtct`` extracts the
FVC images once (optional peer, see ``benchmarks/peers/README.md``), then our matcher and
``bozorth3`` score every unordered pair of the same templates. Protocols, as in
``../shared/data/README.md``: genuine = every pair of impressions of one finger; impostor =
FVC's first-impression pairs and the all-pairs set (which resolves FMR to ~3.5e-4).

Speed is 1:1 matches per second on one thread, measured as an exhaustive scan of a gallery of
real templates with cylinders precomputed (mostly impostor pairs), against one probe at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

from benchmarks.metrics import eer, eer_interval, fnmr_at_fmr
from matcher.finger import FingerFeatures, features, match
from matcher.formats import xyt
from matcher.kernels import finger_cpu

FMR_TARGETS = (1e-2, 1e-3, 1e-4)


def _accuracy(gen: np.ndarray, imp: np.ndarray) -> dict[str, Any]:
    lo, hi = eer_interval(gen, imp)
    return {
        "genuine": int(gen.size),
        "impostor": int(imp.size),
        "eer": round(float(eer(gen, imp)), 5),
        "eer_fvc_bracket": [round(float(lo), 5), round(float(hi), 5)],
        "fnmr_at_fmr": {
            f"{t:g}": (None if (v := fnmr_at_fmr(gen, imp, t)) is None else round(float(v), 5))
            for t in FMR_TARGETS
        },
    }


def _gallery(feats: list[FingerFeatures]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    offsets = np.zeros(len(feats) + 1, np.int64)
    offsets[1:] = np.cumsum([f.n for f in feats])
    cols = [f.kernel_args() for f in feats]
    gal = (
        np.concatenate([c[0] for c in cols]),
        np.concatenate([c[1] for c in cols]),
        np.concatenate([c[2] for c in cols]),
        np.ascontiguousarray(np.concatenate([c[3] for c in cols], axis=1)),
        np.concatenate([c[4] for c in cols]),
    )
    return offsets, gal


def speed(feats: list[FingerFeatures], gallery_size: int, probes: int) -> dict[str, Any]:
    """Exhaustive 1:N scans on one thread over ``gallery_size`` templates cycled from ``feats``."""
    gallery = [feats[i % len(feats)] for i in range(gallery_size)]
    offsets, gal = _gallery(gallery)
    rows = np.arange(gallery_size, dtype=np.int64)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        finger_cpu.scan(feats[0].kernel_args(), offsets, gal, rows[:8])  # compile, untimed
        times = []
        # Probes spread evenly over the templates: the cost of a scan grows with the probe's
        # minutiae count, so a few neighbouring probes would misstate the median.
        for p in np.linspace(0, len(feats) - 1, probes).astype(int):
            t0 = time.perf_counter()
            finger_cpu.scan(feats[p].kernel_args(), offsets, gal, rows)
            times.append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(threads)
    per_minutia = 3 * 8 + 6 * 8 + 8 + 1  # x, y, theta (float64), 6 section words, mask, quality
    mean_n = float(offsets[-1] / gallery_size)
    return {
        "matches_per_s_one_thread": round(gallery_size / float(np.median(times))),
        "matches_per_s_fastest_and_slowest_probe": [
            round(gallery_size / float(np.min(times))),
            round(gallery_size / float(np.max(times))),
        ],
        "gallery": gallery_size,
        "probes": probes,
        "mean_minutiae_with_cylinders": round(mean_n, 1),
        "bytes_per_template": round(mean_n * per_minutia + 8),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.peers import fvc_nbis, nbis

    out: dict[str, Any] = {"benchmark": "finger", "sets": {}}
    if not nbis.available():
        out["error"] = "NBIS peer not built: see benchmarks/peers/README.md"
        return out
    nb = nbis.locate()
    all_feats: list[FingerFeatures] = []
    for data in args.data:
        images = fvc_nbis.list_images(Path(data))
        with tempfile.TemporaryDirectory() as tmp:
            xyt_paths = {k: nbis.mindtct(p, tmp, nbis=nb) for k, p in sorted(images.items())}
            sizes = {k: nbis.load_gray(p).shape for k, p in images.items()}
            templates = {
                k: xyt.decode(Path(xyt_paths[k]).read_text(), sizes[k][1], sizes[k][0], 500)
                for k in images
            }
            pairs = fvc_nbis.fvc_pairs(list(images))
            t0 = time.perf_counter()
            ours = np.array([match(templates[a], templates[b]) for a, b, _ in pairs])
            ours_s = time.perf_counter() - t0
            theirs = np.asarray(
                nbis.bozorth3_scores([(xyt_paths[a], xyt_paths[b]) for a, b, _ in pairs], nbis=nb),
                np.float64,
            )
        kinds = np.array([k for _, _, k in pairs])
        gen = kinds == "genuine"
        fvc = kinds == "impostor_fvc"
        out["sets"][Path(data).name] = {
            "images": len(images),
            "ours": {
                "all_pairs": _accuracy(ours[gen], ours[~gen]),
                "fvc": _accuracy(ours[gen], ours[fvc]),
                "python_loop_pairs_per_s": round(len(pairs) / ours_s),
            },
            "bozorth3": {
                "all_pairs": _accuracy(theirs[gen], theirs[~gen]),
                "fvc": _accuracy(theirs[gen], theirs[fvc]),
            },
        }
        all_feats += [features(templates[k]) for k in sorted(templates)]
        if args.scores:
            with open(args.scores, "a") as f:
                for (a, b, k), s, z in zip(pairs, ours, theirs, strict=True):
                    f.write(f"{Path(data).name},{a[0]}_{a[1]},{b[0]}_{b[1]},{k},{s:.6f},{z:g}\n")
    for name, res in out["sets"].items():
        ours_eer, peer_eer = res["ours"]["all_pairs"]["eer"], res["bozorth3"]["all_pairs"]["eer"]
        res["eer_ratio_to_bozorth3"] = round(ours_eer / peer_eer, 3) if peer_eer else None
        print(f"{name}: EER ours {ours_eer:.2%} vs bozorth3 {peer_eer:.2%}", file=sys.stderr)
    out["speed"] = speed(all_feats, args.gallery, args.probes)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("finger", help="matcher-alone EER vs NBIS bozorth3, and 1:1 speed")
    p.add_argument("--data", action="append", required=True, help="FVC set folder (repeatable)")
    p.add_argument("--gallery", type=int, default=20000, help="templates in the speed scan")
    p.add_argument("--probes", type=int, default=16, help="probes timed in the speed scan")
    p.add_argument("--scores", help="append every pair's scores (ours, bozorth3) to this CSV")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0 if "error" not in result else 2

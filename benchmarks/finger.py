"""Fingerprint matcher accuracy and speed: ``python -m benchmarks finger --data DIR --json``.

Accuracy is the matcher alone on the same minutiae as the peer: NBIS ``mindtct`` extracts the
FVC images once (optional peer, see ``benchmarks/peers/README.md``), then our matcher and
``bozorth3`` score every unordered pair of the same templates. Protocols, as in
``../shared/data/README.md``: genuine = every pair of impressions of one finger; impostor =
FVC's first-impression pairs and the all-pairs set (which resolves FMR to ~3.5e-4).

Speed is 1:1 matches per second on one thread, measured as an exhaustive top-k gallery search
(``finger_cpu.scan_top``, what ``FingerGallery.search(t, k, exhaustive=True)`` runs) of a gallery
of real templates with cylinders precomputed, one probe at a time. The gallery holds no template
of the probe's finger, so every pair is an impostor pair and the k-th best score that lets the
search skip work is an impostor's: the hardest case for it. The full scan (``finger_cpu.scan``,
every pair matched in full) is timed on the same rows in the same run, interleaved, as the
reference; the two differ only in how much work is skipped, never in the scores returned.
The same top-k search is timed a third time with the decision threshold an identification
against this gallery would use (``Thresholds.for_fpir("finger", 1e-3, gallery)``) as its floor:
what a 1:N identification or a duplicate search asks ("who scores above the threshold?"),
where nearly every impostor is proven below the floor before the costly steps.
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
from matcher.thresholds import Thresholds

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


def speed(
    feats: list[FingerFeatures], fingers: list[str], gallery_size: int, probes: int, k: int
) -> dict[str, Any]:
    """Exhaustive 1:N searches on one thread over ``gallery_size`` templates cycled from
    ``feats`` (``fingers`` names each one's finger): top-``k`` search and full scan, alternately
    first, on the rows of other fingers than the probe's."""
    gallery = [feats[i % len(feats)] for i in range(gallery_size)]
    offsets, gal = _gallery(gallery)
    finger_of = np.array([fingers[i % len(feats)] for i in range(gallery_size)])
    floor = Thresholds.load().for_fpir("finger", 1e-3, gallery_size)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        warm = np.arange(min(8, gallery_size), dtype=np.int64)
        finger_cpu.scan(feats[0].kernel_args(), offsets, gal, warm)  # compile, untimed
        finger_cpu.scan_top(feats[0].kernel_args(), offsets, gal, warm, k)
        top_rate, full_rate, in_full = [], [], []
        floor_rate, floor_in_full = [], []
        # Probes spread evenly over the templates: the cost of a scan grows with the probe's
        # minutiae count, so a few neighbouring probes would misstate the median.
        for i, p in enumerate(np.linspace(0, len(feats) - 1, probes).astype(int)):
            rows = np.flatnonzero(finger_of != fingers[p]).astype(np.int64)
            probe = feats[p].kernel_args()
            modes = ("top", "full", "floor")
            for which in modes[i % 3 :] + modes[: i % 3]:
                t0 = time.perf_counter()
                if which == "top":
                    scored = finger_cpu.scan_top(probe, offsets, gal, rows, k).scored
                    top_rate.append(rows.size / (time.perf_counter() - t0))
                    in_full.append(scored / rows.size)
                elif which == "floor":
                    scored = finger_cpu.scan_top(probe, offsets, gal, rows, k, floor).scored
                    floor_rate.append(rows.size / (time.perf_counter() - t0))
                    floor_in_full.append(scored / rows.size)
                else:
                    finger_cpu.scan(probe, offsets, gal, rows)
                    full_rate.append(rows.size / (time.perf_counter() - t0))
    finally:
        numba.set_num_threads(threads)
    per_minutia = 3 * 8 + 6 * 8 + 8 + 1  # x, y, theta (float64), 6 section words, mask, quality
    mean_n = float(offsets[-1] / gallery_size)
    top_median, full_median = float(np.median(top_rate)), float(np.median(full_rate))
    floor_median = float(np.median(floor_rate))
    print(
        f"speed, one thread: top-{k} search {top_median:,.0f} matches/s, with the "
        f"identification threshold {floor_median:,.0f}, full scan {full_median:,.0f} "
        f"({top_median / full_median:.2f}x, {floor_median / full_median:.2f}x)",
        file=sys.stderr,
    )
    return {
        "matches_per_s_one_thread": round(top_median),
        "matches_per_s_fastest_and_slowest_probe": [round(max(top_rate)), round(min(top_rate))],
        "measured_as": f"exhaustive top-{k} search, impostor rows only",
        "k": k,
        "full_scan_matches_per_s_one_thread": round(full_median),
        "top_k_over_full_scan": round(top_median / full_median, 3),
        "fraction_matched_in_full": round(float(np.median(in_full)), 4),
        "at_threshold": {
            "matches_per_s_one_thread": round(floor_median),
            "matches_per_s_fastest_and_slowest_probe": [
                round(max(floor_rate)),
                round(min(floor_rate)),
            ],
            "measured_as": f"exhaustive top-{k} search with min_score = the threshold, "
            "impostor rows only",
            "min_score": round(floor, 6),
            "threshold_for": f"identification at FPIR 1e-3 against {gallery_size} templates",
            "over_full_scan": round(floor_median / full_median, 3),
            "fraction_matched_in_full": round(float(np.median(floor_in_full)), 4),
        },
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
    all_fingers: list[str] = []
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
        all_fingers += [f"{Path(data).name}/{k[0]}" for k in sorted(templates)]
        if args.scores:
            with open(args.scores, "a") as f:
                for (a, b, k), s, z in zip(pairs, ours, theirs, strict=True):
                    f.write(f"{Path(data).name},{a[0]}_{a[1]},{b[0]}_{b[1]},{k},{s:.6f},{z:g}\n")
    for name, res in out["sets"].items():
        ours_eer, peer_eer = res["ours"]["all_pairs"]["eer"], res["bozorth3"]["all_pairs"]["eer"]
        res["eer_ratio_to_bozorth3"] = round(ours_eer / peer_eer, 3) if peer_eer else None
        print(f"{name}: EER ours {ours_eer:.2%} vs bozorth3 {peer_eer:.2%}", file=sys.stderr)
    out["speed"] = speed(all_feats, all_fingers, args.gallery, args.probes, args.k)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("finger", help="matcher-alone EER vs NBIS bozorth3, and 1:1 speed")
    p.add_argument("--data", action="append", required=True, help="FVC set folder (repeatable)")
    p.add_argument("--gallery", type=int, default=20000, help="templates in the speed scan")
    p.add_argument("--probes", type=int, default=16, help="probes timed in the speed scan")
    p.add_argument("--k", type=int, default=10, help="results of the timed top-k search")
    p.add_argument("--scores", help="append every pair's scores (ours, bozorth3) to this CSV")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    result = run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0 if "error" not in result else 2

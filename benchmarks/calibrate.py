"""Measure impostor distributions on real images and write the service's thresholds:
``python -m benchmarks calibrate --finger DIR [--finger DIR ...] --iris DIR --out FILE``.

Runs the accuracy harness's extraction and all-pairs comparison (:mod:`benchmarks.accuracy`) and
keeps the impostor scores: finger similarity, and normalised iris HD (``1 - score``). Pairs with a
refused image are left out (they say nothing about the score distribution). The fitted
:class:`matcher.thresholds.Calibration` of each modality goes to ``FILE`` (default: the file the
package ships, ``matcher/thresholds.json``), with the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from benchmarks import accuracy
from benchmarks.datasets import all_pairs, fvc_samples, iitd_samples
from matcher.iris_params import DEFAULT_MAX_SHIFT_COLUMNS
from matcher.thresholds import Calibration, Thresholds


def _impostors(kind: str, folders: list[str]) -> tuple[np.ndarray, list[str]]:
    from matcher.extract.fingerprint import extract_fingerprint
    from matcher.extract.iris import extract_iris

    scores, used = [], []
    for d in folders:
        if kind == "finger":
            samples = fvc_samples(d)
            ex = accuracy.extract_all(
                samples, lambda px, s: extract_fingerprint(px).template, f"finger {d}"
            )
            pairs = all_pairs(samples)
            s, _ = accuracy._finger_scores(ex.templates, pairs)
        else:
            samples = iitd_samples(d)
            ex = accuracy.extract_all(
                samples, lambda px, s: extract_iris(px, eye=s.identity[-1]).template, f"iris {d}"
            )
            pairs = all_pairs(samples)
            s, _ = accuracy._iris_scorer(False, DEFAULT_MAX_SHIFT_COLUMNS)(ex.templates, pairs)
        imp = s[~pairs.genuine]
        imp = imp[imp > accuracy.REFUSED_SCORE]
        scores.append(imp if kind == "finger" else 1.0 - imp)
        used.append(f"{d} ({len(samples)} images, {imp.size} impostor pairs)")
    return np.concatenate(scores), used


def run(args: argparse.Namespace) -> dict[str, Any]:
    cmd = "python -m benchmarks calibrate " + " ".join(
        [f"--finger {d}" for d in args.finger] + [f"--iris {d}" for d in args.iris]
    )
    fi, fused = _impostors("finger", args.finger)
    ii, iused = _impostors("iris", args.iris)
    th = Thresholds(
        Calibration.fit("finger", fi, True, f"{cmd}; " + "; ".join(fused)),
        Calibration.fit("iris", ii, False, f"{cmd}; " + "; ".join(iused)),
    )
    th.save(args.out)
    return {
        "out": args.out,
        "finger_impostors": int(fi.size),
        "iris_impostors": int(ii.size),
        "thresholds": [
            {"modality": m, "kind": k, "rate": r, "threshold": round(t, 5)}
            for m, k, r, t in th.table(1)
            if k == "fmr"
        ],
    }


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("calibrate", help="impostor distributions -> thresholds.json")
    p.add_argument("--finger", action="append", required=True, help="FVC-named folder")
    p.add_argument("--iris", action="append", required=True, help="IITD-named folder")
    p.add_argument("--out", default="matcher/thresholds.json")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    out = run(args)
    print(json.dumps(out, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0

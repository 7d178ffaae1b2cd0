"""Accuracy of extraction + matching on real images:
``python -m benchmarks accuracy {fingerprint,iris} --data DIR [--json] [--scores F] [--plots D]``.

Steps, for either modality:

1. List the images (:mod:`benchmarks.datasets`: FVC naming for fingerprints, IITD naming for
   irises; nothing else about a dataset's layout is assumed).
2. Extract every image on one core (numba and OpenCV limited to one thread; the first image is
   extracted once untimed so JIT compilation is not counted). An image the extractor refuses
   (:class:`~matcher.errors.QualityTooLow` or :class:`~matcher.errors.InvalidImage`) is a
   *failure to enrol*; its reason is listed, and every pair it is in scores
   :data:`REFUSED_SCORE`, below every real score, so it counts as a non-match: FTE costs FNMR.
3. Compare every unordered pair once (genuine = same identity). Fingerprints: our matcher's
   score in [0, 1]. Irises: ``1 - HD``, with HD the masked fractional Hamming distance, minimum
   over rotations, normalised for the bits compared (Daugman 2004, see
   :func:`matcher.iris.normalize_hd`) unless ``--raw-hd``.
4. Report EER, FNMR at FMR 1e-2 / 1e-3 / 1e-4 (``null`` where the impostor count cannot resolve
   it), FTE, median extraction ms per image and matches per second.
5. Fingerprints only, when NBIS is built (``benchmarks/peers/``, optional, never a product
   dependency): mindtct + bozorth3 on the same pairs, and our matcher on mindtct's minutiae,
   so the extractor and the matcher are each compared with the reference system.

``--scores FILE`` writes ``probe,reference,genuine,score`` for every pair; ``--plots DIR`` a DET
curve and score histograms as PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.datasets import Pairs, Sample, all_pairs, fvc_samples, iitd_samples
from benchmarks.metrics import det_curve, eer, fnmr_at_fmr
from matcher.errors import InvalidImage, QualityTooLow
from matcher.iris_params import DEFAULT_MAX_SHIFT_COLUMNS

REFUSED_SCORE = -1.0
FMR_POINTS = ("0.01", "0.001", "0.0001")


@dataclass
class Extracted:
    """Per image: the template (``None`` when refused), the refusal reason, and seconds taken."""

    templates: list[Any]
    reasons: dict[int, str]
    seconds: list[float]


Extractor = Callable[[npt.NDArray[np.uint8], Sample], Any]


def extract_all(samples: list[Sample], extract: Extractor, label: str) -> Extracted:
    """Run ``extract(pixels, sample)`` on every sample, one at a time. Timing covers extraction
    from decoded pixels; reading and decoding the file is not counted."""
    from tqdm import tqdm

    from matcher.extract.image import load_image

    templates: list[Any] = []
    reasons: dict[int, str] = {}
    seconds: list[float] = []
    for i, s in enumerate(tqdm(samples, desc=f"extract {label}", unit="img", file=sys.stderr)):
        try:
            pixels = load_image(s.path).pixels
        except InvalidImage as e:
            templates.append(None)
            reasons[i] = str(e)
            continue
        if i == 0:
            try:  # warm-up: JIT compilation and OpenCV's first-call set-up are not timed
                extract(pixels, s)
            except (QualityTooLow, InvalidImage):
                pass
        t0 = time.perf_counter()
        try:
            templates.append(extract(pixels, s))
        except (QualityTooLow, InvalidImage) as e:
            templates.append(None)
            reasons[i] = str(e)
        seconds.append(time.perf_counter() - t0)
    return Extracted(templates, reasons, seconds)


def summarise(
    scores: npt.NDArray[np.float64], pairs: Pairs, n_images: int, n_refused: int
) -> dict[str, Any]:
    gen, imp = scores[pairs.genuine], scores[~pairs.genuine]
    out: dict[str, Any] = {
        "genuine": int(gen.size),
        "impostor": int(imp.size),
        "eer": round(eer(gen, imp), 6) if gen.size and imp.size else None,
        "fnmr_at_fmr": {},
        "fte": round(n_refused / n_images, 6),
    }
    for p in FMR_POINTS:
        v = fnmr_at_fmr(gen, imp, float(p)) if gen.size and imp.size else None
        out["fnmr_at_fmr"][p] = None if v is None else round(v, 6)
    return out


# ---------------------------------------------------------------------------------------------
# Fingerprints


def _finger_scores(templates: list[Any], pairs: Pairs) -> tuple[npt.NDArray[np.float64], float]:
    """Our matcher on every pair (refused images score REFUSED_SCORE); also matches per second."""
    from matcher.finger import features
    from matcher.finger_gallery import FingerGallery

    ok = [i for i, t in enumerate(templates) if t is not None]
    feats = {i: features(templates[i]) for i in ok}
    g = FingerGallery()
    if ok:
        g.add(np.asarray(ok, np.int64), [templates[i] for i in ok])
    scores = np.full(len(pairs), REFUSED_SCORE)
    usable = np.array(
        [
            templates[a] is not None and templates[b] is not None
            for a, b in zip(pairs.a, pairs.b, strict=True)
        ],
        bool,
    )
    elapsed, compared = 0.0, 0
    for a in np.unique(pairs.a[usable]):
        sel = np.flatnonzero(usable & (pairs.a == a))
        t0 = time.perf_counter()
        scores[sel] = g.score(feats[int(a)], pairs.b[sel])
        elapsed += time.perf_counter() - t0
        compared += sel.size
    return scores, (compared / elapsed if elapsed > 0 else math.nan)


def _nbis_side_by_side(
    samples: list[Sample], pairs: Pairs, dpi: int
) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float64]]]:
    from benchmarks.peers import nbis
    from matcher.formats import xyt

    nb = nbis.locate()
    with tempfile.TemporaryDirectory(prefix="accuracy-nbis-") as tmp:
        xyts, wall = [], []
        for s in samples:
            path, t = nbis.mindtct_timed(s.path, tmp, nbis=nb, ppi=dpi)
            xyts.append(path)
            wall.append(t.wall_s)
        boz, bt = nbis.bozorth3_scores_timed(
            [(xyts[a], xyts[b]) for a, b in zip(pairs.a, pairs.b, strict=True)], nbis=nb
        )
        mindtct_templates: list[Any] = []
        refused = 0
        for s, p in zip(samples, xyts, strict=True):
            h, w = nbis.load_gray(s.path).shape
            try:
                mindtct_templates.append(xyt.decode(Path(p).read_text(), w, h, dpi))
            except ValueError:  # mindtct found no minutiae: nothing our matcher can compare
                mindtct_templates.append(None)
                refused += 1
    boz_scores = np.asarray(boz, np.float64)
    ours_on_mindtct, _ = _finger_scores(mindtct_templates, pairs)
    nb_summary = summarise(boz_scores, pairs, len(samples), 0)
    nb_summary["extract_ms"] = round(float(np.median(wall)) * 1e3, 2)
    nb_summary["matches_per_s"] = round(len(pairs) / bt.wall_s, 1)
    nb_summary["note"] = "mindtct + bozorth3, one process per image / per 5,000 pairs, one core"
    mix = summarise(ours_on_mindtct, pairs, len(samples), refused)
    mix["note"] = "NBIS mindtct minutiae, our matcher: the matcher's share of the difference"
    curves = {"NBIS mindtct + bozorth3": boz_scores, "mindtct + our matcher": ours_on_mindtct}
    return {"nbis": nb_summary, "mindtct_with_our_matcher": mix}, curves


def run_fingerprint(args: argparse.Namespace) -> dict[str, Any]:
    from matcher.extract.fingerprint import extract_fingerprint

    samples = fvc_samples(args.data)
    if len(samples) < 2:
        raise ValueError(f"no <finger>_<impression> images in {args.data}")

    def extract(pixels: npt.NDArray[np.uint8], s: Sample) -> Any:
        return extract_fingerprint(pixels, dpi=args.dpi).template

    return _run(args, "fingerprint", samples, extract, _finger_scores, _nbis_side_by_side)


# ---------------------------------------------------------------------------------------------
# Irises


def _iris_scorer(raw_hd: bool, max_shift: int) -> Callable[..., Any]:
    def scores_of(templates: list[Any], pairs: Pairs) -> tuple[npt.NDArray[np.float64], float]:
        from matcher.iris import hamming_distance_packed, normalize_hd, pack_codes

        ok = np.array([t is not None for t in templates], bool)
        usable = ok[pairs.a] & ok[pairs.b]
        scores = np.full(len(pairs), REFUSED_SCORE)
        if not usable.any():
            return scores, math.nan
        first = next(t for t in templates if t is not None)
        geometry = first.geometry()
        codes = np.zeros((len(templates), *geometry.shape), bool)
        masks = np.zeros_like(codes)
        for i, t in enumerate(templates):
            if t is not None:
                codes[i], masks[i] = t.code, t.mask
        pc, pm = pack_codes(codes, geometry), pack_codes(masks, geometry)
        a, b = pairs.a[usable], pairs.b[usable]
        hamming_distance_packed(pc[a[:1]], pm[a[:1]], pc[b[:1]], pm[b[:1]], geometry, max_shift)
        t0 = time.perf_counter()
        hd, _, n_bits = hamming_distance_packed(pc[a], pm[a], pc[b], pm[b], geometry, max_shift)
        elapsed = time.perf_counter() - t0
        d = hd if raw_hd else normalize_hd(hd, n_bits)
        # Too few bits in common to compare (NaN) is a non-match, like a refusal.
        scores[usable] = np.where(np.isnan(d), REFUSED_SCORE, 1.0 - d)
        return scores, a.size / elapsed

    return scores_of


def run_iris(args: argparse.Namespace) -> dict[str, Any]:
    from matcher.extract.iris import extract_iris

    samples = iitd_samples(args.data)
    if len(samples) < 2:
        raise ValueError(f"no <subject>/<image>_<eye> images under {args.data}")

    def extract(pixels: npt.NDArray[np.uint8], s: Sample) -> Any:
        return extract_iris(pixels, eye=s.identity[-1]).template

    return _run(args, "iris", samples, extract, _iris_scorer(args.raw_hd, args.max_shift), None)


# ---------------------------------------------------------------------------------------------
# Shared run, outputs


def _run(
    args: argparse.Namespace,
    modality: str,
    samples: list[Sample],
    extract: Extractor,
    score_pairs: Callable[[list[Any], Pairs], tuple[npt.NDArray[np.float64], float]],
    peers: Callable[[list[Sample], Pairs, int], tuple[dict[str, Any], dict[str, Any]]] | None,
) -> dict[str, Any]:
    import cv2
    import numba

    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    ex = extract_all(samples, extract, modality)
    pairs = all_pairs(samples)
    scores, per_s = score_pairs(ex.templates, pairs)
    out: dict[str, Any] = {
        "benchmark": f"accuracy {modality}",
        "data": str(args.data),
        "images": len(samples),
        "identities": len({s.identity for s in samples}),
        **summarise(scores, pairs, len(samples), len(ex.reasons)),
        "extract_ms": round(float(np.median(ex.seconds)) * 1e3, 2) if ex.seconds else None,
        "extract_ms_p90": (
            round(float(np.percentile(ex.seconds, 90)) * 1e3, 2) if ex.seconds else None
        ),
        "matches_per_s": round(per_s, 1) if math.isfinite(per_s) else None,
        "refused": {samples[i].name: r for i, r in sorted(ex.reasons.items())},
        # The same figures over pairs of enrolled images only: the matcher's share, apart from
        # what failure to enrol costs (the headline figures above count that as non-matches).
        "among_enrolled": _among_enrolled(scores, pairs),
        "score": "similarity, higher = more alike; a refused image scores "
        f"{REFUSED_SCORE}, below every real score",
        "cores": 1,
    }
    curves: dict[str, Any] = {}
    if peers is not None and not args.no_peer:
        from benchmarks.peers import nbis

        if nbis.available():
            out["peers"], curves = peers(samples, pairs, getattr(args, "dpi", 500))
            ref = out["peers"]["nbis"]
            if ref["eer"]:
                out["eer_ratio_to_nbis"] = round(out["eer"] / ref["eer"], 3)
            out["extract_time_ratio_to_nbis"] = round(out["extract_ms"] / ref["extract_ms"], 2)
        else:
            out["peers"] = {"nbis": "not built: see benchmarks/peers/README.md"}
    if args.scores:
        _write_scores(args.scores, samples, pairs, scores)
    if args.plots:
        out["plots"] = _plots(
            Path(args.plots), modality, Path(args.data).name, scores, pairs, out, curves
        )
    return out


def _among_enrolled(scores: npt.NDArray[np.float64], pairs: Pairs) -> dict[str, Any]:
    ok = scores > REFUSED_SCORE
    kept = Pairs(pairs.a[ok], pairs.b[ok], pairs.genuine[ok])
    out = summarise(scores[ok], kept, 1, 0)
    del out["fte"]
    return out


def _write_scores(path: str, samples: list[Sample], pairs: Pairs, scores: Any) -> None:
    with open(path, "w") as f:
        f.write("probe,reference,genuine,score\n")
        for a, b, g, s in zip(pairs.a, pairs.b, pairs.genuine, scores, strict=True):
            f.write(f"{samples[a].name},{samples[b].name},{int(g)},{s:.6f}\n")


def _plots(
    folder: Path,
    modality: str,
    name: str,
    scores: Any,
    pairs: Pairs,
    out: dict[str, Any],
    others: dict[str, Any],
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    gen, imp = scores[pairs.genuine], scores[~pairs.genuine]
    written = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for label, s in [("amayesh", scores), *others.items()]:
        g, i = s[pairs.genuine], s[~pairs.genuine]
        c = det_curve(g, i)
        keep = (c.fmr > 0) & (c.fnmr > 0)  # log axes: the zero-rate ends cannot be drawn
        ax.loglog(c.fmr[keep], c.fnmr[keep], label=f"{label} (EER {eer(g, i):.2%})")
    ax.plot([1e-5, 1], [1e-5, 1], color="lightgrey", lw=0.8)
    ax.set(
        xlabel="FMR",
        ylabel="FNMR",
        title=f"DET, {modality}: {name}",
        xlim=(1e-5, 1),
        ylim=(1e-4, 1),
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    p = folder / f"det_{modality}_{name}.png"
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(p))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    real_g, real_i = gen[gen > REFUSED_SCORE], imp[imp > REFUSED_SCORE]
    bins = np.linspace(0.0, 1.0, 81)
    ax.hist(real_i, bins=bins, alpha=0.6, density=True, label=f"impostor ({real_i.size})")
    ax.hist(real_g, bins=bins, alpha=0.6, density=True, label=f"genuine ({real_g.size})")
    ax.set(
        xlabel="score (higher = more alike)", ylabel="density", title=f"scores, {modality}: {name}"
    )
    ax.legend()
    p = folder / f"scores_{modality}_{name}.png"
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(p))
    return written


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("accuracy", help="extraction + matching accuracy on real images")
    modes = p.add_subparsers(dest="modality", required=True)
    for name, fn, data_help in (
        ("fingerprint", run_fingerprint, "folder of <finger>_<impression>.tif/.png images"),
        ("iris", run_iris, "folder of <subject>/<image>_<eye>.png/.bmp/.jpg images"),
    ):
        m = modes.add_parser(name, help=f"{name} accuracy")
        m.add_argument("--data", required=True, help=data_help)
        m.add_argument("--json", action="store_true", help="print one JSON line")
        m.add_argument("--scores", help="write every pair as CSV probe,reference,genuine,score")
        m.add_argument("--plots", help="folder for the DET curve and score histograms (PNG)")
        if name == "fingerprint":
            m.add_argument("--dpi", type=int, default=500, help="resolution of the images")
            m.add_argument("--no-peer", action="store_true", help="skip NBIS even if built")
        else:
            m.add_argument(
                "--max-shift",
                type=int,
                default=DEFAULT_MAX_SHIFT_COLUMNS,
                help="rotation search, columns (default: the service's)",
            )
            m.add_argument("--raw-hd", action="store_true", help="score 1 - HD, not normalised")
        m.set_defaults(func=_main, run=fn)


def _main(args: argparse.Namespace) -> int:
    if not Path(args.data).is_dir():
        print(f"accuracy: no such folder {args.data}", file=sys.stderr)
        return 1
    result = args.run(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0

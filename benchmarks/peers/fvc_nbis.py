"""NBIS mindtct + bozorth3 on an FVC set: ``python -m benchmarks.peers.fvc_nbis --data DIR --json``.

An optional peer baseline for our fingerprint accuracy figures, on the same images and the same
FVC protocol (see ``../shared/data/README.md``). ``DIR`` holds ``<finger>_<impression>.tif``
(FVC2002 DB1_B/DB3_B: fingers 101-110 x impressions 1-8, 500 dpi). Steps:

1. ``mindtct`` on every image, one process at a time (one core), timing each; the ``.xyt``
   files are kept in ``--xyt-out`` (default ``/tmp/nbis_xyt/<set name>``) for other
   benchmarks to reuse, with ``index.tsv`` (image, xyt, minutiae count) and, after step 2,
   ``scores.tsv`` (probe, gallery, kind, score).
2. ``bozorth3`` (one process per 5,000 pairs, one core) on every unordered pair of images,
   scored once, in one order: the lower (finger, impression) is the probe. FVC also compares
   each pair once. Kinds: ``genuine`` = both impressions of one finger (10 x 28 = 280);
   impostor ``all`` = different fingers (2,880); impostor ``fvc`` = the subset where both are
   impression 1 (45).
3. Accuracy with :mod:`benchmarks.metrics`: for each impostor protocol, EER (interpolated where
   FMR and FNMR cross), the FVC2000 EER bracket and its mean, and FNMR at FMR 1e-2 / 1e-3
   (``null`` where the impostor count cannot resolve that FMR: 45 impostors resolve neither).

Prints one JSON object (``--json``) or the same indented. Exits 2 with a message when NBIS is
not built (see ``benchmarks/peers/README.md``), 1 on a data problem.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.metrics import eer, eer_interval, fnmr_at_fmr
from benchmarks.peers import nbis

_NAME = re.compile(r"^(\d+)_(\d+)\.(?:tif|tiff|png|bmp)$", re.IGNORECASE)
FMR_TARGETS = (1e-2, 1e-3)


def list_images(data: Path) -> dict[tuple[int, int], Path]:
    """``{(finger, impression): path}`` for the ``<finger>_<impression>.*`` images in ``data``."""
    out: dict[tuple[int, int], Path] = {}
    for p in sorted(data.iterdir()):
        m = _NAME.match(p.name)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            if key in out:
                raise ValueError(f"two images for finger {key[0]} impression {key[1]} in {data}")
            out[key] = p
    return out


def fvc_pairs(
    keys: Sequence[tuple[int, int]],
) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    """Every unordered pair of images once, as ``(probe, gallery, kind)``.

    ``probe < gallery`` in (finger, impression) order. ``kind`` is ``"genuine"`` (same finger),
    ``"impostor_fvc"`` (different fingers, both the finger's first impression) or
    ``"impostor"`` (other different-finger pairs). The FVC impostor protocol is the
    ``impostor_fvc`` pairs; the all-pairs one is ``impostor`` plus ``impostor_fvc``.
    """
    first: dict[int, tuple[int, int]] = {}
    for f, i in sorted(keys):
        first.setdefault(f, (f, i))
    out = []
    for a, b in itertools.combinations(sorted(keys), 2):
        if a[0] == b[0]:
            kind = "genuine"
        elif first[a[0]] == a and first[b[0]] == b:
            kind = "impostor_fvc"
        else:
            kind = "impostor"
        out.append((a, b, kind))
    return out


def _accuracy(gen: np.ndarray, imp: np.ndarray) -> dict[str, Any]:
    lo, hi = eer_interval(gen, imp)
    return {
        "genuine": int(gen.size),
        "impostor": int(imp.size),
        "eer": round(eer(gen, imp), 5),
        "eer_fvc": round((lo + hi) / 2, 5),
        "eer_fvc_bracket": [round(lo, 5), round(hi, 5)],
        "fnmr_at_fmr": {
            f"{t:.0e}": (None if (v := fnmr_at_fmr(gen, imp, t)) is None else round(v, 5))
            for t in FMR_TARGETS
        },
        "genuine_score_median": float(np.median(gen)),
        "impostor_score_median": float(np.median(imp)),
        "impostor_score_max": int(imp.max()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    images = list_images(data)
    if len(images) < 2:
        raise ValueError(f"no <finger>_<impression> images in {data}")
    nb = nbis.locate() if args.nbis_dir is None else nbis.from_dir(Path(args.nbis_dir))
    if nb is None:
        raise nbis.NbisUnavailable(f"{args.nbis_dir} does not hold mindtct and bozorth3")
    out_dir = Path(args.xyt_out or f"/tmp/nbis_xyt/{data.name}")
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. mindtct, one image at a time.
    xyt: dict[tuple[int, int], Path] = {}
    wall, cpu, counts = [], [], []
    index_lines = ["image\txyt\tminutiae"]
    for key, img in sorted(images.items()):
        path, t = nbis.mindtct_timed(img, out_dir, nbis=nb)
        xyt[key] = path
        wall.append(t.wall_s)
        cpu.append(t.cpu_s)
        n = len(nbis.read_xyt(path))
        counts.append(n)
        index_lines.append(f"{img}\t{path}\t{n}")
    (out_dir / "index.tsv").write_text("\n".join(index_lines) + "\n")

    # 2. bozorth3 on every unordered pair, once.
    pairs = fvc_pairs(list(images))
    scores, bt = nbis.bozorth3_scores_timed([(xyt[a], xyt[b]) for a, b, _ in pairs], nbis=nb)
    score_lines = ["probe\tgallery\tkind\tscore"]
    for (a, b, k), sc in zip(pairs, scores, strict=True):
        score_lines.append(f"{xyt[a].name}\t{xyt[b].name}\t{k}\t{sc}")
    (out_dir / "scores.tsv").write_text("\n".join(score_lines) + "\n")

    s = np.asarray(scores, dtype=np.int64)
    kinds = np.array([k for _, _, k in pairs])
    gen = s[kinds == "genuine"]
    imp_fvc = s[kinds == "impostor_fvc"]
    imp_all = s[kinds != "genuine"]
    fingers = sorted({f for f, _ in images})
    return {
        "suite": "fvc_nbis",
        "set": data.name,
        "data": str(data),
        "images": len(images),
        "fingers": len(fingers),
        "impressions_per_finger": sorted({sum(1 for f, _ in images if f == g) for g in fingers}),
        "peer": nb.describe(),
        "protocol": {
            "pairs": "each unordered pair once; probe = lower (finger, impression)",
            "score": "bozorth3 default (NIST internal xyt, max 150 minutiae, one direction)",
            "accept": "score >= threshold",
        },
        "fvc": _accuracy(gen, imp_fvc) if imp_fvc.size else None,
        "all_pairs": _accuracy(gen, imp_all),
        "bozorth3_overflow_scores": int((s == nbis.BOZORTH3_OVERFLOW_SCORE).sum()),
        "minutiae_per_image": {
            "median": float(np.median(counts)),
            "min": int(min(counts)),
            "max": int(max(counts)),
            "empty": int(sum(c == 0 for c in counts)),
        },
        "timing": {
            "cores": 1,
            "mindtct_ms_median": round(nbis.median_ms(wall) or 0.0, 2),
            "mindtct_cpu_ms_median": round(nbis.median_ms(cpu) or 0.0, 2),
            "mindtct_note": "per image, one mindtct process: start + read + extract + write",
            "bozorth3_pairs": len(scores),
            "bozorth3_s": round(bt.wall_s, 3),
            "bozorth3_matches_per_s": round(len(scores) / bt.wall_s, 1),
            "bozorth3_note": "mates-list batches: per pair, load both .xyt + one comparison",
        },
        "xyt_out": str(out_dir),
        "machine": {"cpu": _cpu_name(), "python": platform.python_version()},
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.fvc_nbis", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--data", required=True, help="FVC set folder (<finger>_<impression>.tif)")
    p.add_argument("--xyt-out", help="where to keep the .xyt files (default /tmp/nbis_xyt/<set>)")
    p.add_argument(
        "--nbis-dir", help=f"folder with mindtct and bozorth3 (default: ${nbis.ENV_VAR}, ...)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"fvc_nbis: no such folder {args.data} (the real data is optional)", file=sys.stderr)
        return 1
    try:
        result = run(args)
    except nbis.NbisUnavailable as e:
        print(f"fvc_nbis: skipped: {e}", file=sys.stderr)
        return 2
    except (ValueError, nbis.NbisError) as e:
        print(f"fvc_nbis: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

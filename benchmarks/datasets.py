"""Image sets named the FVC or the IITD way, and the all-pairs comparison protocol over them.

The accuracy harness knows datasets only through these two naming schemes:

- **FVC** (fingerprints): ``<finger>_<impression>.<ext>`` in one folder, e.g. ``101_3.tif``.
  One identity per finger.
- **IITD** (irises): ``<subject>/<image>_<eye>.<ext>``, e.g. ``001/04_L.png``. Left and right
  eyes of one subject are different identities.

Extensions accepted: ``tif``, ``tiff``, ``png``, ``bmp``, ``jpg``, ``jpeg``, ``jp2``, ``wsq``.
Protocol: every unordered pair of images once; genuine when both show the same identity,
impostor otherwise. The probe of a pair is the image listed first (sorted by identity, then
image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

_EXT = r"(?:tif|tiff|png|bmp|jpg|jpeg|jp2|wsq)"
_FVC = re.compile(rf"^(\d+)_(\d+)\.{_EXT}$", re.IGNORECASE)
_IITD = re.compile(rf"^(\d+)_([LR])\.{_EXT}$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One image: where it is, whose it is (``identity``), and a short printable ``name``."""

    path: Path
    identity: str
    name: str


def fvc_samples(folder: str | Path) -> list[Sample]:
    """The ``<finger>_<impression>`` images of ``folder``, sorted by finger then impression."""
    d = Path(folder)
    found: dict[tuple[int, int], Path] = {}
    for p in sorted(d.iterdir()):
        m = _FVC.match(p.name)
        if m is None or not p.is_file():
            continue
        key = (int(m.group(1)), int(m.group(2)))
        if key in found:
            raise ValueError(f"two images for finger {key[0]} impression {key[1]} in {d}")
        found[key] = p
    return [Sample(p, str(f), f"{f}_{i}") for (f, i), p in sorted(found.items())]


def iitd_samples(folder: str | Path) -> list[Sample]:
    """The ``<subject>/<image>_<eye>`` images under ``folder``; identity is subject and eye."""
    d = Path(folder)
    found: dict[tuple[int, str, int], Path] = {}
    for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name.isdigit()):
        for p in sorted(sub.iterdir()):
            m = _IITD.match(p.name)
            if m is None or not p.is_file():
                continue
            key = (int(sub.name), m.group(2).upper(), int(m.group(1)))
            if key in found:
                raise ValueError(f"two images {key} under {d}")
            found[key] = p
    return [
        Sample(p, f"{s:03d}_{eye}", f"{s:03d}/{i:02d}_{eye}")
        for (s, eye, i), p in sorted(found.items())
    ]


@dataclass(frozen=True)
class Pairs:
    """Every unordered pair of samples once: indices ``a < b`` into the sample list, and
    ``genuine`` (same identity). All arrays have one entry per pair."""

    a: npt.NDArray[np.int64]
    b: npt.NDArray[np.int64]
    genuine: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.a.size)


def all_pairs(samples: list[Sample]) -> Pairs:
    n = len(samples)
    a, b = np.triu_indices(n, k=1)
    ident = np.array([s.identity for s in samples])
    return Pairs(a.astype(np.int64), b.astype(np.int64), ident[a] == ident[b])

"""Fingerprint matching: MCC-family bit cylinders and a consolidated 1:1 score in [0, 1].

Algorithm steps (1:1)
1. Rescale minutiae to 500 dpi; build one bit cylinder per minutia (Cappelli, Ferrara, Maltoni,
   TPAMI 2010, with 8 x 8 cells x 6 sections so a cylinder is seven 64-bit words), dropping the
   cylinders MCC discards. This is the packed, match-ready form (:class:`FingerFeatures`), built
   once at enrolment.
2. Local similarities of cylinder pairs whose directions differ by at most 90 degrees.
3. One-to-one assignment of the best pairs, then relaxation (MCC's LSS-R): a pair supported by
   geometrically compatible pairs keeps its weight, an isolated one loses it.
4. The score is the mean relaxed similarity of the n_P most efficient pairs.

Scores: 0 = nothing in common, 1 = identical; what threshold gives which FMR is measured on real
data by the accuracy harness, never assumed.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from matcher import finger_params as fp
from matcher.errors import InvalidTemplate
from matcher.kernels import finger_cpu
from matcher.templates import FingerTemplate

__all__ = ["FingerTemplate", "FingerFeatures", "features", "match"]


@dataclass(frozen=True, eq=False)
class FingerFeatures:
    """Match-ready form of one finger: minutiae with valid cylinders, at 500 dpi.

    ``x, y``: float64 ``(m,)`` pixels, origin top-left, y down; ``theta``: float64 radians (ISO);
    ``quality``: uint8 ``(m,)``; ``bits``: uint64 ``(6, m)``, section-major (one word per angular
    section per minutia, so a kernel compares one minutia against all of another finger's in a
    vector loop);
    ``mask``: uint64 ``(m,)`` valid cells. ``m`` may be 0 (nothing matchable: every score is 0).
    Minutiae are in ascending ``theta`` (the kernels are fastest so; any order gives the same
    scores up to ties).
    """

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    theta: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    bits: npt.NDArray[np.uint64]
    mask: npt.NDArray[np.uint64]

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def kernel_args(self) -> tuple[np.ndarray, ...]:
        """``(X, Y_up, theta, bits, mask)`` as the kernels read them."""
        return (self.x, -self.y, self.theta, self.bits, self.mask)


_cache: weakref.WeakKeyDictionary[FingerTemplate, FingerFeatures] = weakref.WeakKeyDictionary()


def features(t: FingerTemplate) -> FingerFeatures:
    """Build (or fetch from a per-template cache) the match-ready form of a template."""
    if not isinstance(t, FingerTemplate):
        raise InvalidTemplate(f"expected a FingerTemplate, got {type(t).__name__}")
    cached = _cache.get(t)
    if cached is not None:
        return cached
    scale = fp.REFERENCE_DPI / float(t.dpi)
    x = np.asarray(t.x, np.float64) * scale
    y = np.asarray(t.y, np.float64) * scale
    theta = np.asarray(t.theta, np.float64)
    bits, mask, ok = finger_cpu.build_cylinders(x, y, theta)
    # Kept minutiae in ascending direction: the local-similarity kernel then visits only the
    # contiguous run of another finger's minutiae within the direction window.
    keep = np.flatnonzero(ok)
    keep = keep[np.argsort(theta[keep], kind="stable")]
    f = FingerFeatures(
        x=np.ascontiguousarray(x[keep]),
        y=np.ascontiguousarray(y[keep]),
        theta=np.ascontiguousarray(theta[keep]),
        quality=np.ascontiguousarray(np.asarray(t.quality, np.uint8)[keep]),
        bits=np.ascontiguousarray(bits[keep].T),
        mask=np.ascontiguousarray(mask[keep]),
    )
    _cache[t] = f
    return f


def match(a: FingerTemplate | FingerFeatures, b: FingerTemplate | FingerFeatures) -> float:
    """Similarity of two fingers in [0, 1] (higher = more similar). Symmetric up to rounding."""
    fa = a if isinstance(a, FingerFeatures) else features(a)
    fb = b if isinstance(b, FingerFeatures) else features(b)
    return finger_cpu.match_features(fa.kernel_args(), fb.kernel_args())

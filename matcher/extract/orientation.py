"""Ridge orientation field and its coherence, from the smoothed gradient structure tensor.

Algorithm steps (A. M. Bazen, S. H. Gerez, "Systematic methods for the computation of the
directional fields and singular points of fingerprints", IEEE TPAMI 24(7):905-919, 2002; and
Maltoni, Maio, Jain, Prabhakar, *Handbook of Fingerprint Recognition*, 2nd ed., section 3.2):

1. Sobel gradients ``gx, gy`` of the lightly smoothed image.
2. Structure tensor ``Gxx, Gyy, Gxy``: Gaussian averages of ``gx^2, gy^2, gx gy`` over about half
   a ridge period.
3. Doubled-angle vectors ``(Gxx - Gyy, 2 Gxy)`` (opposite gradients across a ridge add up instead
   of cancelling), averaged again with a wider Gaussian: this is the orientation smoothing.
4. The gradient angle is half the vector's angle; the ridge runs perpendicular to it.
5. Coherence = |averaged vector| / averaged ``Gxx + Gyy``: 1 for parallel ridges, 0 for noise.
   Coherent energy = |vector| averaged at the segmentation scale: high on ridges whatever their
   local direction, low on background and on noise. Segmentation thresholds both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract import fingerprint_params as xp

__all__ = ["OrientationField", "orientation_field", "coarse_blur"]

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class OrientationField:
    """Per-pixel ridge orientation of an ``(H, W)`` image.

    ``angle``: float32 radians in ``[0, pi)``, in pixel coordinates (x right, **y down**): the ridge
    runs along ``(cos angle, sin angle)``. (The displayed, ISO-style angle is ``-angle``.)
    ``coherence``: float32 in ``[0, 1]``. ``energy``: float32 coherent gradient energy, grey
    levels squared per pixel squared, smoothed at the segmentation scale.
    """

    angle: Float32Array
    coherence: Float32Array
    energy: Float32Array


#: Wide averages are computed on a grid this many times coarser (area-averaged), then
#: interpolated back: the result is the same to a fraction of a grey level, at 1/16 of the cost.
COARSE_FACTOR = 4


def coarse_blur(a: Float32Array, sigma_px: float) -> Float32Array:
    """Gaussian average of a float32 ``(H, W)`` array with ``sigma_px`` of several pixels, computed
    on a grid :data:`COARSE_FACTOR` times coarser and interpolated back to ``(H, W)``."""
    h, w = a.shape
    small = _gauss(_to_coarse(a), sigma_px / COARSE_FACTOR)
    return _to_fine(small, h, w)


def _gauss(a: Float32Array, sigma: float) -> Float32Array:
    return np.asarray(
        cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), dtype=np.float32
    )


def _to_coarse(a: Float32Array) -> Float32Array:
    h, w = a.shape
    size = (max(1, round(w / COARSE_FACTOR)), max(1, round(h / COARSE_FACTOR)))
    return np.asarray(cv2.resize(a, size, interpolation=cv2.INTER_AREA), dtype=np.float32)


def _to_fine(a: Float32Array, h: int, w: int) -> Float32Array:
    return np.asarray(cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def orientation_field(image: npt.NDArray[np.float32]) -> OrientationField:
    """Orientation, coherence and coherent energy of a float32 ``(H, W)`` grey image (0-255 scale,
    500 dpi). Cost: O(H W), a few full-resolution passes; the wide averages run on a coarse grid."""
    h, w = image.shape
    img = _gauss(np.ascontiguousarray(image, dtype=np.float32), xp.GRADIENT_SIGMA_PX)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    f = COARSE_FACTOR

    def tensor(a: Float32Array) -> Float32Array:
        return _gauss(_to_coarse(a), xp.TENSOR_SIGMA_PX / f)

    def smooth(a: Float32Array, sigma: float) -> Float32Array:
        return _gauss(a, sigma / f)

    gxx, gyy, gxy = tensor(gx * gx), tensor(gy * gy), tensor(gx * gy)
    vx = gxx - gyy
    vy = 2.0 * gxy
    energy = smooth(np.sqrt(vx * vx + vy * vy), xp.SEGMENT_SIGMA_PX)
    svx = smooth(vx, xp.ORIENTATION_SIGMA_PX)
    svy = smooth(vy, xp.ORIENTATION_SIGMA_PX)
    total = smooth(gxx + gyy, xp.ORIENTATION_SIGMA_PX)
    coherence = (np.sqrt(svx * svx + svy * svy) / np.maximum(total, np.float32(1e-6))).astype(
        np.float32
    )
    svx, svy = _to_fine(svx, h, w), _to_fine(svy, h, w)
    # Gradient angle = atan2(svy, svx) / 2; the ridge is perpendicular to the gradient.
    angle = np.mod(0.5 * np.arctan2(svy, svx) + math.pi / 2.0, math.pi).astype(np.float32)
    angle[angle >= np.float32(math.pi)] = 0.0
    return OrientationField(
        angle=angle,
        coherence=np.clip(_to_fine(coherence, h, w), 0.0, 1.0).astype(np.float32),
        energy=_to_fine(energy, h, w).astype(np.float32),
    )

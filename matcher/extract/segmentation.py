"""Foreground segmentation and local contrast normalisation of a fingerprint image.

Algorithm steps (after Bazen and Gerez, "Segmentation of fingerprint images", ProRISC 2001: the
coherent gradient energy and the coherence separate ridges from background and noise):

1. A pixel is a candidate foreground pixel where the coherent gradient energy reaches both a
   fraction of the image's 95th percentile and an absolute floor (so a blank image has none),
   and the orientation coherence is above a floor (noise is incoherent).
2. Morphological closing then opening with a disc of about one ridge period, so the mask is
   a few smooth blobs rather than ridge-shaped shreds.
3. Connected regions much smaller than the largest, or smaller than a few mm^2, are dropped;
   holes are filled.

Normalisation (Hong, Wan, Jain 1998, step 1, in a local form): subtract a Gaussian local mean and
divide by the local standard deviation, so dry and wet regions end up with the same contrast.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract import fingerprint_params as xp
from matcher.extract.orientation import COARSE_FACTOR, OrientationField, coarse_blur

__all__ = ["segment", "normalise"]

BoolArray = npt.NDArray[np.bool_]


def _disc(radius: int) -> npt.NDArray[np.uint8]:
    return np.asarray(
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)), np.uint8
    )


def segment(field: OrientationField) -> BoolArray:
    """Boolean ``(H, W)`` foreground mask from an :class:`OrientationField`; may be all False.

    The mask is built on the coarse grid of :func:`coarse_blur` (its inputs are smooth at that
    scale) and interpolated back, which keeps the morphology cheap.
    """
    h, w = field.energy.shape
    f = COARSE_FACTOR
    size = (max(1, round(w / f)), max(1, round(h / f)))
    energy = cv2.resize(field.energy, size, interpolation=cv2.INTER_AREA)
    coherence = cv2.resize(field.coherence, size, interpolation=cv2.INTER_AREA)
    threshold = max(
        xp.SEGMENT_MIN_ENERGY,
        xp.SEGMENT_RELATIVE_ENERGY * float(np.percentile(energy, 95)),
    )
    m: npt.NDArray[Any] = (energy >= threshold) & (coherence >= xp.SEGMENT_MIN_COHERENCE)
    m = m.astype(np.uint8)
    if not m.any():
        return np.zeros((h, w), bool)
    radius = max(1, round(xp.SEGMENT_MORPH_RADIUS_PX / f))
    disc = _disc(radius)
    # Pad so the closing does not glue the mask to the image border.
    pad = radius + 1
    m = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, disc)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, disc)
    m = np.ascontiguousarray(m[pad:-pad, pad:-pad])
    count, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if count <= 1:
        return np.zeros((h, w), bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = (areas >= xp.SEGMENT_MIN_REGION_FRACTION * areas.max()) & (
        areas >= xp.SEGMENT_MIN_REGION_PX2 / (f * f)
    )
    m = keep[labels].astype(np.uint8)
    # Fill holes: background regions not connected to the image border.
    inv = cv2.copyMakeBorder(1 - m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    _, labels = cv2.connectedComponents(inv, connectivity=4)
    filled = (labels != labels[0, 0])[1:-1, 1:-1].astype(np.float32)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5


def normalise(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Zero local mean, unit local standard deviation (float32, same shape)."""
    s = xp.NORMALISE_SIGMA_PX
    centred = image - coarse_blur(image, s)
    var = coarse_blur(centred * centred, s)
    return np.asarray(centred / np.sqrt(np.maximum(var, 0.0) + np.float32(1.0)), np.float32)

"""Specular reflections: detection by white top-hat and filling from the opened image.

Algorithm steps
1. Grey opening with a disc a few percent of the image side wide removes every bright spot
   smaller than the disc (the illuminator's reflections on cornea and tear film) and keeps the
   larger bright regions (sclera, skin).
2. A pixel is a reflection where the image exceeds its opening by a share of the image's
   dynamic range (the white top-hat) and is among the brightest levels of the image (bright iris
   texture also stands out of the opening, but is never near the top of the range); the mask is
   dilated by a pixel to cover the halo.
3. Reflection pixels take the opened value, lightly blurred, so the pupil and limbus searches
   see neither the spot nor its edges (cf. inpainting in J. Daugman, "How iris recognition
   works", 2004, and the morphological filling of many open implementations).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract.iris_params import (
    REFLECTION_CONTRAST_FRAC,
    REFLECTION_LEVEL_FRAC,
    REFLECTION_SIZE_FRAC,
)

U8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]


def _disc(diameter: int) -> npt.NDArray[np.uint8]:
    d = max(3, diameter | 1)
    return np.asarray(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)), np.uint8)


def remove_reflections(image: U8Array) -> tuple[U8Array, BoolArray]:
    """``(filled image, reflection mask)`` for a grey uint8 image; both shaped like ``image``."""
    side = min(image.shape)
    opened = cv2.morphologyEx(image, cv2.MORPH_OPEN, _disc(round(REFLECTION_SIZE_FRAC * side)))
    lo, med, hi = np.percentile(image[::2, ::2], (1, 50, 99.5))
    contrast = max(8.0, REFLECTION_CONTRAST_FRAC * float(hi - lo))
    level = med + REFLECTION_LEVEL_FRAC * float(hi - med)
    tophat = image.astype(np.int16) - opened.astype(np.int16)
    mask = ((tophat > contrast) & (image >= level)).astype(np.uint8)
    if not mask.any():
        return image, np.zeros(image.shape, bool)
    mask = cv2.dilate(mask, _disc(3))
    filled = cv2.GaussianBlur(opened, (0, 0), 1.0)
    out = np.where(mask > 0, filled, image)
    return np.ascontiguousarray(out, dtype=np.uint8), mask > 0

"""Rubber-sheet normalisation: the iris band between pupil and limbus to a fixed polar grid.

Algorithm steps (J. Daugman, "How iris recognition works", IEEE TCSVT 14(1), 2004, section 3)
1. Column ``k`` of the polar image is the direction ``theta_k = 2 pi k / n_angular`` in image
   coordinates (column 0 points along +x, columns go clockwise on screen), so a rotation of the
   eye in the image plane is a circular shift of the columns.
2. Row ``i`` is the radial fraction ``t_i = (i + 0.5) / n_radial`` of the way from the pupil
   boundary point in that direction (measured from the pupil centre) to the limbus point in that
   direction (measured from the limbus centre): ``(1 - t) p(theta) + t l(theta)``. The pupil
   and limbus need not be concentric, and pupil dilation is normalised away.
3. Bilinear samples; a validity map marks samples that fall outside the image, and the
   reflection mask is carried into the same grid.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract.iris_boundary import Ellipse

F32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def polar_grid(n_radial: int, n_angular: int) -> tuple[npt.NDArray[np.float64], ...]:
    """``(t, theta)``: radial fractions and column angles of the polar image."""
    t = (np.arange(n_radial) + 0.5) / n_radial
    theta = 2 * math.pi * np.arange(n_angular) / n_angular
    return t, theta


def rubber_sheet(
    image: npt.NDArray[np.uint8],
    reflections: BoolArray,
    pupil: Ellipse,
    limbus: Ellipse,
    n_radial: int,
    n_angular: int,
) -> tuple[F32Array, BoolArray]:
    """``(polar, valid)`` of shape ``(n_radial, n_angular)``: float32 grey and its validity."""
    t, theta = polar_grid(n_radial, n_angular)
    px, py = pupil.points(theta)
    lx, ly = limbus.points(theta)
    xs = ((1 - t)[:, None] * px[None, :] + t[:, None] * lx[None, :]).astype(np.float32)
    ys = ((1 - t)[:, None] * py[None, :] + t[:, None] * ly[None, :]).astype(np.float32)
    h, w = image.shape
    polar = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    refl = cv2.remap(
        reflections.astype(np.uint8), xs, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
    )
    return polar.astype(np.float32), inside & (refl == 0)

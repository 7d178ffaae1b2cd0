"""Quality measures of one iris capture, each on a 0-100 or 0-1 scale the caller can threshold.

- ``usable_bits_fraction``: share of the code's bits left valid by occlusion and fragile-bit
  masking.
- ``focus``: Daugman's focus score, ``100 x^2 / (x^2 + c^2)`` with ``x`` the RMS response of a
  zero-sum high-pass kernel over the iris annulus (J. Daugman, "How iris recognition works", 2004,
  section 9; a 3x3 Laplacian stands in for his 8x8 kernel). ``c`` is a share of the iris's own
  grey-level spread, so the score does not depend on the camera's exposure.
- ``occlusion``: share of the encoded band hidden by eyelids, lashes, reflections or the frame.
- ``pupil_iris_ratio``: pupil radius over limbus radius (ISO/IEC 29794-6 "pupil to iris ratio";
  very dilated or constricted pupils match less reliably).
- ``overall``: 0-100 combination of the above.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract.iris_boundary import Ellipse

BoolArray = npt.NDArray[np.bool_]

#: The focus score's half-point, as a share of the iris's grey-level spread.
_FOCUS_HALF_FRAC = 0.15


@dataclass(frozen=True)
class IrisQuality:
    """Quality of one capture; see the module docstring for each measure's meaning."""

    usable_bits_fraction: float
    focus: float
    occlusion: float
    pupil_iris_ratio: float
    overall: float


def focus_score(image: npt.NDArray[np.uint8], pupil: Ellipse, limbus: Ellipse) -> float:
    """Focus 0-100 over the iris annulus of ``image``."""
    h, w = image.shape
    x0 = max(0, int(limbus.cx - limbus.r))
    x1 = min(w, int(limbus.cx + limbus.r) + 1)
    y0 = max(0, int(limbus.cy - limbus.r))
    y1 = min(h, int(limbus.cy + limbus.r) + 1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    crop = image[y0:y1, x0:x1].astype(np.float32)
    lap = cv2.Laplacian(crop, cv2.CV_32F, ksize=1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rl = np.hypot(xx - limbus.cx, yy - limbus.cy)
    rp = np.hypot(xx - pupil.cx, yy - pupil.cy)
    ring = (rl < 0.9 * limbus.r) & (rp > 1.15 * pupil.r)
    if ring.sum() < 16:
        return 0.0
    vals = crop[ring]
    spread = float(np.percentile(vals, 90) - np.percentile(vals, 10))
    x2 = float(np.mean(lap[ring] ** 2))
    c2 = (_FOCUS_HALF_FRAC * max(spread, 4.0)) ** 2
    return 100.0 * x2 / (x2 + c2)


def measure_quality(
    mask: BoolArray, band_valid: BoolArray, focus: float, pupil: Ellipse, limbus: Ellipse
) -> IrisQuality:
    usable = float(mask.mean())
    occlusion = 1.0 - float(band_valid.mean())
    ratio = pupil.r / limbus.r
    ratio_term = (
        1.0
        if 0.2 <= ratio <= 0.6
        else max(0.0, 1.0 - 4.0 * min(abs(ratio - 0.2), abs(ratio - 0.6)))
    )
    overall = 100.0 * min(1.0, usable / 0.6) * (focus / 100.0) ** 0.5 * ratio_term
    return IrisQuality(usable, float(focus), occlusion, float(ratio), float(overall))

"""Near-infrared eye image to an iris code, its mask, boundaries and quality.

:func:`extract_iris` is the whole pipeline, one step per line; each step is a module of this
package with its algorithm and sources in its docstring:

1. input checks and a bounded working copy (longer side at most ``WORK_MAX_SIDE_PX``);
2. :mod:`~matcher.extract.iris_reflection`: specular reflections found and filled;
3. :mod:`~matcher.extract.iris_pupil`: pupil ellipse (dark round blob, refined on gradients);
4. :mod:`~matcher.extract.iris_limbus`: limbus circle (integro-differential search about the
   pupil);
5. :mod:`~matcher.extract.iris_normalize`: Daugman rubber sheet to a polar image;
6. :mod:`~matcher.extract.iris_occlusion`: eyelids, eyelashes and reflections masked;
7. :mod:`~matcher.extract.iris_encode`: log-Gabor phase bits, fragile bits masked;
8. :mod:`~matcher.extract.iris_quality`: quality measures and the refusal gates.

Code layout: ``code[ring, column, bit]``; ring 0 is next to the pupil; column 0 is the direction
+x of the image (towards the right edge) and columns go clockwise as the image is displayed, so
rotating the eye by ``k * 360 / columns`` degrees clockwise about the pupil is a shift of ``+k``
columns (``np.roll(code, k, axis=1)``). ``mask`` True marks a valid bit.

Cost: about 10-30 ms per 320x240 image on one core (numba kernel compiled on first use, cached on
disk). Thread-safe: no shared state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate, QualityTooLow
from matcher.extract.iris_boundary import Ellipse
from matcher.extract.iris_encode import encode
from matcher.extract.iris_limbus import detect_limbus
from matcher.extract.iris_normalize import polar_grid, rubber_sheet
from matcher.extract.iris_occlusion import occlusion_mask
from matcher.extract.iris_params import (
    BAND_INNER,
    BAND_OUTER,
    MAX_SIDE_PX,
    MIN_FOCUS,
    MIN_SIDE_PX,
    MIN_USABLE_BITS_FRACTION,
    POLAR_ANGULAR_PER_COLUMN,
    POLAR_RADIAL,
    WORK_MAX_SIDE_PX,
)
from matcher.extract.iris_pupil import detect_pupil
from matcher.extract.iris_quality import IrisQuality, focus_score, measure_quality
from matcher.extract.iris_reflection import remove_reflections
from matcher.iris import IrisGeometry, IrisTemplate
from matcher.iris_params import DEFAULT_MIN_VALID_BITS

__all__ = ["Ellipse", "IrisExtraction", "IrisQuality", "extract_iris"]

U8Array = npt.NDArray[np.uint8]

#: Daugman's 8 x 128 x 2 code, the default geometry.
DEFAULT_GEOMETRY = IrisGeometry()


@dataclass(frozen=True)
class IrisExtraction:
    """What :func:`extract_iris` returns.

    ``template``: the code and mask (bool ``geometry.shape``). ``quality``: :class:`IrisQuality`.
    ``pupil``, ``limbus``: boundaries in the caller's image pixels (:class:`Ellipse`; the limbus
    is a circle, ``rx == ry``).
    """

    template: IrisTemplate
    quality: IrisQuality
    pupil: Ellipse
    limbus: Ellipse


def _working_copy(image: object) -> tuple[U8Array, float]:
    """Check the input and return a copy with the longer side at most ``WORK_MAX_SIDE_PX``."""
    if not isinstance(image, np.ndarray):
        raise InvalidTemplate(f"iris image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 2:
        raise InvalidTemplate(
            f"iris image must be 2-D grey (H, W), got shape {image.shape}; convert colour first"
        )
    if image.dtype != np.uint8:
        raise InvalidTemplate(f"iris image must be uint8, got {image.dtype}")
    h, w = image.shape
    if min(h, w) < MIN_SIDE_PX or max(h, w) > MAX_SIDE_PX:
        raise InvalidTemplate(
            f"iris image is {w}x{h} px; each side must be {MIN_SIDE_PX} to {MAX_SIDE_PX} px"
        )
    scale = min(1.0, WORK_MAX_SIDE_PX / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8), scale
    return np.ascontiguousarray(image), 1.0


def _check_quality(quality: IrisQuality) -> None:
    if quality.focus < MIN_FOCUS:
        raise QualityTooLow(f"iris out of focus (focus {quality.focus:.1f} < {MIN_FOCUS})")
    if quality.usable_bits_fraction < MIN_USABLE_BITS_FRACTION:
        raise QualityTooLow(
            f"too few usable bits ({100 * quality.usable_bits_fraction:.0f} % of the code; "
            f"iris occluded {100 * quality.occlusion:.0f} %)"
        )


def extract_iris(
    image: U8Array, geometry: IrisGeometry = DEFAULT_GEOMETRY, eye: str = "L"
) -> IrisExtraction:
    """Iris code, mask, boundaries and quality of one NIR eye image.

    ``image``: 2-D ``uint8`` grey ``(H, W)``, 64-4096 px a side (the caller converts colour).
    ``geometry``: code shape; ``columns`` must divide into whole polar samples, ``bits`` is 2 per
    log-Gabor scale. ``eye``: "L" or "R", stored in the template.

    Raises :class:`~matcher.errors.InvalidTemplate` for an unusable array and
    :class:`~matcher.errors.QualityTooLow`, with the reason, when no usable iris is found.
    """
    if eye not in ("L", "R"):
        raise InvalidTemplate(f"eye must be 'L' or 'R', got {eye!r}")
    work, scale = _working_copy(image)
    filled, reflections = remove_reflections(work)
    pupil = detect_pupil(filled, work)
    limbus = detect_limbus(filled, pupil)
    n_angular = geometry.columns * POLAR_ANGULAR_PER_COLUMN
    polar, inside = rubber_sheet(filled, reflections, pupil, limbus, POLAR_RADIAL, n_angular)
    valid = occlusion_mask(polar, inside)
    code, mask, _ = encode(polar, valid, geometry)
    t, _ = polar_grid(POLAR_RADIAL, 1)
    band = valid[(t >= BAND_INNER) & (t <= BAND_OUTER)]
    focus = focus_score(filled, pupil, limbus)
    quality = measure_quality(mask, band, focus, pupil, limbus)
    _check_quality(quality)
    if int(mask.sum()) < DEFAULT_MIN_VALID_BITS:
        raise QualityTooLow(f"too few usable bits ({int(mask.sum())} < {DEFAULT_MIN_VALID_BITS})")
    template = IrisTemplate(code, mask, eye)
    return IrisExtraction(template, quality, pupil.scaled(1 / scale), limbus.scaled(1 / scale))

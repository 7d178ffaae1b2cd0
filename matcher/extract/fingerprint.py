"""Fingerprint minutiae extraction: a grey image in, a :class:`FingerTemplate` out.

Algorithm steps (one line each in :func:`extract_fingerprint`; Maltoni, Maio, Jain, Prabhakar,
*Handbook of Fingerprint Recognition*, 2nd ed., chapter 3, and L. Hong, Y. Wan, A. K. Jain,
"Fingerprint image enhancement: algorithm and performance evaluation", IEEE TPAMI 1998):

1. Check the input and rescale it to 500 dpi (:mod:`.fingerprint_params` lengths refer to it).
2. Orientation field, coherence and coherent energy (:mod:`.orientation`).
3. Foreground segmentation (:mod:`.segmentation`); too little foreground is QualityTooLow.
4. Local normalisation, then the along-ridge Gaussian pass, the ridge period (an image with
   no fingerprint-like period over most of its foreground is QualityTooLow) and the
   across-ridge Gabor pass (:mod:`.enhance`).
5. Binarisation and thinning (:mod:`.thinning`).
6. Minutiae by crossing number, structural false-minutiae removal, ISO directions
   (:mod:`.minutiae`).
7. Image and minutia quality (:mod:`.quality`); coordinates back to the input's pixels.

Cost: about 20-40 ms for a 400 x 400 image at 500 dpi on one core after JIT warm-up; memory a
few dozen float32 copies of the image. Thread-safe (no shared mutable state; the numba kernels
release the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate, QualityTooLow
from matcher.extract import fingerprint_params as xp
from matcher.extract.enhance import along_ridge_smooth, enhance, ridge_period
from matcher.extract.minutiae import detect_minutiae
from matcher.extract.orientation import orientation_field
from matcher.extract.quality import image_quality, local_clarity, minutia_quality
from matcher.extract.segmentation import normalise, segment
from matcher.extract.thinning import binarise, thin
from matcher.templates import MAX_DPI, MAX_IMAGE_SIDE_PX, MAX_MINUTIAE, MIN_DPI, FingerTemplate

__all__ = ["FingerprintExtraction", "extract_fingerprint"]


@dataclass(frozen=True, eq=False)
class FingerprintExtraction:
    """Result of :func:`extract_fingerprint`.

    ``template``: the minutiae in the input image's pixels and dpi (ISO angles, kinds 1/2,
    qualities 1-100). ``quality``: image quality 0-100 (higher is better). ``mask``: bool
    ``(H, W)`` foreground of the input image.
    """

    template: FingerTemplate
    quality: int
    mask: npt.NDArray[np.bool_]


def _check_input(image: object, dpi: object) -> tuple[npt.NDArray[np.uint8], int, int, int]:
    """The image, dpi and the working (500 dpi) height and width, or InvalidTemplate."""
    if not isinstance(image, np.ndarray):
        raise InvalidTemplate(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 2:
        raise InvalidTemplate(f"image must be 2-D (H, W) grey, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidTemplate(f"image must be uint8 grey levels, got dtype {image.dtype}")
    if isinstance(dpi, bool) or not isinstance(dpi, int | np.integer):
        raise InvalidTemplate(f"dpi must be an integer, got {dpi!r}")
    dpi = int(dpi)
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise InvalidTemplate(f"dpi must be in [{MIN_DPI}, {MAX_DPI}], got {dpi}")
    h, w = image.shape
    if max(h, w) > MAX_IMAGE_SIDE_PX:  # a template cannot describe it, whatever the dpi
        raise InvalidTemplate(
            f"image is {w} x {h} px; a template holds sides up to {MAX_IMAGE_SIDE_PX} px"
        )
    scale = xp.REFERENCE_DPI / dpi
    wh, ww = round(h * scale), round(w * scale)
    for side, name in ((wh, "height"), (ww, "width")):
        if side < xp.MIN_IMAGE_SIDE_PX:
            raise InvalidTemplate(
                f"image {name} is {side} px at 500 dpi; at least {xp.MIN_IMAGE_SIDE_PX} needed"
            )
        if side > xp.MAX_IMAGE_SIDE_PX:
            raise InvalidTemplate(
                f"image {name} is {side} px at 500 dpi; at most {xp.MAX_IMAGE_SIDE_PX} accepted"
            )
    return image, dpi, wh, ww


def extract_fingerprint(
    image: npt.NDArray[np.uint8], dpi: int = 500, position: int = 0
) -> FingerprintExtraction:
    """Minutiae, image quality and foreground of one fingerprint image.

    Args:
        image: uint8 ``(H, W)`` grey levels, ridges dark (as every live-scan and inked image).
        dpi: the image's resolution; other than 500 it is rescaled internally.
        position: ISO finger position code 0-10, copied into the template.

    Raises:
        InvalidTemplate: not a 2-D uint8 array, a side under 64 or over 4096 px once at 500 dpi,
            a dpi outside 50-20,000, or a bad position.
        QualityTooLow: no finger found (blank, flat, noise, too little ridge area) or fewer than
            :data:`~.fingerprint_params.MIN_MINUTIAE` reliable minutiae.
    """
    image, dpi, wh, ww = _check_input(image, dpi)
    h, w = image.shape
    work = (
        image
        if (wh, ww) == (h, w)
        else cv2.resize(
            image, (ww, wh), interpolation=cv2.INTER_AREA if wh < h else cv2.INTER_CUBIC
        )
    )
    grey = work.astype(np.float32)
    field = orientation_field(grey)
    mask = segment(field)
    area = int(mask.sum())
    if area < xp.MIN_FOREGROUND_PX2:
        raise QualityTooLow(
            f"no finger found: {area} px^2 of ridge area at 500 dpi, at least "
            f"{xp.MIN_FOREGROUND_PX2} needed (blank, flat or noisy image?)"
        )
    normalised = normalise(grey)
    active = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=10) > 0
    smooth = along_ridge_smooth(normalised, field, active)
    period, measured = ridge_period(smooth, field, mask)
    if measured < xp.MIN_PERIOD_MEASURED_FRACTION:
        raise QualityTooLow(
            f"no fingerprint ridges: a ridge period of {xp.MIN_RIDGE_PERIOD_PX:g}-"
            f"{xp.MAX_RIDGE_PERIOD_PX:g} px (at 500 dpi) was found in only {100 * measured:.0f} % "
            "of the foreground (wrong dpi, or not a fingerprint?)"
        )
    enhanced = enhance(smooth, field, period, mask)
    skeleton = thin(binarise(enhanced, mask))
    minutiae = detect_minutiae(skeleton, field, mask)
    clarity = local_clarity(normalised, enhanced)
    quality = image_quality(field, clarity, mask)
    if minutiae.n < xp.MIN_MINUTIAE:
        raise QualityTooLow(
            f"only {minutiae.n} reliable minutiae found, at least {xp.MIN_MINUTIAE} needed "
            f"(image quality {quality})"
        )
    mq = minutia_quality(minutiae, field, clarity)
    order = np.argsort(-mq.astype(np.int64), kind="stable")[:MAX_MINUTIAE]
    sx, sy = w / ww, h / wh
    x = np.clip((minutiae.x[order] + 0.5) * sx - 0.5, 0.0, w - 1.0)
    y = np.clip((minutiae.y[order] + 0.5) * sy - 0.5, 0.0, h - 1.0)
    template = FingerTemplate(
        x=x.astype(np.float32),
        y=y.astype(np.float32),
        theta=np.mod(-minutiae.angle[order], 2.0 * np.pi),
        kind=minutiae.kind[order],
        quality=mq[order],
        width=w,
        height=h,
        dpi=dpi,
        position=position,
    )
    if (wh, ww) != (h, w):
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return FingerprintExtraction(template=template, quality=quality, mask=mask)

"""A sample as a capture station sends it, turned into the template a gallery takes.

Stations send a finger as a standard minutiae record (ISO/IEC 19794-2:2005 or :2011, ANSI INCITS
378-2004) or as an image, and an iris as a code with its mask or as an eye image. This module is
the one place that tells them apart, so enrolment and search accept either without the caller
deciding which. Records are recognised by their ``FMR\\0`` magic, images by their own signatures
(:mod:`matcher.extract.image`); anything else is refused.

Flow: bytes -> (record decoder | image decoder -> extractor) -> template. Galleries never see
bytes or pixels. Thread-safe; extraction runs on the calling thread.
"""

from __future__ import annotations

import numpy as np

from matcher.errors import InvalidTemplate
from matcher.iris import IrisGeometry, IrisTemplate
from matcher.templates import FingerTemplate

RECORD_MAGIC = b"FMR\x00"

FingerSample = FingerTemplate | bytes | bytearray | memoryview
IrisSample = IrisTemplate | tuple[object, object] | bytes | bytearray | memoryview


def finger_template(sample: FingerSample, *, position: int = 0, dpi: int = 500) -> FingerTemplate:
    """The template of one finger.

    Args:
        sample: a :class:`FingerTemplate`; a minutiae record (bytes); or image bytes.
        position: ISO finger position (0 = unknown). For a multi-view record, the view of this
            position is taken (the only view when there is one; the first when 0).
        dpi: resolution of an image sample (records carry their own).

    Raises:
        InvalidTemplate: a damaged record, or a record without a view of ``position``.
        InvalidImage: image bytes that cannot be decoded or are out of the accepted sizes.
        QualityTooLow: an image in which no usable finger is found (with the reason).
    """
    if isinstance(sample, FingerTemplate):
        return sample
    data = bytes(sample)
    if data.startswith(RECORD_MAGIC):
        from matcher.formats.detect import decode_any

        views = decode_any(data)
        if len(views) == 1 or position == 0:
            return views[0]
        for v in views:
            if v.position == position:
                return v
        held = sorted({v.position for v in views})
        raise InvalidTemplate(f"the record holds finger positions {held}, not {position}")
    from matcher.extract.image import decode_image

    image = decode_image(data)
    from matcher.extract.fingerprint import extract_fingerprint

    return extract_fingerprint(image.pixels, dpi=dpi, position=position).template


def iris_template(
    sample: IrisSample, *, eye: str, geometry: IrisGeometry | None = None
) -> IrisTemplate:
    """The template of one eye (``eye`` is "L" or "R").

    Args:
        sample: an :class:`IrisTemplate`; a ``(code, mask)`` pair of bool arrays of shape
            ``geometry.shape``; or eye image bytes.
        geometry: the code layout the gallery holds (default 8 x 128 x 2).

    Raises:
        InvalidTemplate: wrong shapes or dtypes, too few valid bits, a bad ``eye``.
        InvalidImage: image bytes that cannot be decoded or are out of the accepted sizes.
        QualityTooLow: an image in which no usable iris is found (with the reason).
    """
    geo = geometry or IrisGeometry()
    if eye not in ("L", "R"):
        raise InvalidTemplate(f"eye must be 'L' or 'R', got {eye!r}")
    if isinstance(sample, IrisTemplate):
        t = IrisTemplate(sample.code, sample.mask, eye)
    elif isinstance(sample, tuple):
        if len(sample) != 2:
            raise InvalidTemplate("an iris code sample is a (code, mask) pair")
        code, mask = (np.asarray(x) for x in sample)
        if code.dtype != np.bool_ or mask.dtype != np.bool_:
            raise InvalidTemplate(
                f"code and mask must be bool arrays, got {code.dtype}/{mask.dtype}"
            )
        t = IrisTemplate(code, mask, eye)
    elif isinstance(sample, bytes | bytearray | memoryview):
        from matcher.extract.image import decode_image
        from matcher.extract.iris import extract_iris

        image = decode_image(sample)
        t = extract_iris(image.pixels, geometry=geo, eye=eye).template
    else:
        raise InvalidTemplate(
            f"an iris sample is a template, (code, mask) or image bytes, "
            f"not {type(sample).__name__}"
        )
    if t.code.shape != geo.shape:
        raise InvalidTemplate(f"iris code has shape {t.code.shape}; the gallery holds {geo.shape}")
    t.validate()
    return t

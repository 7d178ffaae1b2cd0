"""Fingerprint templates: the typed, validated minutiae set the rest of the matcher exchanges.

Three forms of a template (as SourceAFIS has them; STYLE.md habit 5):

1. **Extraction output** -- :class:`FingerTemplate`: parallel per-minutia arrays plus the image
   geometry, validated when it is built. Extraction produces it, the codecs decode into it, tests
   and tools read it. It is the only form that crosses module boundaries.
2. **Packed, match-ready form** -- built *from* FingerTemplates by the matcher (``matcher.finger``
   and ``matcher.gallery``: CSR offsets into flat minutia arrays, per-minutia cylinder bits). It
   is derived data: never stored, rebuilt whenever the matcher changes.
3. **Stored / wire form** -- bytes: the standard records and text formats in
   :mod:`matcher.formats` (ISO/IEC 19794-2:2005 and :2011, ANSI INCITS 378-2004, NIST ``.xyt``) and
   our own blob codec. Every decoder validates at the boundary and returns FingerTemplates.

Conventions (DESIGN.md, "Templates")
------------------------------------
* ``x``, ``y``: pixels at the template's ``dpi``, origin at the top-left corner of the image,
  ``x`` to the right, ``y`` **down**; ``0 <= x < width`` and ``0 <= y < height``.
* ``theta``: radians in ``[0, 2*pi)``, counter-clockwise from +x **as the image is displayed**
  (the ISO/IEC 19794-2 and ANSI INCITS 378 convention). Because ``y`` grows downwards, the
  direction of a minutia in pixel coordinates is ``(cos(theta), -sin(theta))``: ``theta = pi/2``
  points to the top of the displayed image, i.e. towards smaller ``y``. :meth:`FingerTemplate.
  directions` computes exactly this; use it rather than re-deriving the sign.
* ``kind``: the ISO/IEC 19794-2 two-bit type code: 0 other/unknown, 1 ridge ending,
  2 bifurcation (code 3, binary ``11``, is reserved and rejected).
* ``quality``: 0-100, higher is better, where **0 means "not reported"**: ANSI INCITS 378-2004
  defines 0 as "no quality value available" (ANSI/NIST-ITL 1-2011 repeats it for the M1-378
  minutia field) and ISO/IEC 19794-2:2005 records are read the same way; the codecs map the
  2011 edition's 254 ("not reported") and 255 ("failed to compute") to 0 as well. A 2011 quality
  of 0 (a real, lowest score) therefore also reads as 0: the one value this model merges.
* ``position``: ISO finger position code 0-10 (0 unknown, 1 right thumb ... 10 left little).
* ``impression``: ISO impression type code (0 live-scan plain, 1 live-scan rolled, 2 non-live
  plain, 3 non-live rolled, 8 swipe, ...). Any byte is accepted here; each codec checks that the
  value fits its own field (4 bits in the 2005 and ANSI records).

Limits follow what the standard records can represent: 1 to 255 minutiae (one count byte), image
sides of 1 to 16,383 pixels (14-bit coordinate fields), and 50 to 20,000 dpi (every fingerprint
resolution in use, with margin; all are representable as pixels per centimetre in 16 bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate

Float32Array = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

__all__ = [
    "FINGER_TEMPLATE_VERSION",
    "MAX_MINUTIAE",
    "MAX_IMAGE_SIDE_PX",
    "MIN_DPI",
    "MAX_DPI",
    "MAX_FINGER_POSITION",
    "MAX_IMPRESSION",
    "KIND_OTHER",
    "KIND_RIDGE_ENDING",
    "KIND_BIFURCATION",
    "QUALITY_NOT_REPORTED",
    "FingerTemplate",
]

#: The in-memory layout version this class implements; stored forms carry it.
FINGER_TEMPLATE_VERSION = 1
#: One count byte in every standard record.
MAX_MINUTIAE = 255
#: 14-bit coordinate fields hold 0..16383, and a coordinate must lie below the image side.
MAX_IMAGE_SIDE_PX = 16383
MIN_DPI = 50
MAX_DPI = 20000
#: ISO/IEC 19794-2 finger position codes 0 (unknown) .. 10 (left little finger).
MAX_FINGER_POSITION = 10
#: Largest impression type code a template may carry (a byte in ISO/IEC 19794-2:2011).
MAX_IMPRESSION = 255

KIND_OTHER = 0
KIND_RIDGE_ENDING = 1
KIND_BIFURCATION = 2
QUALITY_NOT_REPORTED = 0

_TWO_PI = 2.0 * math.pi
_TWO_PI_F32 = np.float32(_TWO_PI)  # rounds up: float32(2*pi) > 2*pi


def _int_field(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as a plain int in ``[lo, hi]``, or :class:`InvalidTemplate` naming ``name``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise InvalidTemplate(f"FingerTemplate.{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise InvalidTemplate(f"FingerTemplate.{name} must be in [{lo}, {hi}], got {int(value)}")
    return int(value)


def _numeric_array(name: str, value: object) -> npt.NDArray[Any]:
    """A fresh 1-D real numeric array (ints or floats, no bools/strings/objects), all finite."""
    try:
        arr = np.array(value)  # always a copy: the template owns its arrays
    except (TypeError, ValueError) as exc:  # ragged nesting and the like
        raise InvalidTemplate(f"FingerTemplate.{name} is not an array of numbers: {exc}") from exc
    if arr.dtype.kind not in "iuf":
        raise InvalidTemplate(
            f"FingerTemplate.{name} must hold real numbers, got dtype {arr.dtype}"
        )
    if arr.ndim != 1:
        raise InvalidTemplate(f"FingerTemplate.{name} must be 1-D (n,), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidTemplate(
                f"FingerTemplate.{name}[{i}] is {arr[i]}; NaN and inf are not allowed"
            )
    return arr


def _code_array(name: str, value: object, hi: int, allowed: str) -> UInt8Array:
    """Integer codes in ``[0, hi]`` as uint8; floats are accepted only when integral."""
    arr = _numeric_array(name, value)
    if arr.dtype.kind == "f":
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise InvalidTemplate(f"FingerTemplate.{name}[{i}] = {arr[i].item()} is not an integer")
    bad = (arr < 0) | (arr > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidTemplate(f"FingerTemplate.{name}[{i}] = {arr[i].item()} is not {allowed}")
    return arr.astype(np.uint8)


def _frozen(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class FingerTemplate:
    """One finger view's minutiae, validated on construction. Immutable; thread-safe to share.

    Per-minutia arrays, all of length ``n`` (1 to 255):

    ``x``, ``y``
        float32 ``(n,)``, pixels at ``dpi``; origin top-left, ``y`` down;
        ``0 <= x < width``, ``0 <= y < height``.
    ``theta``
        float32 ``(n,)``, radians in ``[0, 2*pi)``, counter-clockwise from +x as the image is
        displayed; direction in pixel coordinates is ``(cos theta, -sin theta)``. Any finite input
        angle is accepted and wrapped into ``[0, 2*pi)``.
    ``kind``
        uint8 ``(n,)``: 0 other/unknown, 1 ridge ending, 2 bifurcation. Default: all 0.
    ``quality``
        uint8 ``(n,)``: 0-100, 0 = not reported. Default: all 0.

    Image and capture:

    ``width``, ``height``
        image size in pixels, 1 to 16,383.
    ``dpi``
        pixels per inch, 50 to 20,000 (default 500).
    ``position``
        ISO finger position 0-10 (default 0, unknown).
    ``impression``
        ISO impression type code (default 0, live-scan plain).
    ``format_version``
        layout version of this class (:data:`FINGER_TEMPLATE_VERSION`); only 1 exists.

    Construction accepts any array-likes and copies them into read-only arrays of the documented
    dtypes. Every problem raises :class:`~matcher.errors.InvalidTemplate` naming the field.
    Arrays make ``==`` meaningless, so equality is identity; compare with :meth:`equals`.
    """

    x: Float32Array
    y: Float32Array
    theta: Float32Array
    width: int
    height: int
    dpi: int = 500
    kind: UInt8Array = None  # type: ignore[assignment]  # None -> all KIND_OTHER
    quality: UInt8Array = None  # type: ignore[assignment]  # None -> all QUALITY_NOT_REPORTED
    position: int = 0
    impression: int = 0
    format_version: int = FINGER_TEMPLATE_VERSION

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put(
            "format_version",
            _int_field(
                "format_version",
                self.format_version,
                FINGER_TEMPLATE_VERSION,
                FINGER_TEMPLATE_VERSION,
            ),
        )
        width = _int_field("width", self.width, 1, MAX_IMAGE_SIDE_PX)
        height = _int_field("height", self.height, 1, MAX_IMAGE_SIDE_PX)
        put("width", width)
        put("height", height)
        put("dpi", _int_field("dpi", self.dpi, MIN_DPI, MAX_DPI))
        put("position", _int_field("position", self.position, 0, MAX_FINGER_POSITION))
        put("impression", _int_field("impression", self.impression, 0, MAX_IMPRESSION))

        x = _numeric_array("x", self.x)
        n = x.shape[0]
        if n == 0:
            raise InvalidTemplate("FingerTemplate has no minutiae; at least 1 is required")
        if n > MAX_MINUTIAE:
            raise InvalidTemplate(
                f"FingerTemplate has {n} minutiae; the standard records hold at most {MAX_MINUTIAE}"
            )
        arrays: dict[str, npt.NDArray[Any]] = {"x": x}
        for name in ("y", "theta"):
            arrays[name] = _numeric_array(name, getattr(self, name))
        if self.kind is None:
            arrays["kind"] = np.full(n, KIND_OTHER, dtype=np.uint8)
        else:
            arrays["kind"] = _code_array(
                "kind", self.kind, KIND_BIFURCATION, "0 (other), 1 (ending) or 2 (bifurcation)"
            )
        if self.quality is None:
            arrays["quality"] = np.full(n, QUALITY_NOT_REPORTED, dtype=np.uint8)
        else:
            arrays["quality"] = _code_array("quality", self.quality, 100, "in 0..100")
        for name, arr in arrays.items():
            if arr.shape[0] != n:
                raise InvalidTemplate(
                    f"FingerTemplate.{name} has {arr.shape[0]} entries but x has {n}"
                )

        for name, side, side_name in (("x", width, "width"), ("y", height, "height")):
            coords = arrays[name].astype(np.float32)
            bad = (coords < 0) | (coords >= side)
            if bad.any():
                i = int(np.argmax(bad))
                raise InvalidTemplate(
                    f"FingerTemplate.{name}[{i}] = {float(coords[i])} is outside "
                    f"[0, {side_name}={side})"
                )
            arrays[name] = coords
        # Wrap in float64, then guard the float32 rounding of values just below 2*pi.
        theta = np.mod(arrays["theta"].astype(np.float64), _TWO_PI).astype(np.float32)
        theta[theta >= _TWO_PI_F32] = 0.0
        arrays["theta"] = theta

        for name, arr in arrays.items():
            put(name, _frozen(arr))

    @property
    def n(self) -> int:
        """Number of minutiae."""
        return int(self.x.shape[0])

    def directions(self) -> Float32Array:
        """Unit direction vectors in pixel coordinates (y down): float32 ``(n, 2)`` of
        ``(cos theta, -sin theta)``. ``theta = pi/2`` gives ``(0, -1)``: up on the display."""
        t = self.theta.astype(np.float64)
        return np.stack([np.cos(t), -np.sin(t)], axis=1).astype(np.float32)

    def equals(self, other: object, *, atol: float = 0.0) -> bool:
        """True when ``other`` is a FingerTemplate with the same minutiae in the same order.

        Integer fields and codes must match exactly; ``x`` and ``y`` within ``atol`` pixels and
        ``theta`` within ``atol`` radians measured round the circle (so 0 and 2*pi - 1e-7 are
        close). ``atol=0`` asks for exact equality.
        """
        if not isinstance(other, FingerTemplate):
            return False
        same_scalars = (
            self.width == other.width
            and self.height == other.height
            and self.dpi == other.dpi
            and self.position == other.position
            and self.impression == other.impression
            and self.format_version == other.format_version
            and self.n == other.n
        )
        if not same_scalars:
            return False
        if not (
            np.array_equal(self.kind, other.kind) and np.array_equal(self.quality, other.quality)
        ):
            return False
        for a, b in ((self.x, other.x), (self.y, other.y)):
            if not np.all(np.abs(a.astype(np.float64) - b.astype(np.float64)) <= atol):
                return False
        d = self.theta.astype(np.float64) - other.theta.astype(np.float64)
        d = np.abs(np.mod(d + math.pi, _TWO_PI) - math.pi)
        return bool(np.all(d <= atol))

    def with_dpi(self, dpi: int) -> FingerTemplate:
        """The same template resampled to ``dpi``: coordinates scaled by ``dpi / self.dpi``.

        The image size becomes ``ceil(side * dpi / self.dpi)`` (exact integer arithmetic), so
        every scaled coordinate stays inside it. Angles, codes and qualities are unchanged.
        Raises :class:`InvalidTemplate` if ``dpi`` or the new image size is out of range.
        """
        dpi = _int_field("dpi", dpi, MIN_DPI, MAX_DPI)
        if dpi == self.dpi:
            return self
        width = -(-self.width * dpi // self.dpi)
        height = -(-self.height * dpi // self.dpi)
        scale = dpi / self.dpi

        def scaled(coords: Float32Array, side: int) -> Float32Array:
            out = (coords.astype(np.float64) * scale).astype(np.float32)
            # float32 rounding may land exactly on the new side; keep the half-open range.
            return np.minimum(out, np.nextafter(np.float32(side), np.float32(0)))

        return replace(
            self,
            x=scaled(self.x, width),
            y=scaled(self.y, height),
            width=width,
            height=height,
            dpi=dpi,
        )

    def __repr__(self) -> str:
        return (
            f"FingerTemplate(n={self.n}, {self.width}x{self.height} px at {self.dpi} dpi, "
            f"position={self.position}, impression={self.impression}, "
            f"format_version={self.format_version})"
        )

"""Stored / wire forms of fingerprint templates: standard minutiae records and NIST ``.xyt`` text.

Modules
-------
``iso19794_2``
    ISO/IEC 19794-2:2005 and ISO/IEC 19794-2:2011 finger minutiae records (binary).
``ansi378``
    ANSI INCITS 378-2004 finger minutiae records (binary).
``xyt``
    NIST NBIS ``mindtct`` / ``bozorth3`` ``.xyt`` text (NIST Biometric Image Software user's guide).
``detect``
    :func:`~matcher.formats.detect.decode_any`: tells the three binary records apart.

Rules every codec follows
-------------------------
* Decoders return :class:`~matcher.templates.FingerTemplate` objects, one per finger view, in
  record order. Encoders take the same and write records that decode back to them.
* Bad input raises :class:`~matcher.errors.InvalidTemplate` (a ``ValueError``) whose message
  names the format, the field and its byte offset; no ``IndexError``, ``struct.error`` or
  ``UnicodeDecodeError`` escapes. Inputs over :data:`MAX_RECORD_BYTES` (1 MiB) are refused
  before parsing: a record of 255 views of 255 minutiae without extended data is about 400 KB.
* Precision: ``x`` and ``y`` are stored as whole pixels (rounded half to even, then clipped to
  ``side - 1`` so a coordinate just below the image edge stays inside it); ``theta`` is rounded
  to the format's angle unit; qualities are stored as they are. So ``decode(encode(views))``
  equals the views quantised to that precision, and ``encode(decode(data)) == data`` for any
  record these encoders wrote.
* Resolution: records store pixels per centimetre. :func:`dpi_to_ppcm` rounds (500 dpi ->
  197 px/cm) and :func:`ppcm_to_dpi` returns the *roundest* dpi that rounds to the stored value
  (197 -> 500, 394 -> 1000, 118 -> 300), so the usual resolutions survive a round trip exactly
  and every stored value does too.
* Fields a FingerTemplate does not model (capture device ids, certification, capture time,
  finger-level quality, quality blocks, ridge-ending type, reserved bits) are ignored on decode
  and written with their "unknown / not given" value on encode. Extended data blocks (ridge
  counts, cores and deltas, zonal quality, vendor data) are bounds-checked and skipped on
  decode, and never written: their contents are format-specific and would go stale under
  :meth:`~matcher.templates.FingerTemplate.with_dpi`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.templates import (
    MAX_DPI,
    MAX_FINGER_POSITION,
    MAX_IMAGE_SIDE_PX,
    MIN_DPI,
    FingerTemplate,
)

__all__ = [
    "MAX_RECORD_BYTES",
    "ISO_ANGLE_UNITS_PER_TURN",
    "ANSI_ANGLE_UNITS_PER_TURN",
    "dpi_to_ppcm",
    "ppcm_to_dpi",
]

#: Largest input a decoder accepts, in bytes (1 MiB).
MAX_RECORD_BYTES = 1 << 20

_TWO_PI = 2.0 * math.pi


def dpi_to_ppcm(dpi: int) -> int:
    """Pixels per inch to whole pixels per centimetre, rounding half up: 500 -> 197.

    Exact integer arithmetic: ``floor(dpi / 2.54 + 1/2) == (200 * dpi + 254) // 508``.
    """
    return (200 * int(dpi) + 254) // 508


def ppcm_to_dpi(ppcm: int) -> int:
    """Pixels per centimetre to the roundest dpi that :func:`dpi_to_ppcm` maps back to ``ppcm``.

    Several integer dpi values share one px/cm value (197 covers 500 and 501); the one with the
    most trailing zeros wins, then a multiple of 5, then the nearest to ``ppcm * 2.54``. So
    ``dpi_to_ppcm(ppcm_to_dpi(p)) == p`` for every ``p >= 1``, and 250, 300, 400, 500, 600, 750,
    1000, 1200, 1500 and 2000 dpi come back unchanged. ``ppcm`` must be at least 1.
    """
    ppcm = int(ppcm)
    if ppcm < 1:
        raise ValueError(f"pixels per centimetre must be at least 1, got {ppcm}")
    centre = ppcm * 254 // 100
    candidates = [d for d in range(max(1, centre - 3), centre + 4) if dpi_to_ppcm(d) == ppcm]

    def roundness(d: int) -> tuple[int, bool, int]:
        zeros = len(str(d)) - len(str(d).rstrip("0"))
        return (zeros, d % 5 == 0, -abs(100 * d - 254 * ppcm))

    return max(candidates, key=roundness)


def _as_record(data: object, fmt: str) -> bytes:
    """``data`` as bytes within the size cap, else :class:`InvalidTemplate`."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidTemplate(f"{fmt}: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidTemplate(
            f"{fmt}: input is {len(data)} bytes; records over {MAX_RECORD_BYTES} bytes (1 MiB) "
            "are refused"
        )
    return data


class _Reader:
    """A bounds-checked big-endian cursor over one record; every failure is InvalidTemplate.

    ``end`` may be lowered to the end of a nested block (an ISO 2011 representation) so that
    reads past the block fail with the block named in ``scope``.
    """

    def __init__(self, data: bytes, fmt: str) -> None:
        self.data = data
        self.fmt = fmt
        self.pos = 0
        self.end = len(data)
        self.scope = "the record"

    def fail(self, field: str, offset: int, problem: str) -> InvalidTemplate:
        return InvalidTemplate(f"{self.fmt}: {field} at byte {offset}: {problem}")

    def take(self, n: int, field: str) -> int:
        """Advance over ``n`` bytes of ``field``; return where they start."""
        start = self.pos
        left = self.end - start
        if n > left:
            raise self.fail(
                field,
                start,
                f"truncated: needs {n} bytes but {self.scope} has only {max(left, 0)} more "
                f"(it ends at byte {self.end})",
            )
        self.pos = start + n
        return start

    def u8(self, field: str) -> int:
        return self.data[self.take(1, field)]

    def u16(self, field: str) -> int:
        s = self.take(2, field)
        return int.from_bytes(self.data[s : s + 2], "big")

    def u32(self, field: str) -> int:
        s = self.take(4, field)
        return int.from_bytes(self.data[s : s + 4], "big")

    def raw(self, n: int, field: str) -> bytes:
        s = self.take(n, field)
        return self.data[s : s + n]


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.argmax(mask))


def _angle_codes(theta: npt.NDArray[np.float32], units_per_turn: int) -> npt.NDArray[np.int64]:
    """Radians to integer angle codes ``0 .. units_per_turn - 1`` (rounded, wrapped)."""
    codes = np.rint(theta.astype(np.float64) * (units_per_turn / _TWO_PI)).astype(np.int64)
    return np.mod(codes, units_per_turn)


def _code_angles(codes: npt.NDArray[np.integer], units_per_turn: int) -> npt.NDArray[np.float32]:
    """Integer angle codes to radians (float32)."""
    return (codes.astype(np.float64) * (_TWO_PI / units_per_turn)).astype(np.float32)


def _pixel_coords(t: FingerTemplate) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``x`` and ``y`` as whole pixels inside the image (rounded half to even, clipped)."""
    x = np.clip(np.rint(t.x.astype(np.float64)), 0, t.width - 1).astype(np.int64)
    y = np.clip(np.rint(t.y.astype(np.float64)), 0, t.height - 1).astype(np.int64)
    return x, y


def _check_views(views: object, fmt: str) -> list[FingerTemplate]:
    """The encoders' input: a non-empty sequence of FingerTemplates."""
    if isinstance(views, FingerTemplate):
        raise InvalidTemplate(f"{fmt}: encode takes a list of FingerTemplates, not a single one")
    try:
        out = list(views)  # type: ignore[call-overload]
    except TypeError as exc:
        raise InvalidTemplate(f"{fmt}: views must be a list of FingerTemplates") from exc
    if not out:
        raise InvalidTemplate(f"{fmt}: a record needs at least one finger view; got none")
    for i, v in enumerate(out):
        if not isinstance(v, FingerTemplate):
            raise InvalidTemplate(
                f"{fmt}: views[{i}] is a {type(v).__name__}, not a FingerTemplate"
            )
    return out


def _view_numbers(views: list[FingerTemplate], fmt: str) -> list[int]:
    """View numbers 0, 1, 2, ... per finger position, in list order (a 4-bit field)."""
    seen: dict[int, int] = {}
    numbers = []
    for i, v in enumerate(views):
        k = seen.get(v.position, 0)
        if k > 15:
            raise InvalidTemplate(
                f"{fmt}: views[{i}] is the 17th view of finger position {v.position}; "
                "the view number field holds at most 16 per finger"
            )
        seen[v.position] = k + 1
        numbers.append(k)
    return numbers


# --- The finger minutiae record family (ISO/IEC 19794-2:2005 and :2011, ANSI INCITS 378-2004) ---
# All three share the minutia record: type (2 bits) | x (14 bits), reserved (2 bits) | y (14 bits),
# angle (1 byte), and a quality byte (optional in 2011). The 2005 ISO record and ANSI 378 also
# share the finger view block; they differ in the record header and the angle unit.

_MINUTIA_6 = np.dtype([("type_x", ">u2"), ("y", ">u2"), ("angle", "u1"), ("quality", "u1")])
_MINUTIA_5 = np.dtype([("type_x", ">u2"), ("y", ">u2"), ("angle", "u1")])

#: ISO/IEC 19794-2 angle unit: 360/256 = 1.40625 degrees.
ISO_ANGLE_UNITS_PER_TURN = 256
#: ANSI INCITS 378-2004 angle unit: 2 degrees, codes 0..179.
ANSI_ANGLE_UNITS_PER_TURN = 180


def _header_geometry(
    r: _Reader, width: int, height: int, xres: int, yres: int, size_at: int, res_at: int
) -> tuple[int, int, int]:
    """Validate image size and resolution fields; return ``(width, height, dpi)``."""
    for name, value, at in (("image width", width, size_at), ("image height", height, size_at + 2)):
        if not 1 <= value <= MAX_IMAGE_SIDE_PX:
            raise r.fail(name, at, f"{value} px is outside 1..{MAX_IMAGE_SIDE_PX}")
    if xres != yres:
        raise r.fail(
            "resolution",
            res_at,
            f"x is {xres} px/cm but y is {yres} px/cm; non-square pixels are not supported",
        )
    if xres == 0:
        raise r.fail("x resolution", res_at, "is 0 px/cm")
    dpi = ppcm_to_dpi(xres)
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise r.fail(
            "x resolution", res_at, f"{xres} px/cm ({dpi} dpi) is outside {MIN_DPI}..{MAX_DPI} dpi"
        )
    return width, height, dpi


def _read_minutiae(
    r: _Reader,
    count: int,
    count_at: int,
    record_size: int,
    width: int,
    height: int,
    label: str,
    angle_units: int,
    *,
    quality_2011: bool = False,
) -> dict[str, npt.NDArray]:
    """Read ``count`` minutia records; return float32 ``x, y, theta`` and uint8 ``kind, quality``.

    ``quality_2011``: the quality byte may also be 254 (not reported) or 255 (failed to compute),
    both mapped to 0; otherwise it must be 0..100. A 5-byte record has no quality byte (all 0).
    """
    nbytes = count * record_size
    start = r.pos
    if nbytes > r.end - start:
        raise r.fail(
            f"{label} minutia count",
            count_at,
            f"{count} minutiae of {record_size} bytes need {nbytes} bytes from byte {start}, "
            f"but {r.scope} has only {r.end - start} more",
        )
    rec = np.frombuffer(
        r.data, dtype=_MINUTIA_6 if record_size == 6 else _MINUTIA_5, count=count, offset=start
    )
    r.pos = start + nbytes
    kind = (rec["type_x"] >> 14).astype(np.uint8)
    x = (rec["type_x"] & 0x3FFF).astype(np.int64)
    y = (rec["y"] & 0x3FFF).astype(np.int64)  # the top two bits are reserved: ignored
    angle = rec["angle"].astype(np.int64)

    def at(i: int) -> int:
        return start + i * record_size

    if (bad := kind == 3).any():
        i = _first(bad)
        raise r.fail(f"{label} minutia {i} type", at(i), "type code 3 (binary 11) is reserved")
    if (bad := x >= width).any():
        i = _first(bad)
        raise r.fail(f"{label} minutia {i} x", at(i), f"{x[i]} is outside the image width {width}")
    if (bad := y >= height).any():
        i = _first(bad)
        raise r.fail(
            f"{label} minutia {i} y", at(i) + 2, f"{y[i]} is outside the image height {height}"
        )
    if (bad := angle >= angle_units).any():
        i = _first(bad)
        raise r.fail(
            f"{label} minutia {i} angle",
            at(i) + 4,
            f"code {angle[i]} is above the largest, {angle_units - 1}",
        )
    if record_size == 6:
        q = rec["quality"].astype(np.int64)
        ok = q <= 100
        if quality_2011:
            ok |= q >= 254
        if (bad := ~ok).any():
            i = _first(bad)
            allowed = "0..100, 254 or 255" if quality_2011 else "0..100"
            raise r.fail(f"{label} minutia {i} quality", at(i) + 5, f"{q[i]} is not {allowed}")
        quality = np.where(q > 100, 0, q).astype(np.uint8)
    else:
        quality = np.zeros(count, dtype=np.uint8)
    return {
        "x": x.astype(np.float32),
        "y": y.astype(np.float32),
        "theta": _code_angles(angle, angle_units),
        "kind": kind,
        "quality": quality,
    }


def _minutia_bytes(
    t: FingerTemplate, angle_units: int, quality: npt.NDArray[np.uint8] | None
) -> bytes:
    """The minutia records of ``t``: 6 bytes each with ``quality``, 5 bytes without."""
    x, y = _pixel_coords(t)
    rec = np.zeros(t.n, dtype=_MINUTIA_5 if quality is None else _MINUTIA_6)
    rec["type_x"] = (t.kind.astype(np.int64) << 14) | x
    rec["y"] = y
    rec["angle"] = _angle_codes(t.theta, angle_units)
    if quality is not None:
        rec["quality"] = quality
    return rec.tobytes()


def _build_view(r: _Reader, label: str, start: int, **fields: object) -> FingerTemplate:
    """A FingerTemplate from decoded fields; its own validation errors get the view's offset."""
    try:
        return FingerTemplate(**fields)  # type: ignore[arg-type]
    except InvalidTemplate as exc:
        raise r.fail(label, start, str(exc)) from exc


def _read_fmr_views(
    r: _Reader, n_views: int, width: int, height: int, dpi: int, angle_units: int
) -> list[FingerTemplate]:
    """The finger view blocks of a 2005-style record (ISO/IEC 19794-2:2005, ANSI INCITS 378).

    Per view: finger position (1), view number (4 bits) | impression type (4 bits), finger
    quality (1, ignored), minutia count (1), 6-byte minutiae, extended data length (2) and that
    many bytes of extended data (skipped).
    """
    views = []
    for v in range(n_views):
        label = f"view {v}"
        start = r.pos
        position = r.u8(f"{label} finger position")
        if position > MAX_FINGER_POSITION:
            raise r.fail(
                f"{label} finger position", start, f"code {position} is not a finger (0..10)"
            )
        impression = r.u8(f"{label} view number/impression type") & 0x0F
        r.u8(f"{label} finger quality")
        count_at = r.pos
        count = r.u8(f"{label} minutia count")
        if count == 0:
            raise r.fail(
                f"{label} minutia count", count_at, "is 0; a view without minutiae is refused"
            )
        m = _read_minutiae(r, count, count_at, 6, width, height, label, angle_units)
        ext_at = r.pos
        ext = r.u16(f"{label} extended data length")
        r.take(ext, f"{label} extended data ({ext} bytes, length at byte {ext_at})")
        views.append(
            _build_view(
                r,
                label,
                start,
                width=width,
                height=height,
                dpi=dpi,
                position=position,
                impression=impression,
                **m,
            )
        )
    return views


def _fmr_view_bytes(views: list[FingerTemplate], fmt: str, angle_units: int) -> bytes:
    """The finger view blocks of a 2005-style record; finger quality 0, no extended data."""
    parts = []
    for i, (v, number) in enumerate(zip(views, _view_numbers(views, fmt), strict=True)):
        if v.impression > 15:
            raise InvalidTemplate(
                f"{fmt}: views[{i}].impression = {v.impression} does not fit the 4-bit "
                "impression type field"
            )
        parts.append(bytes([v.position, (number << 4) | v.impression, 0, v.n]))
        parts.append(_minutia_bytes(v, angle_units, v.quality))
        parts.append(b"\x00\x00")
    return b"".join(parts)


def _shared_geometry(views: list[FingerTemplate], fmt: str) -> tuple[int, int, int]:
    """``(width, height, px/cm)`` common to all views: a 2005-style header holds one of each."""
    first = views[0]
    want = (first.width, first.height, dpi_to_ppcm(first.dpi))
    for i, v in enumerate(views[1:], start=1):
        if (v.width, v.height, dpi_to_ppcm(v.dpi)) != want:
            raise InvalidTemplate(
                f"{fmt}: views[{i}] is {v.width}x{v.height} px at {v.dpi} dpi but views[0] is "
                f"{first.width}x{first.height} px at {first.dpi} dpi; this record stores one "
                "image size and resolution for all views (ISO/IEC 19794-2:2011 stores one per "
                "view)"
            )
    return want

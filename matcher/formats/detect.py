"""Tell the binary finger minutiae records apart and decode whichever one arrives.

All three start with the magic ``"FMR\\0"``. ISO/IEC 19794-2:2011 has version ``"030\\0"``.
ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 share version ``" 20\\0"`` and differ in the
record length field at byte 8: ISO 2005 has a 4-byte length; ANSI has a 2-byte length, or
``0x0000`` followed by a 4-byte length (the long form).

Discrimination, in order:

1. whichever reading of the length field equals the actual data length wins. The two cannot
   both match: an ISO length below 65,536 starts with ``0x0000``, which ANSI reads as the long
   form whose 4-byte length then starts with the ISO length's low half (>= 24 << 16, far above
   it); an ISO length of 65,536 or more starts with its own high half, which ANSI would read
   as a length below 17 (ANSI's header alone is 26 bytes).
2. if neither matches (a truncated or padded record), the plausible reading is chosen the way
   FingerprintIO does: a nonzero 16-bit value of 26 or more can only be an ANSI short length,
   a smaller nonzero one only the high half of an ISO length; after ``0x0000``, the next 16
   bits are the high half of an ANSI long length (1..23 for anything under the 1 MiB cap) or
   the low half of an ISO length (>= 24). The chosen decoder then reports the mismatch with
   its byte offset.
"""

from __future__ import annotations

from matcher.formats import _as_record, _Reader, ansi378, iso19794_2
from matcher.templates import FingerTemplate

__all__ = ["decode_any", "detect_format", "ISO_2005", "ISO_2011", "ANSI_378"]

ISO_2005 = iso19794_2.FORMAT_2005
ISO_2011 = iso19794_2.FORMAT_2011
ANSI_378 = ansi378.FORMAT

_ANY = "finger minutiae record"


def detect_format(data: bytes) -> str:
    """Which record ``data`` is: :data:`ISO_2005`, :data:`ISO_2011` or :data:`ANSI_378`.

    Looks only at the header (see the module docstring); raises :class:`InvalidTemplate` when
    the magic or version belongs to none of them. It does not validate the rest.
    """
    data = _as_record(data, _ANY)
    r = _Reader(data, _ANY)
    magic = r.raw(4, "format identifier")
    if magic != iso19794_2.MAGIC:
        raise r.fail(
            "format identifier", 0, f"{magic!r} is not {iso19794_2.MAGIC!r}: not a minutiae record"
        )
    version = r.raw(4, "version")
    if version == iso19794_2.VERSION_2011:
        return ISO_2011
    if version != iso19794_2.VERSION_2005:
        raise r.fail(
            "version",
            4,
            f"{version!r} is not {iso19794_2.VERSION_2005!r} (ISO 2005 / ANSI 378-2004) or "
            f"{iso19794_2.VERSION_2011!r} (ISO 2011)",
        )
    return _iso_2005_or_ansi(data)


def _iso_2005_or_ansi(data: bytes) -> str:
    def u16(at: int) -> int | None:
        return int.from_bytes(data[at : at + 2], "big") if len(data) >= at + 2 else None

    def u32(at: int) -> int | None:
        return int.from_bytes(data[at : at + 4], "big") if len(data) >= at + 4 else None

    first = u16(8)
    iso_length = u32(8)
    ansi_length = u32(10) if first == 0 else first
    if iso_length == len(data):
        return ISO_2005
    if ansi_length == len(data):
        return ANSI_378
    if first is None:
        return ISO_2005  # too short to tell; the ISO decoder reports the truncation
    if first >= 26:
        return ANSI_378
    if first > 0:
        return ISO_2005
    second = u16(10)
    return ANSI_378 if second is not None and 0 < second < 24 else ISO_2005


def decode_any(data: bytes) -> list[FingerTemplate]:
    """Decode an ISO/IEC 19794-2:2005, ISO/IEC 19794-2:2011 or ANSI INCITS 378-2004 record.

    Returns one :class:`FingerTemplate` per finger view. Raises :class:`InvalidTemplate`
    (naming the format, field and byte offset) for anything else or anything malformed.
    """
    fmt = detect_format(data)
    if fmt == ANSI_378:
        return ansi378.decode(data)
    return iso19794_2.decode(data)

"""ISO/IEC 19794-2 finger minutiae records: the 2005 and 2011 editions.

Sources: ISO/IEC 19794-2:2005 *Biometric data interchange formats -- Part 2: Finger minutiae data*
(clause 7, record format) and ISO/IEC 19794-2:2011 with the general header of ISO/IEC
19794-1:2011. The layouts below were checked against two public readers of those records,
NIST BiomDI (``fingerminutia/src/include/fmr.h``) and FingerprintIO (templates.machinezoo.com);
the code here is written from the layouts, not taken from either. All integers are big-endian.

ISO/IEC 19794-2:2005 (version ``" 20\\0"``)::

    offset size  field
    0      4     format identifier "FMR\\0"
    4      4     version " 20\\0"
    8      4     record length, whole record
    12     2     capture equipment certification (4 bits) | capture device type (12 bits)  [0]
    14     2     image width, px             16  2  image height, px
    18     2     x resolution, px/cm         20  2  y resolution, px/cm
    22     1     number of finger views      23  1  reserved [0]
    per view:
    +0     1     finger position 0..10
    +1     1     view number (high 4 bits) | impression type (low 4 bits)
    +2     1     finger quality 0..100                                                      [0]
    +3     1     number of minutiae n
    +4     6n    minutiae, see below
    ...    2     extended data block length L, then L bytes of extended data             [0]

ISO/IEC 19794-2:2011 (version ``"030\\0"``)::

    0      4     "FMR\\0"            4  4  version "030\\0"
    8      4     record length       12 2  number of finger representations
    14     1     device certification block flag (0 or 1)                                  [0]
    per representation:
    +0     4     representation length, including these 4 bytes
    +4     9     capture date and time (year 2, month, day, hour, minute, second, ms 2)  [all FF]
    +13    1     capture device technology              +14 2  device vendor id            [0]
    +16    2     device type id                                                             [0]
    +18    1     number of quality blocks q, then 5q bytes                                 [0]
    (if the certification flag is 1: number of certification blocks c, then 3c bytes)
    then   1     finger position        1  representation (view) number
           2     x resolution px/cm     2  y resolution px/cm     1  impression type
           2     image width px         2  image height px
           1     minutia record length 5 or 6 (high 4 bits) | ridge ending type (low 4 bits) [6|0]
           1     number of minutiae n,  then n minutiae of 5 or 6 bytes
           2     extended data block length L, then L bytes                                [0]

Minutia record (both editions)::

    2   type (2 bits: 00 other, 01 ridge ending, 10 bifurcation, 11 reserved) | x (14 bits)
    2   reserved (2 bits, ignored) | y (14 bits)
    1   angle, units of 360/256 = 1.40625 degrees, counter-clockwise from the horizontal to
        the right as the image is displayed
    1   quality: 2005 0..100, 0 read as "not reported" (the ANSI INCITS 378 convention);
        2011 0..100, 254 = not reported, 255 = failed to compute (both read as 0). Absent in
        2011 5-byte records (read as 0).

Bracketed values are what :func:`encode` writes; those fields are ignored by :func:`decode`. The
2011 encoder writes 6-byte minutiae, with quality 0 written as 254 (not reported), unless every
quality of the view is 0, in which case it writes 5-byte minutiae. The ridge ending type is 0
(valley skeleton bifurcation point), the 2005 definition. See :mod:`matcher.formats` for the
rules shared by all codecs (precision, resolution, size cap, extended data).
"""

from __future__ import annotations

import struct

import numpy as np

from matcher.errors import InvalidTemplate
from matcher.formats import (
    ISO_ANGLE_UNITS_PER_TURN,
    _as_record,
    _build_view,
    _check_views,
    _fmr_view_bytes,
    _header_geometry,
    _minutia_bytes,
    _read_fmr_views,
    _read_minutiae,
    _Reader,
    _shared_geometry,
    _view_numbers,
    dpi_to_ppcm,
)
from matcher.templates import MAX_FINGER_POSITION, FingerTemplate

__all__ = ["decode", "encode", "FORMAT_2005", "FORMAT_2011"]

FORMAT_2005 = "ISO/IEC 19794-2:2005"
FORMAT_2011 = "ISO/IEC 19794-2:2011"

MAGIC = b"FMR\x00"
VERSION_2005 = b" 20\x00"
VERSION_2011 = b"030\x00"

_HEADER_2005 = struct.Struct(">4s4sIHHHHHBB")  # 24 bytes
_HEADER_2011 = struct.Struct(">4s4sIHB")  # 15 bytes
_NO_DATE_TIME = b"\xff" * 9  # year 0xFFFF, month .. second 0xFF, millisecond 0xFFFF
_QUALITY_NOT_REPORTED_2011 = 254


def decode(data: bytes) -> list[FingerTemplate]:
    """Decode an ISO/IEC 19794-2 record (2005 or 2011 edition, chosen by its version field).

    Returns one :class:`FingerTemplate` per finger view, in record order. Raises
    :class:`InvalidTemplate` naming the field and byte offset for anything malformed: wrong
    magic or version, truncation, a record length that disagrees with the data, minutia counts
    that disagree with the bytes, zero views or zero minutiae, reserved type code 11,
    coordinates outside the image, non-square pixels, inputs over 1 MiB.
    """
    data = _as_record(data, "ISO/IEC 19794-2")
    r = _Reader(data, "ISO/IEC 19794-2")
    magic = r.raw(4, "format identifier")
    if magic != MAGIC:
        raise r.fail("format identifier", 0, f"{magic!r} is not {MAGIC!r}")
    version = r.raw(4, "version")
    if version == VERSION_2005:
        return _decode_2005(data)
    if version == VERSION_2011:
        return _decode_2011(data)
    raise r.fail(
        "version", 4, f"{version!r} is neither {VERSION_2005!r} (2005) nor {VERSION_2011!r} (2011)"
    )


def encode(views: list[FingerTemplate], version: str = "2005") -> bytes:
    """Encode finger views as one ISO/IEC 19794-2 record, edition ``"2005"`` or ``"2011"``.

    In 2005 all views must share width, height and resolution (one header holds them); 2011
    stores them per view. View numbers are assigned 0, 1, 2, ... per finger position in list
    order. Coordinates are rounded to whole pixels and angles to 1.40625 degrees.
    """
    if version == "2005":
        return _encode_2005(_check_views(views, FORMAT_2005))
    if version == "2011":
        return _encode_2011(_check_views(views, FORMAT_2011))
    raise ValueError(f"version must be '2005' or '2011', got {version!r}")


def _check_length(r: _Reader, declared: int, at: int, hint: str = "") -> None:
    if declared != len(r.data):
        raise r.fail(
            "record length", at, f"says {declared} bytes but the data is {len(r.data)}{hint}"
        )


def _check_end(r: _Reader) -> None:
    if r.pos != len(r.data):
        raise r.fail(
            "record",
            r.pos,
            f"the views end here but the record length is {len(r.data)}: a minutia count or "
            "extended data length disagrees with the record length",
        )


def _decode_2005(data: bytes) -> list[FingerTemplate]:
    r = _Reader(data, FORMAT_2005)
    r.take(8, "format identifier and version")
    length = r.u32("record length")
    short = length >> 16
    ansi_length = short or (int.from_bytes(data[10:14], "big") if len(data) >= 14 else -1)
    _check_length(
        r,
        length,
        8,
        " (it reads as an ANSI INCITS 378-2004 record, which has the same magic and version: "
        "matcher.formats.detect.decode_any tells them apart)"
        if ansi_length == len(data)
        else "",
    )
    r.u16("capture equipment")
    size_at = r.pos
    width, height = r.u16("image width"), r.u16("image height")
    res_at = r.pos
    xres, yres = r.u16("x resolution"), r.u16("y resolution")
    count_at = r.pos
    n_views = r.u8("number of finger views")
    r.u8("reserved")
    width, height, dpi = _header_geometry(r, width, height, xres, yres, size_at, res_at)
    if n_views == 0:
        raise r.fail("number of finger views", count_at, "is 0")
    views = _read_fmr_views(r, n_views, width, height, dpi, ISO_ANGLE_UNITS_PER_TURN)
    _check_end(r)
    return views


def _encode_2005(views: list[FingerTemplate]) -> bytes:
    if len(views) > 255:
        raise InvalidTemplate(f"{FORMAT_2005}: {len(views)} views; the record holds at most 255")
    width, height, ppcm = _shared_geometry(views, FORMAT_2005)
    body = _fmr_view_bytes(views, FORMAT_2005, ISO_ANGLE_UNITS_PER_TURN)
    header = _HEADER_2005.pack(
        MAGIC,
        VERSION_2005,
        _HEADER_2005.size + len(body),
        0,
        width,
        height,
        ppcm,
        ppcm,
        len(views),
        0,
    )
    return header + body


def _decode_2011(data: bytes) -> list[FingerTemplate]:
    r = _Reader(data, FORMAT_2011)
    r.take(8, "format identifier and version")
    _check_length(r, r.u32("record length"), 8)
    count_at = r.pos
    n_reps = r.u16("number of finger representations")
    flag_at = r.pos
    certified = r.u8("device certification block flag")
    if certified > 1:
        raise r.fail("device certification block flag", flag_at, f"{certified} is not 0 or 1")
    if n_reps == 0:
        raise r.fail("number of finger representations", count_at, "is 0")
    views = []
    for v in range(n_reps):
        label = f"representation {v}"
        start = r.pos
        length = r.u32(f"{label} length")
        if length < 4 or length > len(data) - start:
            raise r.fail(
                f"{label} length",
                start,
                f"{length} bytes does not fit the {len(data) - start} bytes left in the record",
            )
        r.end, r.scope = start + length, label
        views.append(_read_representation(r, label, start, certified == 1))
        if r.pos != r.end:
            raise r.fail(
                f"{label} length",
                start,
                f"says {length} bytes but its fields end after {r.pos - start}: a minutia "
                "count or extended data length disagrees with it",
            )
        r.end, r.scope = len(data), "the record"
    _check_end(r)
    return views


def _read_representation(r: _Reader, label: str, start: int, certified: bool) -> FingerTemplate:
    r.take(9, f"{label} capture date and time")
    r.take(1 + 2 + 2, f"{label} capture device technology, vendor and type")
    n_quality = r.u8(f"{label} number of quality blocks")
    r.take(5 * n_quality, f"{label} quality blocks ({n_quality})")
    if certified:
        n_cert = r.u8(f"{label} number of certification blocks")
        r.take(3 * n_cert, f"{label} certification blocks ({n_cert})")
    position_at = r.pos
    position = r.u8(f"{label} finger position")
    if position > MAX_FINGER_POSITION:
        raise r.fail(
            f"{label} finger position", position_at, f"code {position} is not a finger (0..10)"
        )
    r.u8(f"{label} representation number")
    res_at = r.pos
    xres, yres = r.u16(f"{label} x resolution"), r.u16(f"{label} y resolution")
    impression = r.u8(f"{label} impression type")
    size_at = r.pos
    width, height = r.u16(f"{label} image width"), r.u16(f"{label} image height")
    width, height, dpi = _header_geometry(r, width, height, xres, yres, size_at, res_at)
    format_at = r.pos
    record_size = r.u8(f"{label} minutia record length") >> 4
    if record_size not in (5, 6):
        raise r.fail(f"{label} minutia record length", format_at, f"{record_size} is not 5 or 6")
    count_at = r.pos
    count = r.u8(f"{label} minutia count")
    if count == 0:
        raise r.fail(f"{label} minutia count", count_at, "is 0; a view without minutiae is refused")
    m = _read_minutiae(
        r,
        count,
        count_at,
        record_size,
        width,
        height,
        label,
        ISO_ANGLE_UNITS_PER_TURN,
        quality_2011=True,
    )
    ext_at = r.pos
    ext = r.u16(f"{label} extended data length")
    r.take(ext, f"{label} extended data ({ext} bytes, length at byte {ext_at})")
    return _build_view(
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


def _encode_2011(views: list[FingerTemplate]) -> bytes:
    if len(views) > 0xFFFF:
        raise InvalidTemplate(f"{FORMAT_2011}: {len(views)} representations is over 65535")
    reps = []
    for v, number in zip(views, _view_numbers(views, FORMAT_2011), strict=True):
        ppcm = dpi_to_ppcm(v.dpi)
        if v.quality.any():
            record_size = 6
            quality = np.where(v.quality == 0, _QUALITY_NOT_REPORTED_2011, v.quality)
            minutiae = _minutia_bytes(v, ISO_ANGLE_UNITS_PER_TURN, quality.astype(np.uint8))
        else:
            record_size = 5
            minutiae = _minutia_bytes(v, ISO_ANGLE_UNITS_PER_TURN, None)
        body = b"".join(
            [
                _NO_DATE_TIME,
                bytes([0, 0, 0, 0, 0]),  # device technology unknown; vendor 0; type 0
                b"\x00",  # no quality blocks (certification flag is 0: no count byte)
                struct.pack(
                    ">BBHHBHHBB",
                    v.position,
                    number,
                    ppcm,
                    ppcm,
                    v.impression,
                    v.width,
                    v.height,
                    record_size << 4,
                    v.n,
                ),
                minutiae,
                b"\x00\x00",  # no extended data
            ]
        )
        reps.append(struct.pack(">I", 4 + len(body)) + body)
    body = b"".join(reps)
    header = _HEADER_2011.pack(MAGIC, VERSION_2011, _HEADER_2011.size + len(body), len(views), 0)
    return header + body

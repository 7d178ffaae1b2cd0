"""ANSI INCITS 378-2004 finger minutiae records.

Source: ANSI INCITS 378-2004 *Finger Minutiae Format for Data Interchange*, clause 6 (record
format). The layout was checked against NIST BiomDI (``fingerminutia/src/libfmr/fmr.c``,
``fmr.h``) and FingerprintIO (templates.machinezoo.com); the code is written from the layout.
All integers are big-endian.

::

    offset size  field
    0      4     format identifier "FMR\\0"
    4      4     version " 20\\0"
    8      2     record length; if it is 0, the next 4 bytes hold the length instead
                 (the "long form", needed above 65,535 bytes; the header is then 30 bytes)
    10     4     CBEFF product identifier: owner (2) and type (2)                          [0]
    14     2     capture equipment compliance (4 bits) | scanner id (12 bits)              [0]
    16     2     image width, px            18  2  image height, px
    20     2     x resolution, px/cm        22  2  y resolution, px/cm
    24     1     number of finger views     25  1  reserved [0]
    (offsets after the length field move up by 4 in the long form)
    per view, exactly as in ISO/IEC 19794-2:2005:
    +0     1     finger position 0..10
    +1     1     view number (high 4 bits) | impression type (low 4 bits)
    +2     1     finger quality 0..100                                                      [0]
    +3     1     number of minutiae n, then n 6-byte minutiae:
                 type (2 bits) | x (14 bits); reserved (2 bits) | y (14 bits);
                 angle in units of 2 degrees, 0..179, counter-clockwise from the horizontal to
                 the right as the image is displayed; quality 0..100, 0 = not reported
    ...    2     extended data block length L, then L bytes of extended data               [0]

Bracketed values are what :func:`encode` writes; :func:`decode` ignores those fields. We hold no
IBIA-registered CBEFF owner, so the product identifier is written as 0 (BiomDI's validator
flags that outside MINEX; readers ignore it). The short length form is written whenever the
record fits in 65,535 bytes, the long form otherwise. ANSI 378 and ISO/IEC 19794-2:2005 share
the magic and version; :mod:`matcher.formats.detect` tells them apart by the length field.
"""

from __future__ import annotations

import struct

from matcher.errors import InvalidTemplate
from matcher.formats import (
    ANSI_ANGLE_UNITS_PER_TURN,
    _as_record,
    _check_views,
    _fmr_view_bytes,
    _header_geometry,
    _read_fmr_views,
    _Reader,
    _shared_geometry,
)
from matcher.templates import FingerTemplate

__all__ = ["decode", "encode", "FORMAT"]

FORMAT = "ANSI INCITS 378-2004"

MAGIC = b"FMR\x00"
VERSION = b" 20\x00"

_SHORT_HEADER = 26
_LONG_HEADER = 30
_AFTER_LENGTH = struct.Struct(">IHHHHHBB")  # product id, equipment, size, resolution, views


def decode(data: bytes) -> list[FingerTemplate]:
    """Decode an ANSI INCITS 378-2004 record into one :class:`FingerTemplate` per finger view.

    Raises :class:`InvalidTemplate` naming the field and byte offset for anything malformed
    (see :func:`matcher.formats.iso19794_2.decode` for the list); an angle code above 179 is
    also refused.
    """
    data = _as_record(data, FORMAT)
    r = _Reader(data, FORMAT)
    magic = r.raw(4, "format identifier")
    if magic != MAGIC:
        raise r.fail("format identifier", 0, f"{magic!r} is not {MAGIC!r}")
    version = r.raw(4, "version")
    if version != VERSION:
        raise r.fail("version", 4, f"{version!r} is not {VERSION!r}")
    length = r.u16("record length")
    length_at = 8
    if length == 0:
        length_at = r.pos
        length = r.u32("record length (long form)")
    if length != len(data):
        looks_iso = int.from_bytes(data[8:12], "big") == len(data)
        raise r.fail(
            "record length",
            length_at,
            f"says {length} bytes but the data is {len(data)}"
            + (
                " (it reads as an ISO/IEC 19794-2:2005 record, which has the same magic and "
                "version: matcher.formats.detect.decode_any tells them apart)"
                if looks_iso
                else ""
            ),
        )
    r.take(4, "CBEFF product identifier")
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
    views = _read_fmr_views(r, n_views, width, height, dpi, ANSI_ANGLE_UNITS_PER_TURN)
    if r.pos != len(data):
        raise r.fail(
            "record",
            r.pos,
            f"the views end here but the record length is {len(data)}: a minutia count or "
            "extended data length disagrees with the record length",
        )
    return views


def encode(views: list[FingerTemplate]) -> bytes:
    """Encode finger views as one ANSI INCITS 378-2004 record.

    All views must share width, height and resolution (one header holds them). View numbers
    are assigned 0, 1, 2, ... per finger position in list order. Coordinates are rounded to
    whole pixels and angles to 2 degrees.
    """
    views = _check_views(views, FORMAT)
    if len(views) > 255:
        raise InvalidTemplate(f"{FORMAT}: {len(views)} views; the record holds at most 255")
    width, height, ppcm = _shared_geometry(views, FORMAT)
    body = _fmr_view_bytes(views, FORMAT, ANSI_ANGLE_UNITS_PER_TURN)
    rest = _AFTER_LENGTH.pack(0, 0, width, height, ppcm, ppcm, len(views), 0)
    if _SHORT_HEADER + len(body) <= 0xFFFF:
        length = struct.pack(">H", _SHORT_HEADER + len(body))
    else:
        length = struct.pack(">HI", 0, _LONG_HEADER + len(body))
    return MAGIC + VERSION + length + rest + body

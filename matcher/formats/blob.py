"""Our own lossless binary codec for templates: what :mod:`matcher.store` seals and keeps.

The standard records (:mod:`matcher.formats.iso19794_2`, :mod:`matcher.formats.ansi378`) round
coordinates to whole pixels and angles to 1.4 or 2 degrees; this codec keeps every field exactly
(float32 bit patterns included), so a template read back from the store is the template that was
enrolled. It has no compatibility duties beyond itself: every blob names its kind and codec
version, and a decoder refuses a version it does not know rather than guess.

Layout (all integers little-endian)
-----------------------------------
Finger blob, ``28 + 14 * n`` bytes::

    0   4  magic b"AMYF"
    4   1  codec version (1)
    5   1  FingerTemplate.format_version
    6   2  width (px)          8   2  height (px)       10   2  dpi
    12  1  position            13  1  impression        14   2  n (minutiae, 1..255)
    16 12  reserved, zero
    28     x float32[n], y float32[n], theta float32[n], kind uint8[n], quality uint8[n]

Iris blob, ``16 + 2 * ceil(rings * columns * bits / 8)`` bytes::

    0   4  magic b"AMYI"
    4   1  codec version (1)
    5   1  IrisTemplate.format_version
    6   1  eye, b"L" or b"R"
    7   1  reserved, zero
    8   4  rings (u16), columns (u16)
    12  2  bits per sample (u16)
    14  2  reserved, zero
    16     np.packbits(code.ravel()) then np.packbits(mask.ravel()) (C order, big-endian bits,
           padding bits of the last byte zero)

Decoding checks the magic, the version, the exact length (a truncated or over-long blob is
refused, so is anything over :data:`MAX_BLOB_BYTES`), zero reserved and padding bits, and then
builds the template through its own validation. Every problem raises
:class:`~matcher.errors.InvalidTemplate` saying what is wrong; no ``struct.error`` or
``IndexError`` escapes. Cost: a few microseconds of parsing plus the template's validation.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.iris import IrisGeometry, IrisTemplate, validate_code_mask
from matcher.templates import (
    FINGER_TEMPLATE_VERSION,
    KIND_BIFURCATION,
    MAX_DPI,
    MAX_FINGER_POSITION,
    MAX_IMAGE_SIDE_PX,
    MAX_IMPRESSION,
    MAX_MINUTIAE,
    MIN_DPI,
    FingerTemplate,
)

__all__ = [
    "CODEC_VERSION",
    "FINGER_MAGIC",
    "IRIS_MAGIC",
    "IRIS_TEMPLATE_VERSIONS",
    "MAX_BLOB_BYTES",
    "MAX_IRIS_BITS",
    "encode_finger",
    "decode_finger",
    "decode_fingers",
    "encode_iris",
    "decode_iris",
]

FINGER_MAGIC = b"AMYF"
IRIS_MAGIC = b"AMYI"
#: The layout described in the module docstring.
CODEC_VERSION = 1
#: IrisTemplate.format_version values this codec knows.
IRIS_TEMPLATE_VERSIONS = frozenset({1})
#: Largest iris code accepted, in bits (64 times Daugman's 2,048; 16 x 256 x 4 is 16,384).
MAX_IRIS_BITS = 1 << 17
#: Largest blob either decoder reads: an iris of MAX_IRIS_BITS code and mask bits plus header.
MAX_BLOB_BYTES = 16 + 2 * (MAX_IRIS_BITS // 8)

_FINGER_HEAD = struct.Struct("<4sBBHHHBBH12s")
_IRIS_HEAD = struct.Struct("<4sBBcBHHHH")
_PER_MINUTIA = 3 * 4 + 2  # three float32 and two uint8
_TWO_PI_F32 = np.float32(2.0 * math.pi)


def _as_bytes(blob: object, what: str) -> bytes:
    if isinstance(blob, bytearray | memoryview):
        blob = bytes(blob)
    if not isinstance(blob, bytes):
        raise InvalidTemplate(f"{what} blob: expected bytes, got {type(blob).__name__}")
    if len(blob) > MAX_BLOB_BYTES:
        raise InvalidTemplate(
            f"{what} blob: {len(blob)} bytes is over the {MAX_BLOB_BYTES}-byte limit"
        )
    return blob


def _check_head(blob: bytes, what: str, magic: bytes, head_size: int) -> None:
    if len(blob) < head_size:
        if not blob.startswith(magic[: len(blob)]):
            raise InvalidTemplate(
                f"{what} blob: does not start with {magic!r}; not the {what} blob format"
            )
        raise InvalidTemplate(
            f"{what} blob: truncated: {len(blob)} bytes, shorter than the {head_size}-byte header"
        )
    if blob[:4] != magic:
        raise InvalidTemplate(
            f"{what} blob: starts with {blob[:4]!r}, not {magic!r}; not the {what} blob format"
        )
    if blob[4] != CODEC_VERSION:
        raise InvalidTemplate(
            f"{what} blob: codec version {blob[4]} is unknown (this code reads {CODEC_VERSION})"
        )


def _check_length(blob: bytes, what: str, want: int, detail: str) -> None:
    if len(blob) < want:
        raise InvalidTemplate(
            f"{what} blob: truncated: {len(blob)} bytes, but {detail} need {want}"
        )
    if len(blob) > want:
        raise InvalidTemplate(
            f"{what} blob: {len(blob) - want} unexpected bytes after the {want} that {detail} need"
        )


# --- fingers ----------------------------------------------------------------------------------


def encode_finger(t: FingerTemplate) -> bytes:
    """The lossless blob of ``t`` (``28 + 14 * t.n`` bytes); decodes to an equal template."""
    if not isinstance(t, FingerTemplate):
        raise InvalidTemplate(f"encode_finger takes a FingerTemplate, got {type(t).__name__}")
    head = _FINGER_HEAD.pack(
        FINGER_MAGIC,
        CODEC_VERSION,
        t.format_version,
        t.width,
        t.height,
        t.dpi,
        t.position,
        t.impression,
        t.n,
        bytes(12),
    )
    return b"".join(
        (
            head,
            t.x.astype("<f4").tobytes(),
            t.y.astype("<f4").tobytes(),
            t.theta.astype("<f4").tobytes(),
            t.kind.astype(np.uint8).tobytes(),
            t.quality.astype(np.uint8).tobytes(),
        )
    )


def _finger_head(blob: object, what: str) -> tuple[bytes, tuple[int, ...]]:
    """The checked header ``(version, width, height, dpi, position, impression, n)``."""
    blob = _as_bytes(blob, what)
    _check_head(blob, what, FINGER_MAGIC, _FINGER_HEAD.size)
    _, _, version, width, height, dpi, position, impression, n, reserved = _FINGER_HEAD.unpack_from(
        blob
    )
    if version != FINGER_TEMPLATE_VERSION:
        raise InvalidTemplate(
            f"{what} blob: template format version {version} is unknown "
            f"(this code reads {FINGER_TEMPLATE_VERSION})"
        )
    if reserved != bytes(12):
        raise InvalidTemplate(f"{what} blob: reserved header bytes 16..27 are not zero")
    if not 1 <= n <= MAX_MINUTIAE:
        raise InvalidTemplate(f"{what} blob: minutia count {n} is outside 1..{MAX_MINUTIAE}")
    _check_length(blob, what, _FINGER_HEAD.size + _PER_MINUTIA * n, f"{n} minutiae")
    return blob, (version, width, height, dpi, position, impression, n)


def decode_finger(blob: bytes) -> FingerTemplate:
    """The FingerTemplate :func:`encode_finger` wrote; :class:`InvalidTemplate` on any damage.

    Validates through the FingerTemplate constructor (tens of microseconds a template); for many
    blobs at once :func:`decode_fingers` is several times faster and gives equal results.
    """
    what = "finger"
    blob, (version, width, height, dpi, position, impression, n) = _finger_head(blob, what)
    at = _FINGER_HEAD.size
    floats = np.frombuffer(blob, dtype="<f4", count=3 * n, offset=at).astype(np.float32)
    codes = np.frombuffer(blob, dtype=np.uint8, count=2 * n, offset=at + 12 * n)
    theta = floats[2 * n :]
    # The encoder only ever writes wrapped angles; a template would silently re-wrap others.
    bad = ~((theta >= 0) & (theta < _TWO_PI_F32))
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidTemplate(f"{what} blob: theta[{i}] = {theta[i]} is outside [0, 2*pi)")
    try:
        return FingerTemplate(
            x=floats[:n],
            y=floats[n : 2 * n],
            theta=theta,
            kind=codes[:n],
            quality=codes[n:],
            width=width,
            height=height,
            dpi=dpi,
            position=position,
            impression=impression,
            format_version=version,
        )
    except InvalidTemplate as exc:
        raise InvalidTemplate(f"{what} blob: {exc}") from exc


# FingerTemplate's fields, in order, as decode_fingers sets them; if the class changes shape the
# fast path steps aside and every blob goes through the validating constructor.
_FINGER_FIELDS = (
    "x",
    "y",
    "theta",
    "width",
    "height",
    "dpi",
    "kind",
    "quality",
    "position",
    "impression",
    "format_version",
)
_FAST_PATH = tuple(f.name for f in dataclasses.fields(FingerTemplate)) == _FINGER_FIELDS


def decode_fingers(blobs: Sequence[bytes]) -> list[FingerTemplate]:
    """``[decode_finger(b) for b in blobs]``, validated in bulk: several times faster.

    Every check the FingerTemplate constructor makes (field ranges; coordinates finite and inside
    the image; angles in ``[0, 2*pi)``; kind and quality codes) runs once over all the blobs'
    minutiae as whole-array operations, and the templates are then assembled without running the
    per-template validation again. Their arrays are read-only views of one buffer per call.
    A bad blob raises :class:`InvalidTemplate` naming its index in ``blobs``.
    """
    heads = []
    for i, blob in enumerate(blobs):
        try:
            heads.append(_finger_head(blob, "finger"))
        except InvalidTemplate as exc:
            raise InvalidTemplate(f"blobs[{i}]: {exc}") from None
    if not _FAST_PATH:  # pragma: no cover - only if FingerTemplate gains or loses a field
        return [decode_finger(b) for b, _ in heads]
    if not heads:
        return []
    meta = np.array([h for _, h in heads], dtype=np.int64)  # (B, 7)
    version, width, height, dpi, position, impression, n = meta.T
    _check_fields(width, height, dpi, position, impression)
    at = _FINGER_HEAD.size
    floats_raw = b"".join(b[at : at + 12 * int(k)] for (b, _), k in zip(heads, n, strict=True))
    codes_raw = b"".join(b[at + 12 * int(k) :] for (b, _), k in zip(heads, n, strict=True))
    floats = np.frombuffer(floats_raw, dtype="<f4").view(np.float32)
    codes = np.frombuffer(codes_raw, dtype=np.uint8)
    starts = np.zeros(n.size + 1, np.int64)
    np.cumsum(n, out=starts[1:])
    # Per float: which blob and which field (0 x, 1 y, 2 theta); per code byte: 0 kind, 1 quality.
    blob_of_f = np.repeat(np.arange(n.size), 3 * n)
    field_of_f = (np.arange(floats.size) - np.repeat(3 * starts[:-1], 3 * n)) // n[blob_of_f]
    limit = np.where(
        field_of_f == 0,
        width[blob_of_f].astype(np.float32),
        np.where(field_of_f == 1, height[blob_of_f].astype(np.float32), _TWO_PI_F32),
    )
    bad = ~((floats >= 0) & (floats < limit))  # NaN fails both comparisons
    if bad.any():
        j = int(np.argmax(bad))
        b, f = int(blob_of_f[j]), int(field_of_f[j])
        name = ("x", "y", "theta")[f]
        k = j - 3 * int(starts[b]) - f * int(n[b])
        side = ("width", "height", "2*pi")[f]
        raise InvalidTemplate(
            f"blobs[{b}]: finger blob: {name}[{k}] = {floats[j]} is outside [0, {side})"
        )
    blob_of_c = np.repeat(np.arange(n.size), 2 * n)
    field_of_c = (np.arange(codes.size) - np.repeat(2 * starts[:-1], 2 * n)) // n[blob_of_c]
    bad = codes > np.where(field_of_c == 0, KIND_BIFURCATION, 100)
    if bad.any():
        j = int(np.argmax(bad))
        b, f = int(blob_of_c[j]), int(field_of_c[j])
        k = j - 2 * int(starts[b]) - f * int(n[b])
        raise InvalidTemplate(
            f"blobs[{b}]: finger blob: {('kind', 'quality')[f]}[{k}] = {codes[j]} is out of range"
        )
    # -0.0 becomes 0.0 in theta only, as the constructor's wrap does (x and y keep their sign).
    floats = np.where(field_of_f == 2, floats + np.float32(0.0), floats)
    floats.flags.writeable = False
    out = []
    new = object.__new__
    put = object.__setattr__
    offsets = zip((3 * starts[:-1]).tolist(), (2 * starts[:-1]).tolist(), strict=True)
    for (s3, s2), (_, head) in zip(offsets, heads, strict=True):
        v, w, h, d, p, imp, k = head
        t = new(FingerTemplate)
        put(t, "x", floats[s3 : s3 + k])
        put(t, "y", floats[s3 + k : s3 + 2 * k])
        put(t, "theta", floats[s3 + 2 * k : s3 + 3 * k])
        put(t, "width", w)
        put(t, "height", h)
        put(t, "dpi", d)
        put(t, "kind", codes[s2 : s2 + k])
        put(t, "quality", codes[s2 + k : s2 + 2 * k])
        put(t, "position", p)
        put(t, "impression", imp)
        put(t, "format_version", v)
        out.append(t)
    return out


def _check_fields(*columns: npt.NDArray[np.int64]) -> None:
    """The constructor's range checks of the scalar fields, over a batch."""
    width, height, dpi, position, impression = columns
    for name, col, lo, hi in (
        ("width", width, 1, MAX_IMAGE_SIDE_PX),
        ("height", height, 1, MAX_IMAGE_SIDE_PX),
        ("dpi", dpi, MIN_DPI, MAX_DPI),
        ("position", position, 0, MAX_FINGER_POSITION),
        ("impression", impression, 0, MAX_IMPRESSION),
    ):
        bad = (col < lo) | (col > hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidTemplate(
                f"blobs[{i}]: finger blob: FingerTemplate.{name} must be in [{lo}, {hi}], "
                f"got {int(col[i])}"
            )


# --- irises -----------------------------------------------------------------------------------


def _packed_bytes(n_bits: int) -> int:
    return -(-n_bits // 8)


def encode_iris(t: IrisTemplate) -> bytes:
    """The lossless blob of ``t``: geometry, eye, version, packed code and mask bits."""
    if not isinstance(t, IrisTemplate):
        raise InvalidTemplate(f"encode_iris takes an IrisTemplate, got {type(t).__name__}")
    if t.eye not in ("L", "R"):
        raise InvalidTemplate(f"iris eye must be 'L' or 'R', got {t.eye!r}")
    if t.format_version not in IRIS_TEMPLATE_VERSIONS:
        raise InvalidTemplate(
            f"iris format_version {t.format_version!r} is unknown "
            f"(known: {sorted(IRIS_TEMPLATE_VERSIONS)})"
        )
    shape = getattr(t.code, "shape", ())
    if len(shape) != 3:
        raise InvalidTemplate(f"iris code must be 3-D (rings, columns, bits), got shape {shape}")
    geometry = IrisGeometry(*shape)
    if geometry.n_bits > MAX_IRIS_BITS:
        raise InvalidTemplate(
            f"iris code of {geometry.n_bits} bits is over the {MAX_IRIS_BITS}-bit limit"
        )
    if max(geometry.shape) > 0xFFFF:
        raise InvalidTemplate(f"iris geometry {geometry.shape} does not fit 16-bit fields")
    code, mask = validate_code_mask(t.code, t.mask, geometry, 0)
    head = _IRIS_HEAD.pack(
        IRIS_MAGIC,
        CODEC_VERSION,
        t.format_version,
        t.eye.encode("ascii"),
        0,
        geometry.rings,
        geometry.columns,
        geometry.bits,
        0,
    )
    return head + np.packbits(code.ravel()).tobytes() + np.packbits(mask.ravel()).tobytes()


def _unpack_bits(
    blob: bytes, offset: int, n_bits: int, shape: tuple[int, int, int], name: str
) -> npt.NDArray[np.bool_]:
    packed = np.frombuffer(blob, dtype=np.uint8, count=_packed_bytes(n_bits), offset=offset)
    pad = 8 * packed.size - n_bits
    if pad and int(packed[-1]) & ((1 << pad) - 1):
        raise InvalidTemplate(f"iris blob: padding bits after the {name} bits are not zero")
    return np.unpackbits(packed, count=n_bits).astype(bool).reshape(shape)


def decode_iris(blob: bytes) -> IrisTemplate:
    """The IrisTemplate :func:`encode_iris` wrote; :class:`InvalidTemplate` on any damage."""
    what = "iris"
    blob = _as_bytes(blob, what)
    _check_head(blob, what, IRIS_MAGIC, _IRIS_HEAD.size)
    _, _, version, eye_b, reserved1, rings, columns, bits, reserved2 = _IRIS_HEAD.unpack_from(blob)
    if version not in IRIS_TEMPLATE_VERSIONS:
        raise InvalidTemplate(
            f"{what} blob: template format version {version} is unknown "
            f"(known: {sorted(IRIS_TEMPLATE_VERSIONS)})"
        )
    if eye_b not in (b"L", b"R"):
        raise InvalidTemplate(f"{what} blob: eye byte {eye_b!r} is not b'L' or b'R'")
    if reserved1 or reserved2:
        raise InvalidTemplate(f"{what} blob: reserved header bytes are not zero")
    try:
        geometry = IrisGeometry(rings, columns, bits)
    except InvalidTemplate as exc:
        raise InvalidTemplate(f"{what} blob: {exc}") from exc
    if geometry.n_bits > MAX_IRIS_BITS:
        raise InvalidTemplate(
            f"{what} blob: geometry {geometry.shape} has {geometry.n_bits} bits, over the "
            f"{MAX_IRIS_BITS}-bit limit"
        )
    each = _packed_bytes(geometry.n_bits)
    _check_length(
        blob, what, _IRIS_HEAD.size + 2 * each, f"code and mask of geometry {geometry.shape}"
    )
    code = _unpack_bits(blob, _IRIS_HEAD.size, geometry.n_bits, geometry.shape, "code")
    mask = _unpack_bits(blob, _IRIS_HEAD.size + each, geometry.n_bits, geometry.shape, "mask")
    return IrisTemplate(code=code, mask=mask, eye=eye_b.decode("ascii"), format_version=version)

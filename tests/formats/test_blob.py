"""matcher.formats.blob: the store's lossless template codec.

Properties: exact (bit-for-bit) round trips of every field; any damage (truncation, extra bytes,
flipped bits, random bytes) either raises InvalidTemplate or decodes to a template that encodes
back to exactly the same bytes; the bulk decoder agrees with the one-blob decoder everywhere.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from matcher.errors import InvalidTemplate
from matcher.formats import blob
from matcher.iris import IrisGeometry, IrisTemplate
from matcher.templates import FingerTemplate

FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
THETA_MAX = float(np.nextafter(np.float32(2 * math.pi), np.float32(0)))
# Valid geometries, some whose bit count is not a multiple of 8 (padding in the packed bytes).
GEOMETRIES = [(8, 128, 2), (16, 256, 2), (4, 32, 2), (3, 1, 21), (33, 3, 1), (1, 64, 1)]


@st.composite
def finger_templates(draw: st.DrawFn, max_n: int = 60) -> FingerTemplate:
    n = draw(st.integers(1, max_n))
    width = draw(st.integers(1, 16383))
    height = draw(st.integers(1, 16383))

    def coords(side: int) -> np.ndarray:
        elements = st.floats(0, side, width=32, exclude_max=True)
        return draw(hnp.arrays(np.float32, n, elements=elements))

    return FingerTemplate(
        x=coords(width),
        y=coords(height),
        theta=draw(hnp.arrays(np.float32, n, elements=st.floats(0, THETA_MAX, width=32))),
        kind=draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 2))),
        quality=draw(hnp.arrays(np.uint8, n, elements=st.integers(0, 100))),
        width=width,
        height=height,
        dpi=draw(st.integers(50, 20000)),
        position=draw(st.integers(0, 10)),
        impression=draw(st.integers(0, 255)),
    )


@st.composite
def iris_templates(draw: st.DrawFn) -> IrisTemplate:
    shape = draw(st.sampled_from(GEOMETRIES))
    code = draw(hnp.arrays(np.bool_, shape))
    mask = draw(hnp.arrays(np.bool_, shape))
    return IrisTemplate(code=code, mask=mask, eye=draw(st.sampled_from("LR")))


def same_bits(a: FingerTemplate, b: FingerTemplate) -> bool:
    """Every field equal, the float32 arrays bit for bit (so -0.0 and NaN payloads count)."""
    if not a.equals(b):
        return False
    return all(
        np.array_equal(getattr(a, f).view(np.uint32), getattr(b, f).view(np.uint32))
        for f in ("x", "y", "theta")
    ) and all(getattr(a, f).dtype == getattr(b, f).dtype for f in ("x", "kind", "quality"))


def same_iris(a: IrisTemplate, b: IrisTemplate) -> bool:
    return (
        a.eye == b.eye
        and a.format_version == b.format_version
        and a.code.dtype == b.code.dtype == np.bool_
        and np.array_equal(a.code, b.code)
        and np.array_equal(a.mask, b.mask)
    )


def small_finger() -> FingerTemplate:
    return FingerTemplate(
        x=[1.5, 2.25, 299.75],
        y=[0.0, 3.125, 399.5],
        theta=[0.0, 1.0, THETA_MAX],
        kind=[0, 1, 2],
        quality=[0, 50, 100],
        width=300,
        height=400,
        dpi=1000,
        position=7,
        impression=8,
    )


def small_iris() -> IrisTemplate:
    rng = np.random.default_rng(3)
    shape = (3, 1, 21)  # 63 bits: one padding bit per packed array
    return IrisTemplate(code=rng.random(shape) < 0.5, mask=rng.random(shape) < 0.8, eye="R")


# --- fingers ----------------------------------------------------------------------------------


@FAST
@given(finger_templates(max_n=255))
def test_finger_round_trip_is_exact(t: FingerTemplate) -> None:
    data = blob.encode_finger(t)
    assert len(data) == 28 + 14 * t.n
    back = blob.decode_finger(data)
    assert same_bits(back, t)
    assert blob.encode_finger(back) == data


@settings(FAST, max_examples=40)
@given(st.lists(finger_templates(), min_size=0, max_size=5))
def test_bulk_decoder_agrees_with_the_one_blob_decoder(ts: list[FingerTemplate]) -> None:
    blobs = [blob.encode_finger(t) for t in ts]
    bulk = blob.decode_fingers(blobs)
    assert len(bulk) == len(ts)
    for t, b in zip(ts, bulk, strict=True):
        assert same_bits(b, t)
        assert not b.x.flags.writeable and not b.kind.flags.writeable
        assert isinstance(b.width, int) and isinstance(b.position, int)
        assert repr(b) == repr(t)


def test_negative_zero_coordinates_survive_and_theta_is_wrapped() -> None:
    t = FingerTemplate(x=[-0.0, 1.0], y=[-0.0, 2.0], theta=[0.0, 3.0], width=5, height=5)
    assert np.signbit(t.x[0])
    data = blob.encode_finger(t)
    for back in (blob.decode_finger(data), *blob.decode_fingers([data])):
        assert same_bits(back, t)
    # A theta of -0.0 written by hand reads as 0.0 on both paths, as the constructor wraps it.
    raw = bytearray(data)
    raw[28 + 16 : 28 + 20] = struct.pack("<f", -0.0)
    for back in (blob.decode_finger(bytes(raw)), *blob.decode_fingers([bytes(raw)])):
        assert not np.signbit(back.theta[0])


def test_every_truncation_and_extension_of_a_finger_blob_raises() -> None:
    data = blob.encode_finger(small_finger())
    for cut in range(len(data)):
        with pytest.raises(InvalidTemplate, match="finger blob"):
            blob.decode_finger(data[:cut])
        with pytest.raises(InvalidTemplate, match=r"blobs\[1\]"):
            blob.decode_fingers([data, data[:cut]])
    with pytest.raises(InvalidTemplate, match="unexpected bytes"):
        blob.decode_finger(data + b"\x00")
    with pytest.raises(InvalidTemplate, match="truncated"):
        blob.decode_finger(data[:-1])


@pytest.mark.parametrize(
    "offset, value, match",
    [
        (0, b"XMYF", "not the finger blob format"),
        (4, b"\x02", "codec version 2"),
        (5, b"\x02", "format version 2"),
        (6, struct.pack("<H", 0), "width"),
        (8, struct.pack("<H", 16384), "height"),
        (10, struct.pack("<H", 49), "dpi"),
        (12, b"\x0b", "position"),
        (14, struct.pack("<H", 0), "minutia count 0"),
        (14, struct.pack("<H", 4), "truncated"),
        (14, struct.pack("<H", 2), "unexpected bytes"),
        (20, b"\x01", "reserved"),
        (28, struct.pack("<f", 300.0), r"x\[0\]"),
        (28 + 12, struct.pack("<f", float("nan")), r"y\[0\]"),
        (28 + 12 + 4, struct.pack("<f", -1.0), r"y\[1\]"),
        (28 + 24, struct.pack("<f", 2 * math.pi), r"theta\[0\]"),
        (28 + 24 + 8, struct.pack("<f", float("inf")), r"theta\[2\]"),
        (28 + 36 + 1, b"\x03", r"kind\[1\]"),
        (28 + 36 + 3 + 2, b"\x65", r"quality\[2\]"),
    ],
)
def test_damaged_finger_fields_are_named(offset: int, value: bytes, match: str) -> None:
    data = bytearray(blob.encode_finger(small_finger()))
    data[offset : offset + len(value)] = value
    with pytest.raises(InvalidTemplate, match=match):
        blob.decode_finger(bytes(data))
    with pytest.raises(InvalidTemplate, match=match):
        blob.decode_fingers([blob.encode_finger(small_finger()), bytes(data)])


def _accepts_only_canonical(data: bytes) -> None:
    """Either both decoders refuse ``data``, or both accept it and it encodes back unchanged."""
    try:
        one = blob.decode_finger(data)
    except InvalidTemplate:
        with pytest.raises(InvalidTemplate):
            blob.decode_fingers([data])
        return
    assert blob.encode_finger(one) == data
    assert same_bits(blob.decode_fingers([data])[0], one)


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_raise_invalid_template(data: bytes) -> None:
    for decode in (blob.decode_finger, blob.decode_iris):
        with pytest.raises(InvalidTemplate):
            decode(data)


@FAST
@given(st.integers(1, 12), st.integers(-1, 1), st.data())
def test_random_bodies_behind_a_valid_header(n: int, extra: int, data: st.DataObject) -> None:
    size = 14 * n + extra
    body = data.draw(st.binary(min_size=size, max_size=size))
    head = struct.pack("<4sBBHHHBBH12s", b"AMYF", 1, 1, 300, 400, 500, 1, 0, n, bytes(12))
    _accepts_only_canonical(head + body)


@FAST
@given(finger_templates(max_n=20), st.data())
def test_flipped_bits_are_refused_or_canonical(t: FingerTemplate, data: st.DataObject) -> None:
    raw = bytearray(blob.encode_finger(t))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= 1 << data.draw(st.integers(0, 7))
    _accepts_only_canonical(bytes(raw))


def test_oversized_and_non_bytes_input() -> None:
    with pytest.raises(InvalidTemplate, match="limit"):
        blob.decode_finger(b"AMYF" + bytes(blob.MAX_BLOB_BYTES))
    with pytest.raises(InvalidTemplate, match="limit"):
        blob.decode_iris(b"AMYI" + bytes(blob.MAX_BLOB_BYTES))
    with pytest.raises(InvalidTemplate, match="expected bytes"):
        blob.decode_finger("AMYF")  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate, match="FingerTemplate"):
        blob.encode_finger(small_iris())  # type: ignore[arg-type]
    # memoryview and bytearray are accepted
    data = blob.encode_finger(small_finger())
    assert same_bits(blob.decode_finger(memoryview(data)), small_finger())  # type: ignore[arg-type]
    assert blob.decode_fingers([]) == []


# --- irises -----------------------------------------------------------------------------------


@FAST
@given(iris_templates())
def test_iris_round_trip_is_exact(t: IrisTemplate) -> None:
    data = blob.encode_iris(t)
    n_bits = int(np.prod(t.code.shape))
    assert len(data) == 16 + 2 * ((n_bits + 7) // 8)
    back = blob.decode_iris(data)
    assert same_iris(back, t)
    assert blob.encode_iris(back) == data


def test_every_truncation_and_extension_of_an_iris_blob_raises() -> None:
    data = blob.encode_iris(small_iris())
    for cut in range(len(data)):
        with pytest.raises(InvalidTemplate, match="iris blob"):
            blob.decode_iris(data[:cut])
    with pytest.raises(InvalidTemplate, match="unexpected bytes"):
        blob.decode_iris(data + b"\x00")


@pytest.mark.parametrize(
    "offset, value, match",
    [
        (0, b"AMYF", "not the iris blob format"),
        (4, b"\x07", "codec version 7"),
        (5, b"\x09", "format version 9"),
        (6, b"X", "eye byte"),
        (7, b"\x01", "reserved"),
        (8, struct.pack("<H", 0), "positive integer"),
        (10, struct.pack("<H", 2), "truncated"),
        (12, struct.pack("<H", 1), "64-bit words"),
        (14, b"\x01", "reserved"),
        (16 + 7, b"\x01", "padding bits after the code"),
        (16 + 15, b"\xff", "padding bits after the mask"),
    ],
)
def test_damaged_iris_fields_are_named(offset: int, value: bytes, match: str) -> None:
    data = bytearray(blob.encode_iris(small_iris()))
    data[offset : offset + len(value)] = value
    with pytest.raises(InvalidTemplate, match=match):
        blob.decode_iris(bytes(data))


def test_iris_geometry_over_the_limit_is_refused() -> None:
    head = struct.pack("<4sBBcBHHHH", b"AMYI", 1, 1, b"L", 0, 1024, 256, 1, 0)
    with pytest.raises(InvalidTemplate, match="bit limit"):
        blob.decode_iris(head)
    big = IrisTemplate(
        code=np.zeros((1024, 256, 1), bool), mask=np.zeros((1024, 256, 1), bool), eye="L"
    )
    with pytest.raises(InvalidTemplate, match="bit limit"):
        blob.encode_iris(big)


@FAST
@given(iris_templates(), st.data())
def test_iris_flipped_bits_are_refused_or_canonical(t: IrisTemplate, data: st.DataObject) -> None:
    raw = bytearray(blob.encode_iris(t))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        back = blob.decode_iris(bytes(raw))
    except InvalidTemplate:
        return
    assert blob.encode_iris(back) == bytes(raw)


def test_bad_iris_templates_are_refused_on_encode() -> None:
    good = small_iris()
    with pytest.raises(InvalidTemplate, match="eye"):
        blob.encode_iris(IrisTemplate(good.code, good.mask, eye="X"))
    with pytest.raises(InvalidTemplate, match="format_version"):
        blob.encode_iris(IrisTemplate(good.code, good.mask, eye="L", format_version=2))
    with pytest.raises(InvalidTemplate, match="bool"):
        blob.encode_iris(IrisTemplate(good.code.astype(np.uint8), good.mask, eye="L"))
    with pytest.raises(InvalidTemplate, match="shape"):
        blob.encode_iris(IrisTemplate(good.code, good.mask[:2], eye="L"))
    with pytest.raises(InvalidTemplate, match="3-D"):
        blob.encode_iris(IrisTemplate(good.code[0], good.mask[0], eye="L"))
    with pytest.raises(InvalidTemplate, match="IrisTemplate"):
        blob.encode_iris(small_finger())  # type: ignore[arg-type]
    # The codec is structural: an all-masked code round-trips (quality gates live elsewhere).
    empty = IrisTemplate(good.code, np.zeros_like(good.mask), eye="L")
    assert same_iris(blob.decode_iris(blob.encode_iris(empty)), empty)
    assert IrisGeometry(*good.code.shape).n_bits == 63

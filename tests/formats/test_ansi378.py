"""matcher.formats.ansi378: ANSI INCITS 378-2004 records, short and long length forms.

Known-answer records are built here with ``struct`` from the standard's layout (see the module
docstring of matcher.formats.ansi378), independently of the encoder.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate
from matcher.formats import MAX_RECORD_BYTES, ansi378, iso19794_2
from matcher.templates import FingerTemplate

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANSI_UNIT = math.radians(2.0)
COMMON_DPI = [250, 300, 400, 500, 600, 1000, 1200, 2000]


def minutia(kind: int, x: int, y: int, angle: int, quality: int) -> bytes:
    return struct.pack(">HHBB", (kind << 14) | x, y, angle, quality)


def view(
    position: int, number: int, impression: int, minutiae: list[bytes], ext: bytes = b""
) -> bytes:
    head = bytes([position, (number << 4) | impression, 60, len(minutiae)])
    return head + b"".join(minutiae) + struct.pack(">H", len(ext)) + ext


def record(
    views: list[bytes],
    *,
    long_form: bool = False,
    width: int = 300,
    height: int = 400,
    res: int = 197,
) -> bytes:
    body = b"".join(views)
    # CBEFF owner and type, equipment, width, height, x and y resolution, views, reserved
    rest = struct.pack(">HHHHHHHBB", 0x0033, 0x0101, 0x0001, width, height, res, res, len(views), 0)
    if long_form:
        length = struct.pack(">HI", 0, 30 + len(body))
    else:
        length = struct.pack(">H", 26 + len(body))
    return b"FMR\x00" + b" 20\x00" + length + rest + body


def random_views(seed: int, n_views: int, max_minutiae: int = 255) -> list[FingerTemplate]:
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(1, 2500)), int(rng.integers(1, 2500))
    dpi = int(rng.choice(COMMON_DPI))
    views = []
    for _ in range(n_views):
        n = int(rng.integers(1, max_minutiae + 1))
        edge_x = np.nextafter(np.float32(width), np.float32(0))
        edge_y = np.nextafter(np.float32(height), np.float32(0))
        views.append(
            FingerTemplate(
                x=np.minimum(rng.uniform(0, width, n).astype(np.float32), edge_x),
                y=np.minimum(rng.uniform(0, height, n).astype(np.float32), edge_y),
                theta=rng.uniform(-7, 14, n),
                width=width,
                height=height,
                dpi=dpi,
                kind=rng.integers(0, 3, n),
                quality=rng.integers(0, 101, n),
                position=int(rng.integers(0, 11)),
                impression=int(rng.integers(0, 16)),
            )
        )
    return views


def quantised(t: FingerTemplate) -> FingerTemplate:
    """What an ANSI record keeps of ``t``: whole pixels inside the image, 2-degree angles."""
    codes = np.mod(np.rint(t.theta.astype(np.float64) * (180 / (2 * np.pi))), 180)
    return FingerTemplate(
        x=np.clip(np.rint(t.x.astype(np.float64)), 0, t.width - 1),
        y=np.clip(np.rint(t.y.astype(np.float64)), 0, t.height - 1),
        theta=(codes * (2 * np.pi / 180)).astype(np.float32),
        width=t.width,
        height=t.height,
        dpi=t.dpi,
        kind=t.kind,
        quality=t.quality,
        position=t.position,
        impression=t.impression,
    )


def decodes_or_refuses(data: bytes) -> None:
    try:
        views = ansi378.decode(data)
    except InvalidTemplate:
        return
    assert views and all(isinstance(v, FingerTemplate) and v.n >= 1 for v in views)


# --- known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("long_form", [False, True])
def test_known_answer(long_form: bool) -> None:
    data = record(
        [view(3, 0, 1, [minutia(1, 100, 200, 45, 70), minutia(2, 10, 20, 179, 0)])],
        long_form=long_form,
    )
    assert len(data) == (30 if long_form else 26) + 4 + 12 + 2
    (t,) = ansi378.decode(data)
    assert (t.width, t.height, t.dpi, t.position, t.impression) == (300, 400, 500, 3, 1)
    np.testing.assert_array_equal(t.x, [100, 10])
    np.testing.assert_array_equal(t.y, [200, 20])
    np.testing.assert_allclose(t.theta, [math.pi / 2, 179 * ANSI_UNIT], atol=1e-6)
    np.testing.assert_array_equal(t.kind, [1, 2])
    np.testing.assert_array_equal(t.quality, [70, 0])


def test_angle_unit_is_two_degrees() -> None:
    (t,) = ansi378.decode(
        record([view(0, 0, 0, [minutia(1, 5, 5, 45, 0), minutia(1, 5, 5, 1, 0)])])
    )
    np.testing.assert_allclose(t.directions()[0], (0.0, -1.0), atol=1e-6)  # 90 degrees: up
    assert math.degrees(float(t.theta[1])) == pytest.approx(2.0)
    # Pointing up is byte 45 in ANSI units (2 degrees), byte 64 in ISO units (1.40625 degrees).
    up = FingerTemplate(x=[5], y=[5], theta=[math.pi / 2], width=9, height=9)
    assert ansi378.encode([up])[-4] == 45  # the angle byte: 4th from the end, before q and ext
    assert iso19794_2.encode([up])[-4] == 64


def test_extended_data_is_skipped() -> None:
    ext = struct.pack(">HH", 0x0002, 4 + 5) + b"\x41\x00\x10\x00\x20"
    views = ansi378.decode(
        record(
            [
                view(1, 0, 0, [minutia(1, 1, 2, 3, 4)], ext=ext),
                view(1, 1, 0, [minutia(2, 5, 6, 7, 8)]),
            ]
        )
    )
    assert [v.n for v in views] == [1, 1]
    np.testing.assert_array_equal(views[1].x, [5])


# --- round trips ---------------------------------------------------------------------------


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_round_trip(seed: int, n_views: int) -> None:
    views = random_views(seed, n_views)
    data = ansi378.encode(views)
    assert data[:8] == b"FMR\x00 20\x00"
    assert struct.unpack(">H", data[8:10])[0] == len(data)  # short form below 64 KiB
    back = ansi378.decode(data)
    for got, want in zip(back, views, strict=True):
        assert got.equals(quantised(want))
    assert ansi378.encode(back) == data


def test_long_form_above_65535_bytes() -> None:
    views = random_views(11, 50, max_minutiae=255)
    views = [
        FingerTemplate(
            x=v.x,
            y=v.y,
            theta=v.theta,
            width=v.width,
            height=v.height,
            dpi=v.dpi,
            kind=v.kind,
            quality=v.quality,
            position=i % 11,
            impression=v.impression,
        )
        for i, v in enumerate(views)
        if v.n > 100
    ] * 3
    data = ansi378.encode(views)
    assert len(data) > 0xFFFF
    assert data[8:10] == b"\x00\x00"
    assert struct.unpack(">I", data[10:14])[0] == len(data)
    back = ansi378.decode(data)
    assert len(back) == len(views)
    for got, want in zip(back, views, strict=True):
        assert got.equals(quantised(want))
    assert ansi378.encode(back) == data


def test_255_minutiae() -> None:
    n = 255
    t = FingerTemplate(
        x=np.arange(n),
        y=np.arange(n),
        theta=np.arange(n) * ANSI_UNIT,
        width=300,
        height=300,
        kind=np.arange(n) % 3,
        quality=np.arange(n) % 101,
    )
    (back,) = ansi378.decode(ansi378.encode([t]))
    assert back.equals(t, atol=1e-5)


# --- refusals ------------------------------------------------------------------------------


def _ok() -> bytes:
    return record([view(2, 0, 0, [minutia(1, 100, 200, 45, 70), minutia(2, 1, 2, 3, 4)])])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"FMX\x00" + d[4:], "format identifier at byte 0"),
        (lambda d: d[:4] + b"030\x00" + d[8:], "version at byte 4"),
        (lambda d: d[:8] + struct.pack(">H", len(d) - 1) + d[10:], "record length at byte 8"),
        (lambda d: d + b"\0", "record length at byte 8: says 44 bytes but the data is 45"),
        (lambda d: d[:18] + b"\0\0" + d[20:], "image height at byte 18"),
        (lambda d: d[:20] + b"\0\0\0\0" + d[24:], "x resolution at byte 20: is 0"),
        (lambda d: d[:24] + b"\0" + d[25:], "number of finger views at byte 24: is 0"),
        (lambda d: d[:29] + b"\0" + d[30:], "view 0 minutia count at byte 29: is 0"),
        (lambda d: d[:30] + b"\xc0" + d[31:], "view 0 minutia 0 type at byte 30: type code 3"),
        (lambda d: d[:34] + b"\xb4" + d[35:], "view 0 minutia 0 angle at byte 34: code 180"),
        (lambda d: d[:38] + b"\x01\x90" + d[40:], "view 0 minutia 1 y at byte 38: 400"),
        (lambda d: d + bytes(6), "record at byte 44: the views end here"),
    ],
)
def test_malformed_records_are_refused_with_field_and_offset(mutate, message: str) -> None:
    data = _ok()
    assert len(data) == 26 + 4 + 12 + 2 == 44
    ansi378.decode(data)
    bad = mutate(data)
    if "record length" not in message:
        bad = bad[:8] + struct.pack(">H", len(bad)) + bad[10:]
    with pytest.raises(InvalidTemplate, match=message):
        ansi378.decode(bad)


def test_long_form_length_mismatch_names_its_offset() -> None:
    data = record([view(2, 0, 0, [minutia(1, 1, 1, 1, 1)])], long_form=True)
    bad = data[:10] + struct.pack(">I", len(data) + 9) + data[14:]
    with pytest.raises(InvalidTemplate, match="record length at byte 10"):
        ansi378.decode(bad)


def test_an_iso_2005_record_is_not_ansi() -> None:
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9)
    with pytest.raises(InvalidTemplate, match="record length .*decode_any tells them apart"):
        ansi378.decode(iso19794_2.encode([t]))
    with pytest.raises(InvalidTemplate, match="record length .*decode_any tells them apart"):
        iso19794_2.decode(ansi378.encode([t]))


def test_input_types_size_cap_and_encode_refusals() -> None:
    assert ansi378.decode(bytearray(_ok()))[0].n == 2
    with pytest.raises(InvalidTemplate, match="1 MiB"):
        ansi378.decode(bytes(MAX_RECORD_BYTES + 1))
    with pytest.raises(InvalidTemplate, match="expected bytes"):
        ansi378.decode(None)  # type: ignore[arg-type]
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9)
    with pytest.raises(InvalidTemplate, match="at least one finger view"):
        ansi378.encode([])
    with pytest.raises(InvalidTemplate, match="one image size and resolution"):
        ansi378.encode([t, FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9, dpi=1000)])
    with pytest.raises(InvalidTemplate, match="4-bit impression type"):
        ansi378.encode([FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9, impression=16)])


# --- fuzzing -------------------------------------------------------------------------------


def _fuzz_records() -> list[bytes]:
    ext = struct.pack(">HH", 0x0001, 4 + 4) + b"\x00\x00\x01\x02"
    return [
        ansi378.encode(random_views(5, 3, max_minutiae=6)),
        record(
            [
                view(1, 0, 0, [minutia(1, 1, 2, 3, 4)], ext=ext),
                view(4, 0, 2, [minutia(2, 5, 6, 7, 8)]),
            ],
            long_form=True,
        ),
    ]


@pytest.mark.parametrize("which", range(2))
def test_every_truncation_is_refused(which: int) -> None:
    data = _fuzz_records()[which]
    ansi378.decode(data)
    for cut in range(len(data)):
        with pytest.raises(InvalidTemplate):
            ansi378.decode(data[:cut])


@pytest.mark.parametrize("which", range(2))
def test_every_single_bit_flip_is_refused_or_decoded(which: int) -> None:
    data = _fuzz_records()[which]
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            decodes_or_refuses(bytes(flipped))


@FAST
@given(
    st.sampled_from([b"", b"FMR\x00 20\x00", b"FMR\x00 20\x00\x00\x00"]), st.binary(max_size=300)
)
def test_random_bytes_are_refused_or_decoded(prefix: bytes, tail: bytes) -> None:
    decodes_or_refuses(prefix + tail)

"""matcher.formats.iso19794_2: ISO/IEC 19794-2:2005 and :2011 records.

Known-answer records are built here with ``struct`` straight from the standard's layout (see the
module docstring of matcher.formats.iso19794_2), independently of the encoder.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate
from matcher.formats import MAX_RECORD_BYTES, ansi378, dpi_to_ppcm, iso19794_2, ppcm_to_dpi
from matcher.templates import FingerTemplate

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ISO_UNIT = 2 * math.pi / 256  # 1.40625 degrees
COMMON_DPI = [250, 300, 333, 400, 500, 600, 700, 750, 800, 1000, 1200, 1500, 2000]


# --- record builders (the standard's layout, written out by hand) ----------------------------


def minutia(kind: int, x: int, y: int, angle: int, quality: int | None = None) -> bytes:
    head = struct.pack(">HHB", (kind << 14) | x, y, angle)
    return head if quality is None else head + bytes([quality])


def view_2005(
    position: int, view: int, impression: int, minutiae: list[bytes], ext: bytes = b""
) -> bytes:
    head = bytes([position, (view << 4) | impression, 77, len(minutiae)])
    return head + b"".join(minutiae) + struct.pack(">H", len(ext)) + ext


def record_2005(
    views: list[bytes], width: int = 300, height: int = 400, xres: int = 197, yres: int = 197
) -> bytes:
    body = b"".join(views)
    header = struct.pack(
        ">4s4sIHHHHHBB",
        b"FMR\x00",
        b" 20\x00",
        24 + len(body),
        0x1234,
        width,
        height,
        xres,
        yres,
        len(views),
        0,
    )
    return header + body


def representation_2011(
    minutiae: list[bytes],
    *,
    position: int = 2,
    view: int = 0,
    res: int = 197,
    impression: int = 0,
    width: int = 300,
    height: int = 400,
    record_size: int = 6,
    quality_blocks: int = 0,
    cert_blocks: int | None = None,
    ext: bytes = b"",
) -> bytes:
    body = struct.pack(">HBBBBBH", 2024, 5, 17, 12, 30, 59, 999)  # capture date and time
    body += struct.pack(">BHH", 3, 0x00AB, 0x0CD)  # technology, vendor, type
    body += bytes([quality_blocks]) + b"\x50\x00\x01\x00\x02" * quality_blocks
    if cert_blocks is not None:
        body += bytes([cert_blocks]) + b"\x00\x01\x02" * cert_blocks
    body += struct.pack(
        ">BBHHBHHBB",
        position,
        view,
        res,
        res,
        impression,
        width,
        height,
        (record_size << 4) | 1,
        len(minutiae),
    )
    body += b"".join(minutiae) + struct.pack(">H", len(ext)) + ext
    return struct.pack(">I", 4 + len(body)) + body


def record_2011(reps: list[bytes], certified: int = 0) -> bytes:
    body = b"".join(reps)
    return (
        struct.pack(">4s4sIHB", b"FMR\x00", b"030\x00", 15 + len(body), len(reps), certified) + body
    )


# --- random templates and the precision the format keeps -----------------------------------


def random_views(
    seed: int, n_views: int, *, shared: bool, max_minutiae: int = 255, max_impression: int = 15
) -> list[FingerTemplate]:
    rng = np.random.default_rng(seed)

    def geometry() -> tuple[int, int, int]:
        return int(rng.integers(1, 2500)), int(rng.integers(1, 2500)), int(rng.choice(COMMON_DPI))

    width, height, dpi = geometry()
    views = []
    for _ in range(n_views):
        if not shared:
            width, height, dpi = geometry()
        n = int(rng.integers(1, max_minutiae + 1))
        x = rng.uniform(0, width, n).astype(np.float32)
        y = rng.uniform(0, height, n).astype(np.float32)
        x[0], y[-1] = 0.0, np.nextafter(np.float32(height), np.float32(0))  # both edges
        quality = rng.integers(0, 101, n) if rng.random() < 0.7 else np.zeros(n, int)
        views.append(
            FingerTemplate(
                x=np.minimum(x, np.nextafter(np.float32(width), np.float32(0))),
                y=np.minimum(y, np.nextafter(np.float32(height), np.float32(0))),
                theta=rng.uniform(-7, 14, n),
                width=width,
                height=height,
                dpi=dpi,
                kind=rng.integers(0, 3, n),
                quality=quality,
                position=int(rng.integers(0, 11)),
                impression=int(rng.integers(0, max_impression + 1)),
            )
        )
    return views


def quantised(t: FingerTemplate, units_per_turn: int) -> FingerTemplate:
    """What a record keeps of ``t``: whole pixels inside the image, angles to the unit."""
    codes = np.mod(np.rint(t.theta.astype(np.float64) * (units_per_turn / (2 * np.pi))), 256)
    return FingerTemplate(
        x=np.clip(np.rint(t.x.astype(np.float64)), 0, t.width - 1),
        y=np.clip(np.rint(t.y.astype(np.float64)), 0, t.height - 1),
        theta=(codes * (2 * np.pi / units_per_turn)).astype(np.float32),
        width=t.width,
        height=t.height,
        dpi=t.dpi,
        kind=t.kind,
        quality=t.quality,
        position=t.position,
        impression=t.impression,
    )


def decodes_or_refuses(data: bytes) -> None:
    """The fuzzing contract: a list of valid templates, or InvalidTemplate; nothing else."""
    try:
        views = iso19794_2.decode(data)
    except InvalidTemplate:
        return
    assert views and all(isinstance(v, FingerTemplate) and v.n >= 1 for v in views)


# --- known answers -------------------------------------------------------------------------


def test_known_answer_2005() -> None:
    data = record_2005(
        [
            view_2005(
                2,
                0,
                1,
                [
                    minutia(1, 100, 200, 64, 70),
                    minutia(2, 10, 20, 0, 0),
                    minutia(0, 299, 399, 255, 100),
                ],
            )
        ]
    )
    assert len(data) == 24 + 4 + 18 + 2
    (t,) = iso19794_2.decode(data)
    assert (t.width, t.height, t.dpi, t.position, t.impression) == (300, 400, 500, 2, 1)
    np.testing.assert_array_equal(t.x, [100, 10, 299])
    np.testing.assert_array_equal(t.y, [200, 20, 399])
    np.testing.assert_allclose(t.theta, [math.pi / 2, 0.0, 255 * ISO_UNIT], atol=1e-6)
    np.testing.assert_array_equal(t.kind, [1, 2, 0])
    np.testing.assert_array_equal(t.quality, [70, 0, 100])


def test_angle_byte_64_points_up_the_displayed_image() -> None:
    (t,) = iso19794_2.decode(record_2005([view_2005(0, 0, 0, [minutia(1, 5, 5, 64, 0)])]))
    np.testing.assert_allclose(t.directions()[0], (0.0, -1.0), atol=1e-6)  # y down: up is -y
    (t,) = iso19794_2.decode(record_2005([view_2005(0, 0, 0, [minutia(1, 5, 5, 32, 0)])]))
    assert math.degrees(float(t.theta[0])) == pytest.approx(45.0)  # 32 * 1.40625


def test_known_answer_2005_multi_view_with_extended_data() -> None:
    ridge_counts = struct.pack(">HHB", 0x0001, 4 + 1 + 3, 1) + bytes([0, 1, 7])
    core = struct.pack(">HH", 0x0002, 4 + 2) + b"\x41\x00"
    vendor = struct.pack(">HH", 0x0103, 4 + 3) + b"abc"
    data = record_2005(
        [
            view_2005(1, 0, 0, [minutia(1, 1, 2, 3, 4)], ext=ridge_counts + core),
            view_2005(1, 1, 0, [minutia(2, 5, 6, 7, 8), minutia(1, 9, 10, 11, 12)], ext=vendor),
            view_2005(6, 0, 3, [minutia(0, 13, 14, 15, 16)]),
        ]
    )
    views = iso19794_2.decode(data)
    assert [v.n for v in views] == [1, 2, 1]
    assert [v.position for v in views] == [1, 1, 6]
    assert [v.impression for v in views] == [0, 0, 3]
    np.testing.assert_array_equal(views[1].x, [5, 9])
    np.testing.assert_array_equal(views[2].quality, [16])


def test_known_answer_2011_six_byte_minutiae() -> None:
    rep = representation_2011(
        [minutia(1, 100, 200, 64, 70), minutia(2, 10, 20, 128, 254), minutia(0, 1, 2, 192, 255)],
        position=7,
        impression=24,  # live-scan contactless, a 2011 code beyond 4 bits
        res=394,
    )
    (t,) = iso19794_2.decode(record_2011([rep]))
    assert (t.width, t.height, t.dpi, t.position, t.impression) == (300, 400, 1000, 7, 24)
    np.testing.assert_array_equal(t.x, [100, 10, 1])
    np.testing.assert_array_equal(t.y, [200, 20, 2])
    np.testing.assert_allclose(t.theta, [math.pi / 2, math.pi, 3 * math.pi / 2], atol=1e-6)
    np.testing.assert_array_equal(t.kind, [1, 2, 0])
    np.testing.assert_array_equal(t.quality, [70, 0, 0])  # 254 not reported, 255 failed -> 0


def test_known_answer_2011_five_byte_minutiae_and_optional_blocks() -> None:
    first = representation_2011(
        [minutia(1, 3, 4, 5), minutia(2, 6, 7, 8)],
        record_size=5,
        quality_blocks=2,
        cert_blocks=1,
        ext=struct.pack(">HH", 0x0001, 5) + b"\x00",
    )
    second = representation_2011(
        [minutia(1, 30, 40, 50, 60)],
        position=3,
        view=0,
        width=640,
        height=480,
        res=236,
        cert_blocks=0,
    )
    views = iso19794_2.decode(record_2011([first, second], certified=1))
    assert [v.n for v in views] == [2, 1]
    np.testing.assert_array_equal(views[0].quality, [0, 0])
    np.testing.assert_array_equal(views[0].x, [3, 6])
    assert (views[1].width, views[1].height, views[1].dpi) == (640, 480, 600)
    np.testing.assert_array_equal(views[1].quality, [60])


# --- resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dpi", "ppcm"), [(250, 98), (300, 118), (500, 197), (1000, 394), (1200, 472), (2000, 787)]
)
def test_resolution_in_pixels_per_centimetre(dpi: int, ppcm: int) -> None:
    assert dpi_to_ppcm(dpi) == ppcm
    assert ppcm_to_dpi(ppcm) == dpi
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=10, height=10, dpi=dpi)
    for version in ("2005", "2011"):
        data = iso19794_2.encode([t], version)
        assert struct.pack(">HH", ppcm, ppcm) in data
        assert iso19794_2.decode(data)[0].dpi == dpi


@given(st.integers(1, 8000))
@FAST
def test_every_stored_resolution_survives(ppcm: int) -> None:
    assert dpi_to_ppcm(ppcm_to_dpi(ppcm)) == ppcm


# --- round trips ---------------------------------------------------------------------------


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_round_trip_2005(seed: int, n_views: int) -> None:
    views = random_views(seed, n_views, shared=True)
    data = iso19794_2.encode(views)
    assert data[:8] == b"FMR\x00 20\x00"
    assert struct.unpack(">I", data[8:12])[0] == len(data)
    back = iso19794_2.decode(data)
    assert len(back) == len(views)
    for got, want in zip(back, views, strict=True):
        assert got.equals(quantised(want, 256))
    assert iso19794_2.encode(back) == data


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_round_trip_2011(seed: int, n_views: int) -> None:
    views = random_views(seed, n_views, shared=False, max_impression=255)
    data = iso19794_2.encode(views, version="2011")
    assert data[:8] == b"FMR\x00030\x00"
    back = iso19794_2.decode(data)
    for got, want in zip(back, views, strict=True):
        assert got.equals(quantised(want, 256))
    assert iso19794_2.encode(back, version="2011") == data


def test_2011_quality_field_is_optional() -> None:
    unreported = FingerTemplate(x=[1, 2], y=[1, 2], theta=[0, 0], width=9, height=9)
    data = iso19794_2.encode([unreported], "2011")
    assert len(data) == 15 + 4 + 9 + 5 + 1 + 13 + 2 * 5 + 2
    assert data[-14] >> 4 == 5  # minutia record length nibble, just before the count byte
    partly = FingerTemplate(x=[1, 2], y=[1, 2], theta=[0, 0], width=9, height=9, quality=[0, 40])
    data = iso19794_2.encode([partly], "2011")
    assert data[-16] >> 4 == 6
    assert data[-9] == 254 and data[-3] == 40  # 0 is written as 254, "not reported"
    np.testing.assert_array_equal(iso19794_2.decode(data)[0].quality, [0, 40])


def test_view_numbers_count_up_per_finger() -> None:
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9, position=2, impression=1)
    u = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9, position=3)
    data = iso19794_2.encode([t, u, t, t])
    view_bytes = [data[24 + i * 12 + 1] for i in range(4)]  # each view: 4 + 6 + 2 bytes
    assert view_bytes == [0x01, 0x00, 0x11, 0x21]


def test_255_minutiae_round_trip() -> None:
    n = 255
    t = FingerTemplate(
        x=np.arange(n),
        y=np.arange(n),
        theta=np.arange(n) * ISO_UNIT,
        width=300,
        height=300,
        kind=np.arange(n) % 3,
        quality=np.arange(n) % 101,
    )
    for version in ("2005", "2011"):
        (back,) = iso19794_2.decode(iso19794_2.encode([t], version))
        assert back.equals(t, atol=1e-5)


# --- refusals ------------------------------------------------------------------------------


def _ok_2005() -> bytes:
    return record_2005([view_2005(2, 0, 0, [minutia(1, 100, 200, 64, 70), minutia(2, 1, 2, 3, 4)])])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"FMX\0" + d[4:], "format identifier at byte 0"),
        (lambda d: d[:4] + b" 21\0" + d[8:], "version at byte 4"),
        (lambda d: d[:8] + struct.pack(">I", len(d) + 1) + d[12:], "record length at byte 8"),
        (lambda d: d + b"\0", "record length at byte 8: says 42 bytes but the data is 43"),
        (lambda d: d[:14] + b"\0\0" + d[16:], "image width at byte 14"),
        (lambda d: d[:16] + b"\x40\x00" + d[18:], "image height at byte 16"),
        (lambda d: d[:18] + b"\0\0\0\0" + d[22:], "x resolution at byte 18: is 0"),
        (lambda d: d[:20] + b"\0\x76" + d[22:], "non-square pixels"),
        (lambda d: d[:22] + b"\0" + d[23:], "number of finger views at byte 22: is 0"),
        (lambda d: d[:24] + b"\x0b" + d[25:], "view 0 finger position at byte 24: code 11"),
        (lambda d: d[:27] + b"\0" + d[28:], "view 0 minutia count at byte 27: is 0"),
        (lambda d: d[:27] + b"\x03" + d[28:], "view 0 minutia count at byte 27"),
        (lambda d: d + bytes(6), "record at byte 42: the views end here"),
        (lambda d: d[:28] + b"\xc0" + d[29:], "view 0 minutia 0 type at byte 28: type code 3"),
        (lambda d: d[:34] + b"\x41\x2c" + d[36:], r"view 0 minutia 1 x at byte 34: 300 is outside"),
        (lambda d: d[:36] + b"\x01\x90" + d[38:], "view 0 minutia 1 y at byte 36: 400 is outside"),
        (lambda d: d[:39] + b"\x65" + d[40:], "view 0 minutia 1 quality at byte 39: 101"),
        (lambda d: d[:40] + b"\x00\x05" + d[42:], "view 0 extended data"),
        (lambda d: d[:30], "record length at byte 8"),
    ],
)
def test_malformed_2005_records_are_refused_with_field_and_offset(mutate, message: str) -> None:
    data = _ok_2005()
    assert len(data) == 24 + 4 + 2 * 6 + 2 == 42
    iso19794_2.decode(data)  # the unmutated record is fine
    bad = mutate(data)
    # Keep the length field honest unless the case is about it, so deeper checks are reached.
    if "record length" not in message:
        bad = bad[:8] + struct.pack(">I", len(bad)) + bad[12:]
    with pytest.raises(InvalidTemplate, match=message):
        iso19794_2.decode(bad)


def test_malformed_2011_records() -> None:
    good = [minutia(1, 10, 20, 30, 40)]
    with pytest.raises(InvalidTemplate, match="representation 0 minutia record length"):
        iso19794_2.decode(record_2011([representation_2011(good, record_size=7)]))
    with pytest.raises(InvalidTemplate, match="device certification block flag at byte 14"):
        iso19794_2.decode(record_2011([representation_2011(good)], certified=2))
    with pytest.raises(InvalidTemplate, match="number of finger representations at byte 12"):
        iso19794_2.decode(record_2011([]))
    with pytest.raises(InvalidTemplate, match="representation 0 minutia count .* is 0"):
        iso19794_2.decode(record_2011([representation_2011([])]))
    with pytest.raises(InvalidTemplate, match="minutia 0 quality .* 253 is not 0..100, 254"):
        iso19794_2.decode(record_2011([representation_2011([minutia(1, 1, 1, 1, 253)])]))
    rep = representation_2011(good)
    longer = struct.pack(">I", len(rep) + 2) + rep[4:] + b"\0\0"  # length covers 2 stray bytes
    with pytest.raises(InvalidTemplate, match="representation 0 length at byte 15: says"):
        iso19794_2.decode(record_2011([longer]))
    with pytest.raises(InvalidTemplate, match="representation 0 length at byte 15"):
        iso19794_2.decode(record_2011([struct.pack(">I", 9999) + rep[4:]]))


def test_more_than_255_minutiae_cannot_be_encoded_or_decoded() -> None:
    with pytest.raises(InvalidTemplate, match="256 minutiae"):
        FingerTemplate(x=np.zeros(256), y=np.zeros(256), theta=np.zeros(256), width=1, height=1)
    # The count is one byte: a 256th record after a count of 255 is left over, and refused.
    many = [minutia(1, 1, 1, 1, 1)] * 256
    data = record_2005([view_2005(0, 0, 0, many[:255])])
    data = data[:-2] + many[255] + b"\0\0"
    data = data[:8] + struct.pack(">I", len(data)) + data[12:]
    with pytest.raises(InvalidTemplate, match="view 0 extended data"):
        iso19794_2.decode(data)  # its first two bytes are read as the extended data length


def test_input_types_and_size_cap() -> None:
    data = _ok_2005()
    assert iso19794_2.decode(bytearray(data))[0].n == 2
    assert iso19794_2.decode(memoryview(data))[0].n == 2
    with pytest.raises(InvalidTemplate, match="expected bytes, got str"):
        iso19794_2.decode(data.decode("latin-1"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate, match="1 MiB"):
        iso19794_2.decode(b"FMR\x00 20\x00" + bytes(MAX_RECORD_BYTES))
    for short in (b"", b"FM", b"FMR\x00", b"FMR\0 20"):
        with pytest.raises(InvalidTemplate, match="truncated"):
            iso19794_2.decode(short)


def test_encode_refusals() -> None:
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9)
    with pytest.raises(InvalidTemplate, match="at least one finger view"):
        iso19794_2.encode([])
    with pytest.raises(InvalidTemplate, match="not a single one"):
        iso19794_2.encode(t)  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate, match=r"views\[1\] is a str"):
        iso19794_2.encode([t, "t"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="version"):
        iso19794_2.encode([t], version="2009")
    other = FingerTemplate(x=[1], y=[1], theta=[0], width=10, height=9)
    with pytest.raises(InvalidTemplate, match="one image size and resolution for all views"):
        iso19794_2.encode([t, other])
    iso19794_2.encode([t, other], version="2011")  # 2011 stores the size per view
    wide = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9, impression=24)
    with pytest.raises(InvalidTemplate, match="4-bit impression type"):
        iso19794_2.encode([wide])
    with pytest.raises(InvalidTemplate, match="17th view of finger position 0"):
        iso19794_2.encode([t] * 17)


# --- fuzzing: only InvalidTemplate may escape ----------------------------------------------


def _fuzz_records() -> list[bytes]:
    return [
        iso19794_2.encode(random_views(7, 3, shared=True, max_minutiae=6)),
        record_2005(
            [
                view_2005(1, 0, 0, [minutia(1, 1, 2, 3, 4)], ext=struct.pack(">HH", 1, 5) + b"x"),
                view_2005(2, 0, 0, [minutia(2, 5, 6, 7, 8)]),
            ]
        ),
        iso19794_2.encode(random_views(8, 2, shared=False, max_minutiae=5), version="2011"),
        record_2011(
            [
                representation_2011(
                    [minutia(1, 3, 4, 5)],
                    record_size=5,
                    quality_blocks=1,
                    cert_blocks=1,
                    ext=b"\x00\x01\x00\x05z",
                ),
                representation_2011([minutia(2, 3, 4, 5, 6)], cert_blocks=0),
            ],
            certified=1,
        ),
    ]


@pytest.mark.parametrize("record", range(4))
def test_every_truncation_is_refused(record: int) -> None:
    data = _fuzz_records()[record]
    iso19794_2.decode(data)
    for cut in range(len(data)):
        with pytest.raises(InvalidTemplate):
            iso19794_2.decode(data[:cut])


@pytest.mark.parametrize("record", range(4))
def test_every_single_bit_flip_is_refused_or_decoded(record: int) -> None:
    data = _fuzz_records()[record]
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            decodes_or_refuses(bytes(flipped))


@FAST
@given(
    st.sampled_from([b"", b"FMR\x00 20\x00", b"FMR\x00030\x00"]),
    st.binary(max_size=300),
)
def test_random_bytes_are_refused_or_decoded(prefix: bytes, tail: bytes) -> None:
    decodes_or_refuses(prefix + tail)


@FAST
@given(st.integers(0, 3), st.data())
def test_random_overwrites_are_refused_or_decoded(record: int, data: st.DataObject) -> None:
    raw = bytearray(_fuzz_records()[record])
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    decodes_or_refuses(bytes(raw))


def test_the_ansi_hint_appears_only_for_records_that_read_as_ansi() -> None:
    with pytest.raises(InvalidTemplate) as plain:
        iso19794_2.decode(_ok_2005()[:-1])
    assert "ANSI" not in str(plain.value)
    t = FingerTemplate(x=[1], y=[1], theta=[0], width=9, height=9)
    with pytest.raises(InvalidTemplate, match="reads as an ANSI INCITS 378-2004 record"):
        iso19794_2.decode(ansi378.encode([t]))

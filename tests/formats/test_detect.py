"""matcher.formats.detect: ISO 2005 vs ISO 2011 vs ANSI 378-2004, and decode_any."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate
from matcher.formats import ansi378, iso19794_2
from matcher.formats.detect import ANSI_378, ISO_2005, ISO_2011, decode_any, detect_format
from matcher.templates import FingerTemplate

FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ENCODERS = {
    ISO_2005: lambda views: iso19794_2.encode(views, "2005"),
    ISO_2011: lambda views: iso19794_2.encode(views, "2011"),
    ANSI_378: ansi378.encode,
}
DECODERS = {ISO_2005: iso19794_2.decode, ISO_2011: iso19794_2.decode, ANSI_378: ansi378.decode}


def _views(
    seed: int, n_views: int, max_minutiae: int = 255, min_minutiae: int = 1
) -> list[FingerTemplate]:
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
    views = []
    for i in range(n_views):
        n = int(rng.integers(min_minutiae, max_minutiae + 1))
        views.append(
            FingerTemplate(
                x=rng.integers(0, width, n),
                y=rng.integers(0, height, n),
                theta=np.radians(90.0 * rng.integers(0, 4, n)),  # exact in ISO and ANSI units
                width=width,
                height=height,
                kind=rng.integers(0, 3, n),
                quality=rng.integers(0, 101, n),
                position=i % 11,
                impression=int(rng.integers(0, 4)),
            )
        )
    return views


def _same(a: list[FingerTemplate], b: list[FingerTemplate]) -> bool:
    return len(a) == len(b) and all(x.equals(y, atol=1e-5) for x, y in zip(a, b, strict=True))


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 5), st.sampled_from(sorted(ENCODERS)))
def test_each_format_is_recognised_and_decoded(seed: int, n_views: int, fmt: str) -> None:
    views = _views(seed, n_views)
    data = ENCODERS[fmt](views)
    assert detect_format(data) == fmt
    assert _same(decode_any(data), views)
    assert _same(decode_any(data), DECODERS[fmt](data))


def test_iso_2005_and_ansi_share_magic_and_version() -> None:
    views = _views(1, 2, max_minutiae=5)
    iso, ansi = iso19794_2.encode(views), ansi378.encode(views)
    assert iso[:8] == ansi[:8] == b"FMR\x00 20\x00"
    assert iso[8:12] == struct.pack(">I", len(iso))  # 4-byte length
    assert ansi[8:10] == struct.pack(">H", len(ansi))  # 2-byte length
    assert (detect_format(iso), detect_format(ansi)) == (ISO_2005, ANSI_378)
    assert _same(decode_any(iso), decode_any(ansi))


def test_large_records_use_the_other_length_layouts() -> None:
    views = _views(3, 60, min_minutiae=200)
    iso = iso19794_2.encode(views)
    ansi = ansi378.encode(views)
    assert len(iso) > 0xFFFF and iso[8:10] != b"\x00\x00"  # high half of a 4-byte ISO length
    assert ansi[8:10] == b"\x00\x00"  # ANSI long form: 0x0000 then a 4-byte length
    assert (detect_format(iso), detect_format(ansi)) == (ISO_2005, ANSI_378)
    assert _same(decode_any(iso), views) and _same(decode_any(ansi), views)


@pytest.mark.parametrize("fmt", [ISO_2005, ANSI_378])
@pytest.mark.parametrize("size", ["small", "large"])
def test_damaged_length_still_goes_to_the_right_decoder(fmt: str, size: str) -> None:
    if size == "small":
        views = _views(4, 2, max_minutiae=4)
    else:
        views = _views(3, 60, min_minutiae=200)
    data = ENCODERS[fmt](views)
    for damaged in (data[:-1], data + b"\0\0"):
        assert detect_format(damaged) == fmt
        with pytest.raises(InvalidTemplate, match=f"{fmt}: .*record length"):
            decode_any(damaged)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "format identifier at byte 0: truncated"),
        (b"FMR", "format identifier at byte 0: truncated"),
        (b"FMR\x00 20", "version at byte 4: truncated"),
        (b"ABC\x00 20\x00" + bytes(30), "not a minutiae record"),
        (b"FIR\x00020\x00" + bytes(30), "not a minutiae record"),  # a finger image record
        (b"FMR\x00 21\x00" + bytes(30), r"version at byte 4: b' 21\\x00' is not"),
        (b"FMR\x00 20\x00", "record length at byte 8: truncated"),
        (b"FMR\x00030\x00\x00\x00", "record length at byte 8: truncated"),
        (bytes(2 << 20), "1 MiB"),
    ],
)
def test_unknown_or_short_input_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidTemplate, match=message):
        decode_any(data)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(InvalidTemplate, match="expected bytes"):
        decode_any("FMR")  # type: ignore[arg-type]


@FAST
@given(
    st.sampled_from([b"", b"FMR\x00 20\x00", b"FMR\x00030\x00", b"FMR\x00 20\x00\x00\x00"]),
    st.binary(max_size=200),
)
def test_random_bytes_are_refused_or_decoded(prefix: bytes, tail: bytes) -> None:
    data = prefix + tail
    try:
        views = decode_any(data)
    except InvalidTemplate:
        return
    assert views and all(isinstance(v, FingerTemplate) for v in views)


@FAST
@given(st.integers(0, 2**32 - 1), st.sampled_from(sorted(ENCODERS)), st.data())
def test_header_bit_flips_are_refused_or_decoded(seed: int, fmt: str, data: st.DataObject) -> None:
    raw = bytearray(ENCODERS[fmt](_views(seed, 2, max_minutiae=3)))
    header = 30 if fmt == ANSI_378 else 24
    i = data.draw(st.integers(0, header - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        views = decode_any(bytes(raw))
    except InvalidTemplate:
        return
    assert views and all(isinstance(v, FingerTemplate) for v in views)

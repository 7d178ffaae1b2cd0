"""Image decoding: every accepted format round-trips; bad bytes get InvalidImage, nothing else."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from matcher.errors import InvalidImage
from matcher.extract.image import (
    FORMATS,
    MAX_SIDE_PX,
    as_grey,
    decode_image,
    load_image,
    sniff_format,
)

_RNG = np.random.default_rng(7)
# A smooth ramp plus texture: lossy codecs keep it close, so "decodes to the same picture" is
# a meaningful check for JPEG / JPEG 2000 / WSQ too.
_YY, _XX = np.mgrid[0:90, 0:70]
PICTURE = (
    (_XX * 2 + _YY + 40 * np.sin(_XX / 3.0) * np.cos(_YY / 4.0) + 60).clip(0, 255).astype(np.uint8)
)


def _encode(fmt: str, img: np.ndarray) -> bytes:
    if fmt == "wsq":
        import wsq  # noqa: F401

        bio = io.BytesIO()
        Image.fromarray(img).save(bio, "WSQ")
        return bio.getvalue()
    if fmt == "j2k":  # a bare codestream, no JP2 boxes (OpenCV writes only JP2)
        bio = io.BytesIO()
        Image.fromarray(img).save(bio, "JPEG2000", no_jp2=True)
        return bio.getvalue()
    else:
        ext = {"png": ".png", "bmp": ".bmp", "tiff": ".tif", "jpeg": ".jpg", "jp2": ".jp2"}[fmt]
        ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


# Lossless formats decode to the very same pixels; lossy ones to within a codec's error.
# WSQ is built for ridge images at 0.75 bit/pixel: on this small ramp its border effects dominate
# (on an FVC2002 finger the mean error is about 4).
_TOLERANCE = {"png": 0, "bmp": 0, "tiff": 0, "jpeg": 4, "jp2": 12, "j2k": 12, "wsq": 16}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_the_picture(fmt: str) -> None:
    data = _encode(fmt, PICTURE)
    assert sniff_format(data) == fmt
    out = decode_image(data)
    assert out.format == fmt
    assert out.pixels.dtype == np.uint8 and out.pixels.shape == PICTURE.shape
    assert out.pixels.flags.c_contiguous
    err = np.abs(out.pixels.astype(int) - PICTURE.astype(int)).mean()
    assert err <= _TOLERANCE[fmt]


def test_colour_becomes_luma() -> None:
    bgr = np.dstack([PICTURE, PICTURE // 2, 255 - PICTURE])
    out = decode_image(_encode("png", bgr)).pixels
    expect = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(out, expect)


def test_declared_dpi_is_reported_and_meaningless_dpi_dropped() -> None:
    bio = io.BytesIO()
    Image.fromarray(PICTURE).save(bio, "PNG", dpi=(500, 500))
    assert decode_image(bio.getvalue()).dpi == 500
    bio = io.BytesIO()
    Image.fromarray(PICTURE).save(bio, "TIFF", dpi=(1, 1))  # what FVC2002's TIFFs carry
    assert decode_image(bio.getvalue()).dpi is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "corrupt"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "corrupt"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes, words: str) -> None:
    with pytest.raises(InvalidImage, match=words):
        decode_image(data)


def test_sizes_are_checked_before_decoding() -> None:
    # A 20,000 x 20,000 PNG of zeros compresses to ~400 kB; it is refused from its header.
    tall = _encode("png", np.zeros((MAX_SIDE_PX + 1, 20), np.uint8))
    with pytest.raises(InvalidImage, match="each side must be"):
        decode_image(tall)
    with pytest.raises(InvalidImage, match="each side must be"):
        decode_image(_encode("png", np.zeros((1, 1), np.uint8)))
    with pytest.raises(InvalidImage, match="each side must be"):
        as_grey(np.zeros((1, 1), np.uint8))


def test_sixteen_bit_images_are_refused() -> None:
    deep = PICTURE.astype(np.uint16) * 257
    for ext in (".png", ".tif"):
        ok, buf = cv2.imencode(ext, deep)
        assert ok
        with pytest.raises(InvalidImage, match="8-bit|I;16"):
            decode_image(buf.tobytes())
    with pytest.raises(InvalidImage, match="8-bit"):
        as_grey(deep)


def test_load_image_names_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "capture.bin"  # the extension is not consulted
    p.write_bytes(_encode("bmp", PICTURE))
    assert np.array_equal(load_image(p).pixels, PICTURE)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(InvalidImage, match="bad.png"):
        load_image(bad)
    with pytest.raises(InvalidImage, match="cannot read"):
        load_image(tmp_path / "missing.png")


_SAMPLES = {fmt: _encode(fmt, PICTURE) for fmt in FORMATS}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(FORMATS),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
def test_damaged_images_decode_or_are_refused_never_crash(
    fmt: str, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(_SAMPLES[fmt][: max(1, int(len(_SAMPLES[fmt]) * cut))])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    try:
        out = decode_image(bytes(data))
    except InvalidImage:
        return
    # Damage a decoder tolerates still yields a well-formed image within the limits.
    assert out.pixels.dtype == np.uint8 and out.pixels.ndim == 2
    assert 16 <= min(out.pixels.shape) and max(out.pixels.shape) <= MAX_SIDE_PX


def test_a_crashing_or_hanging_wsq_decoder_refuses_the_image(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The native WSQ codec runs in a child process: a child that dies of SIGSEGV (as the codec
    does on some damaged files) or overruns its time refuses the image; the caller lives on."""
    import sys

    import matcher.extract.image as image

    crasher = tmp_path / "crasher"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crasher))
    with pytest.raises(InvalidImage, match="WSQ decoder failed"):
        decode_image(_SAMPLES["wsq"])
    monkeypatch.undo()
    monkeypatch.setattr(image, "WSQ_TIMEOUT_S", 0.001)
    with pytest.raises(InvalidImage, match="did not finish"):
        decode_image(_SAMPLES["wsq"])
    monkeypatch.undo()
    assert decode_image(_SAMPLES["wsq"]).pixels.shape == PICTURE.shape

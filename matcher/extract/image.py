"""Captured image bytes to an 8-bit grey pixel array, with the size checked before decoding.

Capture stations send PNG, BMP, TIFF, JPEG, JPEG 2000 (JP2 box or raw codestream) and WSQ
(the FBI's fingerprint compression, IAFIS-IC-0110). The format is told from the leading bytes,
never from a file name. Steps:

1. Recognise the format from its signature; anything else is refused.
2. Read only the header (Pillow opens lazily) and refuse images outside
   ``MIN_SIDE_PX..MAX_SIDE_PX`` before any pixel is decoded, so a 20,000 x 20,000 image or a
   decompression bomb costs microseconds, not gigabytes.
3. Decode: WSQ with the PyPI ``wsq`` Pillow plugin, everything else with OpenCV.
4. Colour becomes grey (ITU-R BT.601 luma, OpenCV's conversion); alpha is dropped. Images deeper
   than 8 bits are refused rather than guessed at: a 16-bit capture's useful range differs per
   sensor, and a silent rescale would change every template made from it.

Every failure raises :class:`~matcher.errors.InvalidImage` with the reason. Thread-safe.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidImage

MIN_SIDE_PX: Final = 16
MAX_SIDE_PX: Final = 4096
MAX_BYTES: Final = 64 * 1024 * 1024

GreyImage = npt.NDArray[np.uint8]  # (H, W), C-contiguous

_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\xff\x4f\xff\x51", "j2k"),
    (b"\xff\xa0", "wsq"),
)
FORMATS: Final = tuple(sorted({name for _, name in _SIGNATURES}))


@dataclass(frozen=True)
class DecodedImage:
    """Pixels plus what the file said about itself.

    ``pixels``: uint8 ``(H, W)``. ``format``: one of :data:`FORMATS`. ``dpi``: the resolution
    the file declares, or ``None`` when it declares none or a meaningless one (below 50).
    Callers decide whether to trust it: many sensors write a wrong resolution tag.
    """

    pixels: GreyImage
    format: str
    dpi: int | None


def sniff_format(data: bytes) -> str | None:
    """The format name of ``data`` from its signature, or ``None`` if unrecognised."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def decode_image(data: bytes | bytearray | memoryview) -> DecodedImage:
    """Decode one image; see the module docstring for the accepted formats and limits."""
    buf = bytes(data)
    if not buf:
        raise InvalidImage("image is empty (0 bytes)")
    if len(buf) > MAX_BYTES:
        raise InvalidImage(f"image is {len(buf)} bytes; the limit is {MAX_BYTES}")
    fmt = sniff_format(buf)
    if fmt is None:
        raise InvalidImage(
            "not an image in an accepted format (PNG, BMP, TIFF, JPEG, JPEG 2000, WSQ); "
            f"first bytes {buf[:8].hex()}"
        )
    width, height, dpi = _header(buf, fmt)
    _check_side(width, height)
    pixels = _decode_wsq(buf) if fmt == "wsq" else _decode_cv(buf, fmt)
    if pixels.shape != (height, width):
        raise InvalidImage(
            f"{fmt} header says {width}x{height} but the pixels decode as "
            f"{pixels.shape[1]}x{pixels.shape[0]}"
        )
    return DecodedImage(np.ascontiguousarray(pixels), fmt, dpi)


def load_image(path: str | os.PathLike[str]) -> DecodedImage:
    """:func:`decode_image` of a file's bytes (the name's extension is not consulted)."""
    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
        if size > MAX_BYTES:
            raise InvalidImage(f"{p} is {size} bytes; the limit is {MAX_BYTES}")
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InvalidImage(f"cannot read {p}: {e.strerror or e}") from e
    try:
        return decode_image(data)
    except InvalidImage as e:
        raise InvalidImage(f"{p}: {e}") from e


def as_grey(pixels: npt.NDArray[np.generic]) -> GreyImage:
    """An already decoded array (grey, BGR or BGRA, uint8) as C-contiguous grey ``(H, W)``."""
    import cv2

    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise InvalidImage(f"need 8-bit pixels, got {a.dtype}; convert the capture to 8 bits")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2GRAY if a.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    elif a.ndim != 2:
        raise InvalidImage(f"need a grey or colour image, got an array of shape {a.shape}")
    _check_side(a.shape[1], a.shape[0])
    return np.ascontiguousarray(a)


def _codec_errors(fmt: str) -> tuple[type[BaseException], ...]:
    """What a damaged stream of ``fmt`` raises inside Pillow/its plugins.

    The WSQ plugin reports damage as a plain ``Exception("WSQ Error: -39")`` from its C decoder,
    or trips over its own header parser (``UnboundLocalError``), so for WSQ nothing narrower
    than ``Exception`` catches it. Only the open/decode calls sit inside these handlers, and the
    error is re-raised as a refusal with its cause chained, never swallowed.
    """
    if fmt == "wsq":
        return (Exception,)
    return (OSError, ValueError, SyntaxError, EOFError)


def _check_side(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE_PX or max(width, height) > MAX_SIDE_PX:
        raise InvalidImage(
            f"image is {width}x{height} pixels; each side must be {MIN_SIDE_PX} to "
            f"{MAX_SIDE_PX} pixels"
        )


def _header(buf: bytes, fmt: str) -> tuple[int, int, int | None]:
    """Width, height and declared dpi from the header alone (Pillow decodes no pixels here)."""
    from PIL import Image

    if fmt == "wsq":
        import wsq  # noqa: F401  # registers the WSQ plugin with Pillow
    with warnings.catch_warnings():
        # A header declaring > Image.MAX_IMAGE_PIXELS warns or raises; our side limit is far
        # below that and is checked right after, so the warning adds nothing.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # Pillow's "corrupt EXIF": we refuse anyway
        try:
            with Image.open(io.BytesIO(buf)) as im:
                width, height = im.size
                mode = im.mode
                info_dpi = im.info.get("dpi")
        except Image.DecompressionBombError as e:
            raise InvalidImage(f"{fmt} image is far too large: {e}") from e
        except Image.UnidentifiedImageError as e:
            raise InvalidImage(f"corrupt or truncated {fmt} image: unreadable header") from e
        except _codec_errors(fmt) as e:
            raise InvalidImage(f"corrupt or truncated {fmt} image: {e}") from e
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "RGB;16", "RGBA;16"):
        raise InvalidImage(f"{fmt} image has {mode} pixels; only 8-bit grey or colour is accepted")
    dpi = None
    if isinstance(info_dpi, tuple) and info_dpi:
        try:
            d = round(float(info_dpi[0]))
        except (TypeError, ValueError):
            d = 0
        dpi = d if d >= 50 else None
    return int(width), int(height), dpi


def _decode_cv(buf: bytes, fmt: str) -> GreyImage:
    import cv2

    # OpenCV logs every corrupt input at ERROR level on stderr; we raise a clear error instead,
    # and a service fed garbage by a faulty station must not flood its log with codec noise.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    arr = np.frombuffer(buf, np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InvalidImage(f"corrupt or truncated {fmt} image: OpenCV could not decode it")
    if img.dtype != np.uint8:
        raise InvalidImage(f"{fmt} image has {img.dtype} pixels; only 8-bit is accepted")
    return as_grey(img)


#: Longest a WSQ decode may take before the image is refused (a 4096 x 4096 image takes < 1 s).
WSQ_TIMEOUT_S: Final = 30.0


def _decode_wsq(buf: bytes) -> GreyImage:
    """WSQ through the PyPI ``wsq`` codec, in a child process (:mod:`matcher.extract.wsq_child`):
    the codec is native code that crashes (SIGSEGV) on some damaged files, found by fuzzing;
    isolated, a crash refuses the image instead of taking the matching service down. Cost: one
    interpreter start a WSQ image (~0.2 s here)."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r}); "
        "from matcher.extract.wsq_child import main; main()"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], input=buf, capture_output=True, timeout=WSQ_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise InvalidImage(
            f"wsq image: the decoder did not finish in {WSQ_TIMEOUT_S:.0f} s"
        ) from None
    out = done.stdout
    if done.returncode != 0 or out[:2] not in (b"OK", b"NO"):
        raise InvalidImage(
            f"corrupt wsq image: the WSQ decoder failed on it (exit status {done.returncode})"
        )
    if out[:2] == b"NO":
        raise InvalidImage(out[2:].decode(errors="replace"))
    h, w = int.from_bytes(out[2:6], "little"), int.from_bytes(out[6:10], "little")
    if len(out) != 10 + h * w:
        raise InvalidImage("corrupt wsq image: the decoder's answer is incomplete")
    return np.frombuffer(out[10:], np.uint8).reshape(h, w).copy()


def _decode_wsq_here(buf: bytes) -> GreyImage:
    import wsq  # noqa: F401  # registers the WSQ plugin with Pillow
    from PIL import Image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            im.load()
            grey = im.convert("L")
    except _codec_errors("wsq") as e:
        raise InvalidImage(f"corrupt or truncated wsq image: {e}") from e
    return np.asarray(grey, dtype=np.uint8)

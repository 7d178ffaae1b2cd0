"""WSQ decoding in a child process (see :func:`matcher.extract.image._decode_wsq`).

Reads a WSQ file on stdin; writes ``OK`` + height and width (4 bytes each, little-endian) + the
8-bit grey pixels, or ``NO`` + the reason the image is refused (UTF-8). A crash of the native
codec ends this process only.
"""

from __future__ import annotations

import sys


def main() -> None:
    from matcher.errors import InvalidImage
    from matcher.extract.image import _decode_wsq_here

    buf = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    try:
        pixels = _decode_wsq_here(buf)
    except InvalidImage as e:
        out.write(b"NO" + str(e).encode())
    except Exception as e:  # noqa: BLE001  (anything else the codec raises: a refusal)
        out.write(b"NO" + f"corrupt wsq image: {type(e).__name__}: {e}".encode())
    else:
        h, w = pixels.shape
        out.write(b"OK" + h.to_bytes(4, "little") + w.to_bytes(4, "little") + pixels.tobytes())
    out.flush()


if __name__ == "__main__":
    main()

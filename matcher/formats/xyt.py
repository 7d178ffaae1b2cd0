"""NIST ``.xyt`` minutiae text, as written by NBIS ``mindtct`` and read by ``bozorth3``.

Sources: *User's Guide to NIST Biometric Image Software (NBIS)*, NISTIR 7392 (MINDTCT and
BOZORTH3 chapters), and the NBIS code that defines the two representations:
``mindtct/src/lib/mindtct/xytreps.c`` (``lfs2nist_minutia_XYT``, ``lfs2m1_minutia_XYT``),
``mindtct/src/lib/mindtct/results.c`` (``write_minutiae_XYTQ``) and
``bozorth3/src/lib/bozorth3/bz_io.c`` (``bz_load``).

One minutia per line, ``"x y theta quality"`` as whitespace-separated integers (``bozorth3``
also accepts three columns, without quality; then every line must have three). Quality is
``mindtct``'s reliability times 100, 0..100. There is no header: the image size and resolution
are not in the file, so :func:`decode` must be told them. Minutia types are not recorded
(decoded as 0, other).

The two representations ``mindtct`` writes (``origin=``):

``"bottom-left"`` -- the default ("NIST internal"):
    pixel origin at the **bottom-left** corner, ``y`` up: ``y_xyt = height - y``
    (``lfs2nist_minutia_XYT``: ``y = ih - minutia->y``, so values run 1..height);
    theta in whole **degrees** 0..359, counter-clockwise from east, pointing **out and away**
    from the ridge ending or bifurcation valley, i.e. opposite to ISO/ANSI:
    ``theta_xyt = theta_iso + 180 degrees``.
``"top-left"`` -- ``mindtct -m1`` ("M1", ANSI INCITS 378-2004):
    pixel origin at the **top-left** corner, ``y`` down, as in a FingerTemplate;
    direction as in ISO/ANSI (up the ridge ending or bifurcation valley);
    theta in ANSI units of **2 degrees**, 0..179 (``lfs2m1_minutia_XYT`` ends with
    ``t = t / 2``). Note that the comment above ``write_minutiae_XYTQ`` says "degrees" for both
    representations and ``bozorth3`` reads the column as degrees in both modes; the code is what
    ``mindtct -m1`` actually writes. Files from other tools that use the top-left convention
    with whole degrees are read with ``angle_unit_deg=1``.

Angles on input may also be negative (``bozorth3`` normalises to (-180, 180]); they are wrapped,
but values beyond one turn in either direction are refused, since they usually mean the wrong
unit was assumed. See :mod:`matcher.formats` for the shared rules (precision, size cap).
"""

from __future__ import annotations

import re

import numpy as np

from matcher.errors import InvalidTemplate
from matcher.formats import MAX_RECORD_BYTES, _angle_codes, _code_angles, _pixel_coords
from matcher.templates import MAX_IMAGE_SIDE_PX, MAX_MINUTIAE, FingerTemplate

__all__ = ["decode", "encode", "ORIGINS"]

#: The accepted ``origin`` values: mindtct's default and its ``-m1`` representation.
ORIGINS = ("bottom-left", "top-left")

_FMT = "NIST .xyt"
_INT = re.compile(r"[+-]?[0-9]{1,9}\Z")  # 9 digits: far beyond any pixel or angle


def _convention(origin: str, angle_unit_deg: int | None) -> tuple[bool, int]:
    """``(y_up, units_per_turn)`` for an ``origin`` and optional angle unit override."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    y_up = origin == "bottom-left"
    unit = (1 if y_up else 2) if angle_unit_deg is None else angle_unit_deg
    if isinstance(unit, bool) or unit not in (1, 2):
        raise ValueError(f"angle_unit_deg must be 1 or 2 (degrees per unit), got {unit!r}")
    return y_up, 360 // unit


def decode(
    text: str | bytes,
    width: int,
    height: int,
    dpi: int = 500,
    origin: str = "bottom-left",
    *,
    angle_unit_deg: int | None = None,
) -> FingerTemplate:
    """Read ``.xyt`` text into a :class:`FingerTemplate` of the given image size and ``dpi``.

    ``origin="bottom-left"`` reads ``mindtct``'s default output, ``"top-left"`` its ``-m1``
    output (see the module docstring). ``angle_unit_deg`` overrides the angle unit of that
    representation (1 or 2 degrees). Raises :class:`InvalidTemplate` naming the line for
    malformed lines, values out of range, no minutiae or more than 255, and inputs over 1 MiB;
    ``ValueError`` for an unknown ``origin`` or unit.
    """
    y_up, units = _convention(origin, angle_unit_deg)
    for name, side in (("width", width), ("height", height)):
        if isinstance(side, bool) or not isinstance(side, int | np.integer):
            raise InvalidTemplate(f"{_FMT}: {name} must be an integer, got {side!r}")
        if not 1 <= side <= MAX_IMAGE_SIDE_PX:
            raise InvalidTemplate(f"{_FMT}: {name} = {side} is outside 1..{MAX_IMAGE_SIDE_PX}")
    if isinstance(text, bytearray | memoryview):
        text = bytes(text)
    if not isinstance(text, str | bytes):
        raise InvalidTemplate(f"{_FMT}: expected str or bytes, got {type(text).__name__}")
    if len(text) > MAX_RECORD_BYTES:
        raise InvalidTemplate(
            f"{_FMT}: input is {len(text)} long; over {MAX_RECORD_BYTES} (1 MiB) is refused"
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidTemplate(
                f"{_FMT}: byte {exc.start} is not ASCII; .xyt files are plain ASCII text"
            ) from exc

    rows: list[list[int]] = []
    line_numbers: list[int] = []
    columns = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (3, 4) or not all(_INT.match(f) for f in fields):
            raise InvalidTemplate(
                f"{_FMT}: line {number}: expected 'x y theta [quality]' as integers, got "
                f"{line.strip()[:60]!r}"
            )
        if columns and len(fields) != columns:
            raise InvalidTemplate(
                f"{_FMT}: line {number} has {len(fields)} columns but earlier lines have {columns}"
            )
        columns = len(fields)
        if len(rows) == MAX_MINUTIAE:
            raise InvalidTemplate(
                f"{_FMT}: line {number}: more than {MAX_MINUTIAE} minutiae; a template holds at "
                f"most {MAX_MINUTIAE}"
            )
        rows.append([int(f) for f in fields] + ([0] if columns == 3 else []))
        line_numbers.append(number)
    if not rows:
        raise InvalidTemplate(f"{_FMT}: no minutiae; at least 1 is required")

    x, y, t, q = np.array(rows, dtype=np.int64).T

    def check(bad: np.ndarray, problem: str, values: np.ndarray) -> None:
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidTemplate(f"{_FMT}: line {line_numbers[i]}: {problem % values[i]}")

    check((x < 0) | (x >= width), f"x = %d is outside [0, width={width})", x)
    if y_up:
        check(
            (y <= 0) | (y > height),
            f"y = %d is outside [1, height={height}] (origin bottom-left)",
            y,
        )
        y = height - y
    else:
        check(
            (y < 0) | (y >= height), f"y = %d is outside [0, height={height}) (origin top-left)", y
        )
    check(
        np.abs(t) > units,
        f"theta = %d is beyond one turn ({units} units of {360 // units} degree(s)); wrong "
        "origin or angle_unit_deg?",
        t,
    )
    check((q < 0) | (q > 100), "quality = %d is outside 0..100", q)
    if y_up:
        t = t - units // 2  # NIST internal points away from the ridge: turn it round
    theta = _code_angles(np.mod(t, units), units)
    return FingerTemplate(
        x=x.astype(np.float32),
        y=y.astype(np.float32),
        theta=theta,
        width=int(width),
        height=int(height),
        dpi=dpi,
        quality=q.astype(np.uint8),
    )


def encode(
    t: FingerTemplate, origin: str = "bottom-left", *, angle_unit_deg: int | None = None
) -> str:
    """Write ``t`` as ``.xyt`` text, one ``"x y theta quality"`` line per minutia.

    Same conventions as :func:`decode`; its defaults give ``mindtct``'s default format.
    Coordinates are rounded to whole pixels, angles to the unit. Minutia type, finger position,
    impression, image size and dpi are not representable and are dropped.
    """
    y_up, units = _convention(origin, angle_unit_deg)
    if not isinstance(t, FingerTemplate):
        raise InvalidTemplate(f"{_FMT}: expected a FingerTemplate, got {type(t).__name__}")
    x, y = _pixel_coords(t)
    codes = _angle_codes(t.theta, units)
    if y_up:
        y = t.height - y
        codes = np.mod(codes + units // 2, units)
    return "".join(
        f"{a} {b} {c} {d}\n"
        for a, b, c, d in zip(
            x.tolist(), y.tolist(), codes.tolist(), t.quality.tolist(), strict=True
        )
    )

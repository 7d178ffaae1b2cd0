"""Synthetic fingerprint minutiae with realistic statistics, for scale tests and benchmarks.

A *finger* (:class:`SyntheticFinger`) is a master set of minutiae laid on a ridge orientation
field inside a finger-shaped foreground; an *impression* (:func:`impression`) is one capture of it
as a :class:`~matcher.templates.FingerTemplate`: moved, distorted, noisy, cropped, with minutiae
lost and a few spurious ones. Two impressions of one finger are a genuine pair; impressions of
two fingers an impostor pair. Lengths below are pixels at 500 dpi and scale with the dpi asked for.

Algorithm steps
1. Pattern class, drawn with the natural frequencies measured on NIST data (C. L. Wilson,
   G. T. Candela, C. I. Watson, "Neural network fingerprint classification", J. Artificial
   Neural Networks 1(2), 1994; the frequencies SFinGe uses): arch 3.7 %, tented arch 2.9 %,
   left loop 33.8 %, right loop 31.7 %, whorl 27.9 %. The whole pattern is tilted by a small
   random angle (the finger is not laid perfectly upright).
2. Foreground: an "ellipse" whose upper half (the fingertip) is shorter than its lower half,
   centred near the image centre, tilted with the pattern; its lower part usually runs off the
   image, as a finger does.
3. Singular points: a loop has a core in the middle of the foreground and a delta below it on the
   side opposite the loop's opening (right of the core for a left loop); a tented arch has its
   delta straight below the core; a whorl two cores close together and two deltas, one either
   side below; a plain arch none. Cores lie inside the foreground; deltas are pulled into the
   finger outline (they may still fall outside the image, as in real plain impressions).
4. Orientation field: the zero-pole model of B. G. Sherlock and D. M. Monro, "A model for
   interpreting fingerprint topology", Pattern Recognition 26(7):1047-1055, 1993, in a y-up frame
   where angles are ISO angles: ``O(z) = O_inf + 1/2 sum_cores arg(z - c) - 1/2 sum_deltas
   arg(z - d)``, with ``O_inf`` the tilt. A. Vizcaya and L. A. Gerhardt ("A nonlinear orientation
   model for global description of fingerprints", Pattern Recognition 29(7):1221-1231, 1996)
   refine each ``arg`` by a fitted piecewise-linear map; with nothing to fit we keep the identity
   map, i.e. Sherlock and Monro's model. A plain arch has no singular point, so its field is
   explicit: ridges ``v = v0 + h exp(-u^2 / 2 w^2)`` in the tilted frame (a bump that flattens
   towards the crease), whose tangent angle is ``atan(dv/du)``.
5. Minutiae: a Poisson process in the foreground (clipped to the image), thinned to a Matern
   type II hard-core process (each candidate is dropped if an earlier one lies within
   :data:`MIN_MINUTIA_DISTANCE_PX`, about 1.4 ridge periods), so minutiae keep the spacing ridges
   impose. The retained density is drawn per finger (log-normal around
   :data:`MASTER_DENSITY_PER_MM2`) and the candidate intensity set so that the thinning leaves
   that density. Each direction is the local ridge orientation plus 0 or pi at random (an ending
   and a bifurcation point opposite ways along the flow, depending on which side the ridge stops
   or splits) plus a small jitter; kind is ending or bifurcation; quality 40-100.
6. Impression (batched over fingers), in this order:
   a. plastic distortion after R. Cappelli, D. Maio, D. Maltoni, "Modelling plastic distortion in
      fingerprint images", ICAPR 2001: a close-contact disc near the finger centre does not move,
      the external region moves rigidly (a small rotation and shift), and in between the
      displacement ``(T(v) - v) * brake(d)`` grows with the distance ``d`` from the contact disc;
      we use ``brake(d) = 1 - exp(-d^2 / 2k^2)``. Directions follow the local deformation;
   b. a global rigid motion: rotation by ``r`` counter-clockwise as displayed (clockwise in pixel
      coordinates, y down) about the finger centre, then a translation; directions gain ``r``;
   c. Gaussian position and angle noise;
   d. minutiae outside the contact region (the foreground shrunk by a random pressure factor,
      moved with the finger) or outside the image are dropped, then a random fraction of the rest;
   e. a few spurious minutiae with uniform positions in the contact region and random directions;
   f. at most 255 kept, order shuffled (a matcher must not rely on it).

Reproducibility: every function draws only from the ``numpy.random.Generator`` passed in (or
generators derived from the seed), so equal inputs give equal outputs on one numpy version.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from matcher.templates import (
    KIND_BIFURCATION,
    KIND_RIDGE_ENDING,
    MAX_DPI,
    MAX_IMAGE_SIDE_PX,
    MAX_MINUTIAE,
    MIN_DPI,
    FingerTemplate,
)

__all__ = [
    "PATTERNS",
    "PATTERN_FREQUENCIES",
    "Capture",
    "SyntheticFinger",
    "random_finger",
    "impression",
    "finger_chunks",
]

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

# ------------------------------------------------------------------------------ constants
#: Resolution every ``_PX`` length below refers to; other dpi scale them by ``dpi / 500``.
REFERENCE_DPI = 500
#: Pattern classes and their natural frequencies (Wilson, Candela & Watson 1994).
PATTERNS = ("arch", "tented_arch", "left_loop", "right_loop", "whorl")
PATTERN_FREQUENCIES = (0.037, 0.029, 0.338, 0.317, 0.279)
_ARCH, _TENTED_ARCH, _LEFT_LOOP, _RIGHT_LOOP, _WHORL = range(5)
#: Standard deviation of the pattern's tilt from upright, degrees.
TILT_SIGMA_DEG = 8.0
#: Foreground half-width, half-height above the centre (fingertip) and below it, pixels.
SEMI_AXIS_X_PX = (140.0, 175.0)
SEMI_AXIS_TOP_PX = (165.0, 200.0)
SEMI_AXIS_BOTTOM_PX = (230.0, 290.0)
#: Offset of the foreground centre from the image centre: sideways sigma, downwards range.
CENTRE_SIDEWAYS_SIGMA_PX = 10.0
CENTRE_DOWN_PX = (0.0, 30.0)
#: Singular points, finger frame (sideways to the finger's right, up towards the tip), pixels:
#: the core's offset from the foreground centre, then each delta's from the core. Core-delta
#: distances of 80-200 px are about 8-20 ridges, the usual ridge counts of loops.
CORE_SIDEWAYS_SIGMA_PX = 15.0
CORE_UP_PX = (-20.0, 50.0)
LOOP_DELTA_SIDEWAYS_PX = (50.0, 130.0)
LOOP_DELTA_DOWN_PX = (80.0, 150.0)
TENTED_DELTA_SIDEWAYS_SIGMA_PX = 8.0
TENTED_DELTA_DOWN_PX = (40.0, 90.0)
WHORL_CORE_HALF_GAP_PX = (6.0, 22.0)
WHORL_DELTA_SIDEWAYS_PX = (90.0, 150.0)
WHORL_DELTA_DOWN_PX = (80.0, 140.0)
#: Plain arch: width of the ridges' bump (px) and its height as a multiple of that width.
ARCH_WIDTH_PX = (60.0, 110.0)
ARCH_HEIGHT = (0.7, 1.4)
#: Minutiae keep this far from the image border in the master finger (extractors find none there).
BORDER_MARGIN_PX = 6.0
#: Hard-core distance between master minutiae: ridge period at 500 dpi is about 9-10 px.
MIN_MINUTIA_DISTANCE_PX = 13.0
#: Master minutiae per mm^2 of foreground: median and log-normal sigma across fingers. Calibrated
#: so that default impressions of a 388 x 374 image at 500 dpi (the FVC2002 DB1 geometry) hold
#: 20-80 minutiae with a median near 45 (NIST mindtct on FVC2002 DB1_B: median 49, 95 % in 23-74).
MASTER_DENSITY_PER_MM2 = 0.255
MASTER_DENSITY_LOG_SIGMA = 0.22
#: Standard deviation of a master minutia's direction about the ridge orientation, degrees.
DIRECTION_JITTER_DEG = 4.0
#: Fraction of master minutiae that are ridge endings (the rest are bifurcations).
ENDING_FRACTION = 0.6
#: Master quality range (inclusive) and per-impression quality noise (sigma).
QUALITY_RANGE = (40, 100)
QUALITY_NOISE_SIGMA = 6.0
#: Spurious minutiae get qualities in this range (inclusive): they come from poor areas.
SPURIOUS_QUALITY_RANGE = (40, 70)
#: Impression contact region: the foreground scaled by a pressure factor in this range.
PRESSURE_SCALE = (0.85, 1.0)
#: Plastic distortion at ``distortion=1``: rotation (uniform +-, degrees) and shift (sigma per
#: axis) of the external region; contact disc radius and brake width ``k``; the disc centre's
#: offset (sigma per axis) from the finger centre.
DISTORTION_ROTATION_DEG = 4.0
DISTORTION_SHIFT_SIGMA_PX = 4.0
CONTACT_RADIUS_PX = (50.0, 90.0)
BRAKE_WIDTH_PX = (40.0, 80.0)
CONTACT_OFFSET_SIGMA_PX = 15.0

_MM_PER_INCH = 25.4
_TWO_PI = 2.0 * math.pi
#: Rows thinned together (sorted by count, so a group's padding stays narrow).
_THINNING_GROUP = 128
#: Fingers per independently seeded block of :func:`finger_chunks`.
_BLOCK = 512


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class Capture:
    """How an impression is captured. Ranges are ``(low, high)``, drawn uniformly per impression.

    ``rotation_deg``: rigid rotation, degrees, counter-clockwise as displayed, about the finger
    centre. ``translation_px``: shift per axis, pixels at 500 dpi. ``distortion``: strength of
    the plastic distortion, 0 = none, 1 = typical live-scan (the external region turned up to 4
    degrees and shifted about 4 px: minutiae move a few px, up to about 15 px at the periphery).
    ``position_noise_px``, ``angle_noise_deg``: Gaussian sigmas per minutia. ``missing``:
    fraction of the minutiae in view that the extractor loses. ``spurious``: number of false
    minutiae added (inclusive; any that fall outside the image are dropped).
    Invalid settings raise ``ValueError``.
    """

    rotation_deg: tuple[float, float] = (-30.0, 30.0)
    translation_px: tuple[float, float] = (-40.0, 40.0)
    distortion: float = 1.0
    position_noise_px: float = 2.0
    angle_noise_deg: float = 5.0
    missing: tuple[float, float] = (0.1, 0.3)
    spurious: tuple[int, int] = (0, 6)

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "translation_px", "missing", "spurious"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"Capture.{name} must be a finite (low, high), got {(lo, hi)}")
        for name in ("distortion", "position_noise_px", "angle_noise_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Capture.{name} must be finite and >= 0, got {value}")
        if not 0 <= self.missing[0] <= self.missing[1] <= 1:
            raise ValueError(f"Capture.missing must lie in [0, 1], got {self.missing}")
        lo, hi = self.spurious
        if lo != int(lo) or hi != int(hi) or not 0 <= lo <= hi <= MAX_MINUTIAE:
            raise ValueError(f"Capture.spurious must be integers in [0, 255], got {self.spurious}")


@dataclass(frozen=True, eq=False)
class SyntheticFinger:
    """One synthetic finger: its master minutiae and the field and outline they were drawn on.

    ``master``: every minutia of the finger as a FingerTemplate (pixels, ISO angles, kind 1/2,
    quality 40-100) in the frame the impressions are moved from. ``pattern``: one of
    :data:`PATTERNS`. ``cores``, ``deltas``: float64 ``(k, 2)`` singular points ``(x, y)`` in
    pixels (``k`` = 0 to 2). ``tilt_rad``: the field's orientation far from singular points
    (ISO angle). ``centre``: ``(x, y)`` of the foreground centre, about which impressions rotate.
    ``semi_axes_px``: foreground half-width, half-height above and below the centre.
    ``arch_width_px``, ``arch_height``: the plain-arch field's bump width and slope scale.
    These fields are the whole description: :meth:`orientation`, :meth:`inside` and
    :func:`impression` read nothing else, so ``dataclasses.replace(finger, master=...)`` gives
    the same finger with other minutiae. Immutable; safe to share between threads.
    """

    master: FingerTemplate
    pattern: str
    cores: F64
    deltas: F64
    tilt_rad: float
    centre: tuple[float, float]
    semi_axes_px: tuple[float, float, float]
    arch_width_px: float
    arch_height: float
    _shape: _Shapes = field(init=False, repr=False)  # the fields above as a batch of one

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")

        def points(p: npt.ArrayLike) -> F64:
            arr = np.full((1, 2, 2), np.nan)
            given = np.asarray(p, np.float64).reshape(-1, 2)
            arr[0, : given.shape[0]] = given
            return arr

        shape = _Shapes(
            pattern=np.array([PATTERNS.index(self.pattern)], np.int8),
            centre_x=np.array([self.centre[0]]),
            centre_y=np.array([self.centre[1]]),
            semi_x=np.array([self.semi_axes_px[0]]),
            semi_top=np.array([self.semi_axes_px[1]]),
            semi_bottom=np.array([self.semi_axes_px[2]]),
            tilt=np.array([self.tilt_rad]),
            cores=points(self.cores),
            deltas=points(self.deltas),
            arch_width=np.array([self.arch_width_px]),
            arch_height=np.array([self.arch_height]),
        )
        object.__setattr__(self, "_shape", shape)

    def orientation(self, x: npt.ArrayLike, y: npt.ArrayLike) -> F64:
        """Ridge orientation at pixel points ``(x, y)``: float64 radians in ``[0, pi)``, ISO
        (counter-clockwise as displayed). Broadcasts ``x`` and ``y``; undefined at singular
        points."""
        xb, yb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        flat = _orientation(self._shape, xb.reshape(1, -1), yb.reshape(1, -1))
        return np.mod(flat, math.pi).reshape(xb.shape)

    def inside(self, x: npt.ArrayLike, y: npt.ArrayLike) -> Bool:
        """Whether pixel points lie in the finger's foreground (ignoring the image border)."""
        xb, yb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        flat = _inside(self._shape, xb.reshape(1, -1), yb.reshape(1, -1), np.ones(1))
        return flat.reshape(xb.shape)


def random_finger(
    rng: np.random.Generator, width: int = 388, height: int = 374, dpi: int = 500
) -> SyntheticFinger:
    """A new random finger for an image of ``width`` x ``height`` pixels at ``dpi``.

    The defaults are the FVC2002 DB1 sensor (388 x 374 at 500 dpi). The master usually holds 35-100
    minutiae (median about 60); a default impression keeps 20-80 of them (median about 45).
    Cost: about a millisecond.
    """
    _check_geometry(width, height, dpi)
    shape, minutiae = _random_fingers(rng, 1, width, height, dpi)
    return _finger(shape, minutiae, width, height, dpi)


def impression(
    finger: SyntheticFinger,
    rng: np.random.Generator,
    capture: Capture | None = None,
    **overrides: Any,
) -> FingerTemplate:
    """One capture of ``finger``: a FingerTemplate of the same image size and dpi.

    Capture settings come from ``capture`` (default :class:`Capture()`) with any of its fields
    overridden by keyword, e.g. ``impression(f, rng, rotation_deg=(10, 10), distortion=0)``.
    The result holds 1 to 255 minutiae, all inside the image, in random order; kinds and
    qualities of surviving master minutiae are kept (quality with a little noise).
    """
    settings = replace(capture or Capture(), **overrides)
    master = finger.master
    m = _Minutiae(
        x=master.x.astype(np.float64)[None, :],
        y=master.y.astype(np.float64)[None, :],
        theta=master.theta.astype(np.float64)[None, :],
        kind=master.kind[None, :],
        quality=master.quality[None, :],
        valid=np.ones((1, master.n), dtype=bool),
    )
    return _impressions(rng, finger._shape, m, settings, master.width, master.height, master.dpi)[0]


def finger_chunks(
    n: int,
    seed: int,
    chunk: int = 4096,
    *,
    width: int = 388,
    height: int = 374,
    dpi: int = 500,
    take: int = 0,
    capture: Capture | None = None,
    **overrides: Any,
) -> Iterator[list[FingerTemplate]]:
    """Impressions of ``n`` distinct fingers, ``chunk`` templates per list (the last may be
    shorter); template ``i`` of the stream is finger id ``i``.

    Reproducible from ``seed``, and template ``i`` depends on nothing else (not on ``n``, not on
    ``chunk``): fingers are drawn in fixed blocks of 512, each from its own generator, so a
    gallery of 10,000 is the first 10,000 of a gallery of a million. ``take`` picks which
    capture of every finger is returned: the stream with ``take=1`` holds a genuine mate of each
    template of the stream with ``take=0`` (same ``seed``, image geometry and dpi), so a
    benchmark can enrol one and probe with the other.
    Capture settings as in :func:`impression`. Cost: about 0.15 ms per template on one core
    (half of it building the validated FingerTemplates), single-threaded.
    """
    if n < 0 or chunk < 1 or take < 0:
        raise ValueError(f"need n >= 0, chunk >= 1 and take >= 0, got {n}, {chunk}, {take}")
    _check_geometry(width, height, dpi)
    settings = replace(capture or Capture(), **overrides)
    # Checked above, generated below: bad arguments fail at the call, not at the first next().
    return _chunks(n, seed, chunk, width, height, dpi, take, settings)


def _chunks(
    n: int, seed: int, chunk: int, width: int, height: int, dpi: int, take: int, settings: Capture
) -> Iterator[list[FingerTemplate]]:
    pending: list[FingerTemplate] = []
    for block, start in enumerate(range(0, n, _BLOCK)):
        # Whole blocks always, so finger i does not depend on n (the last block is cut after).
        shape, minutiae = _random_fingers(
            np.random.default_rng([seed, block, 0]), _BLOCK, width, height, dpi
        )
        rng = np.random.default_rng([seed, block, 1, take])
        pending += _impressions(rng, shape, minutiae, settings, width, height, dpi, first=n - start)
        while len(pending) >= chunk:
            yield pending[:chunk]
            pending = pending[chunk:]
    if pending:
        yield pending


# ------------------------------------------------------------------------- batched steps
class _Shapes(NamedTuple):
    """Outline and field of ``m`` fingers, each field ``(m,)`` unless noted; pixels."""

    pattern: npt.NDArray[np.int8]
    centre_x: F64
    centre_y: F64
    semi_x: F64
    semi_top: F64
    semi_bottom: F64
    tilt: F64  # radians, ISO
    cores: F64  # (m, 2, 2) (x, y); NaN where absent
    deltas: F64  # (m, 2, 2)
    arch_width: F64
    arch_height: F64


class _Minutiae(NamedTuple):
    """Padded minutiae of ``m`` fingers, ``(m, k)`` each; ``valid`` marks the real ones."""

    x: F64
    y: F64
    theta: F64
    kind: npt.NDArray[np.uint8]
    quality: npt.NDArray[np.uint8]
    valid: Bool


def _check_geometry(width: int, height: int, dpi: int) -> None:
    if not (1 <= width <= MAX_IMAGE_SIDE_PX and 1 <= height <= MAX_IMAGE_SIDE_PX):
        raise ValueError(f"image sides must be 1..{MAX_IMAGE_SIDE_PX} px, got {width}x{height}")
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be {MIN_DPI}..{MAX_DPI}, got {dpi}")


def _random_fingers(
    rng: np.random.Generator, m: int, width: int, height: int, dpi: int
) -> tuple[_Shapes, _Minutiae]:
    shape = _random_shapes(rng, m, width, height, dpi / REFERENCE_DPI)
    minutiae = _place_minutiae(rng, shape, width, height, dpi)
    return shape, minutiae


def _random_shapes(
    rng: np.random.Generator, m: int, width: int, height: int, scale: float
) -> _Shapes:
    """Steps 1-3: pattern, tilt, outline and singular points of ``m`` fingers."""
    pattern = rng.choice(len(PATTERNS), size=m, p=PATTERN_FREQUENCIES).astype(np.int8)
    tilt = np.radians(rng.normal(0.0, TILT_SIGMA_DEG, m))
    semi_x = rng.uniform(*SEMI_AXIS_X_PX, m) * scale
    semi_top = rng.uniform(*SEMI_AXIS_TOP_PX, m) * scale
    semi_bottom = rng.uniform(*SEMI_AXIS_BOTTOM_PX, m) * scale
    centre_x = width / 2 + rng.normal(0.0, CENTRE_SIDEWAYS_SIGMA_PX * scale, m)
    centre_y = height / 2 + rng.uniform(*CENTRE_DOWN_PX, m) * scale

    # Singular points in the finger's own frame: u to the finger's right, v towards the tip
    # (y-up), pixels at 500 dpi; rotated by the tilt and placed at the centre below.
    def u(lo: float, hi: float) -> F64:
        return rng.uniform(lo, hi, m)

    core = np.stack([rng.normal(0.0, CORE_SIDEWAYS_SIGMA_PX, m), u(*CORE_UP_PX)], axis=1)
    side = np.where(pattern == _LEFT_LOOP, 1.0, -1.0)  # a left loop opens left: delta right
    loop_delta = core + np.stack([side * u(*LOOP_DELTA_SIDEWAYS_PX), -u(*LOOP_DELTA_DOWN_PX)], 1)
    tented_delta = core + np.stack(
        [rng.normal(0.0, TENTED_DELTA_SIDEWAYS_SIGMA_PX, m), -u(*TENTED_DELTA_DOWN_PX)], axis=1
    )
    # Whorl: two cores either side of the core point, two deltas below, left and right.
    half_gap = u(*WHORL_CORE_HALF_GAP_PX)[:, None] * _unit(rng.uniform(0.0, math.pi, m))
    whorl_d1 = core + np.stack([-u(*WHORL_DELTA_SIDEWAYS_PX), -u(*WHORL_DELTA_DOWN_PX)], axis=1)
    whorl_d2 = core + np.stack([u(*WHORL_DELTA_SIDEWAYS_PX), -u(*WHORL_DELTA_DOWN_PX)], axis=1)

    nan = np.full((m, 2), np.nan)
    is_ = [pattern[:, None] == k for k in range(len(PATTERNS))]
    is_loop = is_[_LEFT_LOOP] | is_[_RIGHT_LOOP]
    core1 = np.where(is_[_WHORL], core - half_gap, np.where(is_[_ARCH], nan, core))
    core2 = np.where(is_[_WHORL], core + half_gap, nan)
    delta1 = np.where(is_loop, loop_delta, np.where(is_[_TENTED_ARCH], tented_delta, nan))
    delta1 = np.where(is_[_WHORL], whorl_d1, delta1)
    delta2 = np.where(is_[_WHORL], whorl_d2, nan)

    shape = _Shapes(
        pattern=pattern,
        centre_x=centre_x,
        centre_y=centre_y,
        semi_x=semi_x,
        semi_top=semi_top,
        semi_bottom=semi_bottom,
        tilt=tilt,
        cores=np.empty((m, 2, 2)),
        deltas=np.empty((m, 2, 2)),
        arch_width=u(*ARCH_WIDTH_PX) * scale,
        arch_height=u(*ARCH_HEIGHT),
    )
    for out, points, limit in (
        (shape.cores, (core1, core2), 0.8),  # cores well inside the foreground
        (shape.deltas, (delta1, delta2), 0.98),  # deltas anywhere in the finger outline
    ):
        for j, p in enumerate(points):
            out[:, j] = _to_pixels(shape, p * scale, limit)
    return shape


def _unit(angle: F64) -> F64:
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _to_pixels(shape: _Shapes, uv: F64, limit: float) -> F64:
    """Finger-frame points ``(m, 2)`` (u right, v up, from the centre) to pixel ``(x, y)``,
    pulled towards the centre onto the outline scaled by ``limit`` if they lie beyond it."""
    semi_v = np.where(uv[:, 1] >= 0, shape.semi_top, shape.semi_bottom)
    radius = np.hypot(uv[:, 0] / shape.semi_x, uv[:, 1] / semi_v)
    uv = uv * np.minimum(1.0, limit / np.maximum(radius, 1e-12))[:, None]
    c, s = np.cos(shape.tilt), np.sin(shape.tilt)
    big_x = c * uv[:, 0] - s * uv[:, 1]
    big_y = s * uv[:, 0] + c * uv[:, 1]
    return np.stack([shape.centre_x + big_x, shape.centre_y - big_y], axis=1)


def _finger_frame(shape: _Shapes, x: F64, y: F64) -> tuple[F64, F64]:
    """Pixel points ``(m, k)`` to the finger frame: ``u`` right, ``v`` towards the tip."""
    big_x = x - shape.centre_x[:, None]
    big_y = shape.centre_y[:, None] - y
    c, s = np.cos(shape.tilt)[:, None], np.sin(shape.tilt)[:, None]
    return c * big_x + s * big_y, -s * big_x + c * big_y


def _inside(shape: _Shapes, x: F64, y: F64, pressure: F64) -> Bool:
    """Whether points ``(m, k)`` lie in each finger's outline scaled by ``pressure`` ``(m,)``."""
    u, v = _finger_frame(shape, x, y)
    semi_v = np.where(v >= 0, shape.semi_top[:, None], shape.semi_bottom[:, None])
    p = pressure[:, None]
    return (u / (shape.semi_x[:, None] * p)) ** 2 + (v / (semi_v * p)) ** 2 <= 1.0


def _orientation(shape: _Shapes, x: F64, y: F64) -> F64:
    """Step 4: ridge orientation (ISO radians, not reduced) at points ``(m, k)``."""
    angle = np.repeat(shape.tilt[:, None], x.shape[1], axis=1)
    for points, sign in ((shape.cores, 0.5), (shape.deltas, -0.5)):
        for j in range(points.shape[1]):
            px, py = points[:, j, 0][:, None], points[:, j, 1][:, None]
            arg = np.arctan2(py - y, x - px)  # y-up frame: Y = -y
            angle += sign * np.where(np.isnan(px), 0.0, arg)
    arch = shape.pattern == _ARCH
    if arch.any():
        u, v = _finger_frame(shape, x, y)
        w = shape.arch_width[:, None]
        # Slope of v0 + h * exp(-u^2 / 2w^2) with h shrinking towards the crease (v << 0).
        h = shape.arch_height[:, None] * w / (1.0 + np.exp(-(v + 0.3 * w) / (0.5 * w)))
        slope = -h * u / w**2 * np.exp(-0.5 * (u / w) ** 2)
        angle = np.where(arch[:, None], shape.tilt[:, None] + np.arctan(slope), angle)
    return angle


def _place_minutiae(
    rng: np.random.Generator, shape: _Shapes, width: int, height: int, dpi: int
) -> _Minutiae:
    """Step 5: master minutiae by Matern II thinning inside the foreground and the image."""
    m = shape.pattern.shape[0]
    scale = dpi / REFERENCE_DPI
    px_per_mm = dpi / _MM_PER_INCH
    hard_core = MIN_MINUTIA_DISTANCE_PX * scale
    disc = math.pi * hard_core**2
    density = MASTER_DENSITY_PER_MM2 * np.exp(rng.normal(0.0, MASTER_DENSITY_LOG_SIGMA, m))
    density = np.minimum(density / px_per_mm**2, 0.8 / disc)  # per px^2; Matern II caps at 1/disc
    # Matern II keeps a density of (1 - exp(-lambda * disc)) / disc from a Poisson intensity
    # lambda; invert it so the retained density is the one drawn.
    intensity = -np.log1p(-density * disc) / disc
    area = 0.5 * math.pi * shape.semi_x * (shape.semi_top + shape.semi_bottom)
    count = np.maximum(rng.poisson(intensity * area), 1)
    # Candidates drawn flat (finger by finger), uniform in the two half-ellipses in proportion
    # to their areas, and kept if inside the image margin.
    row = np.repeat(np.arange(m), count)
    top = rng.random(row.size) < (shape.semi_top / (shape.semi_top + shape.semi_bottom))[row]
    r = np.sqrt(rng.random(row.size))
    phi = rng.uniform(0.0, math.pi, row.size)
    u = shape.semi_x[row] * r * np.cos(phi)
    v = np.where(top, shape.semi_top[row], -shape.semi_bottom[row]) * r * np.sin(phi)
    c, s = np.cos(shape.tilt)[row], np.sin(shape.tilt)[row]
    x = shape.centre_x[row] + c * u - s * v
    y = shape.centre_y[row] - (s * u + c * v)
    margin = BORDER_MARGIN_PX * scale
    ok = (x >= margin) & (x < width - margin) & (y >= margin) & (y < height - margin)
    valid, (x, y) = _pad(row[ok], m, x[ok], y[ok])
    keep = _matern_ii(x, y, valid, hard_core)
    # A finger with nothing left (only on tiny images) keeps one minutia, at its centre.
    empty = ~keep.any(axis=1)
    x[empty, 0] = np.clip(shape.centre_x[empty], 0.0, width - 1.0)
    y[empty, 0] = np.clip(shape.centre_y[empty], 0.0, height - 1.0)
    keep[empty, 0] = True
    # At most 255 minutiae (the standard records' limit): the first ones in draw order.
    keep &= np.cumsum(keep, axis=1) <= MAX_MINUTIAE
    valid, (x, y) = _pad(np.nonzero(keep)[0], m, x[keep], y[keep])

    flow = _orientation(shape, x, y)
    flip = math.pi * (rng.random(x.shape) < 0.5)
    jitter = rng.normal(0.0, math.radians(DIRECTION_JITTER_DEG), x.shape)
    theta = np.mod(flow + flip + jitter, _TWO_PI)
    kind = np.where(rng.random(x.shape) < ENDING_FRACTION, KIND_RIDGE_ENDING, KIND_BIFURCATION)
    quality = rng.integers(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1, x.shape)
    return _Minutiae(
        x=x,
        y=y,
        theta=theta,
        kind=kind.astype(np.uint8),
        quality=quality.astype(np.uint8),
        valid=valid,
    )


def _pad(row: npt.NDArray[np.intp], m: int, *values: F64) -> tuple[Bool, list[F64]]:
    """Flat per-finger values (``row`` ascending) as ``(m, k)`` arrays, NaN-padded on the right,
    with the mask of real entries; ``k`` is the fullest finger's count (at least 1)."""
    per_row = np.bincount(row, minlength=m)
    start = np.cumsum(per_row) - per_row
    col = np.arange(row.size) - start[row]
    k = max(int(per_row.max(initial=0)), 1)
    valid = np.zeros((m, k), dtype=bool)
    valid[row, col] = True
    padded = []
    for value in values:
        out = np.full((m, k), np.nan)
        out[row, col] = value
        padded.append(out)
    return valid, padded


def _matern_ii(x: F64, y: F64, valid: Bool, hard_core: float) -> Bool:
    """Keep each valid point unless an earlier valid point of its row lies within ``hard_core``.

    Rows go through :func:`_matern_ii_rows` in groups of similar counts, so a group is only as
    wide as its own fullest row.
    """
    keep = np.zeros_like(valid)
    by_count = np.argsort(valid.sum(axis=1), kind="stable")
    for lo in range(0, by_count.size, _THINNING_GROUP):
        rows = by_count[lo : lo + _THINNING_GROUP]
        cols = max(int(valid[rows].sum(axis=1).max()), 1)
        sub = valid[rows]
        # Valid entries sit anywhere in a row here; keep their column order (the draw order).
        order = np.argsort(~sub, axis=1, kind="stable")[:, :cols]
        kept = _matern_ii_rows(
            np.take_along_axis(x[rows], order, axis=1),
            np.take_along_axis(y[rows], order, axis=1),
            np.take_along_axis(sub, order, axis=1),
            hard_core,
        )
        out = np.zeros_like(sub)
        np.put_along_axis(out, order, kept, axis=1)
        keep[rows] = out
    return keep


def _matern_ii_rows(x: F64, y: F64, valid: Bool, hard_core: float) -> Bool:
    """Keep each valid point unless an earlier valid point of its row lies within ``hard_core``.

    ``x``, ``y``, ``valid``: ``(m, k)``; "earlier" is the column order (the candidates are i.i.d.,
    so it is a uniform random mark, as Matern type II asks). Rows are sorted by ``x`` so only
    points a few places apart can be that close: cost ``m * k * w`` for ``w`` the most points in
    any ``hard_core``-wide strip, rather than ``m * k^2``.
    """
    m = x.shape[0]
    far = 2.0 * (MAX_IMAGE_SIDE_PX + hard_core)  # past every real point; pads sort last
    # Valid points first, by x; columns past the fullest row's last valid point are dropped.
    order = np.argsort(np.where(valid, x, far), axis=1)[:, : max(int(valid.sum(axis=1).max()), 1)]
    xs = np.take_along_axis(np.where(valid, x, far), order, axis=1)
    ys = np.take_along_axis(np.where(valid, y, np.nan), order, axis=1)  # NaN: never close
    # Widest strip: for each point, how many later ones (in x order) lie within hard_core in x.
    # Rows are laid end to end, each shifted past the last, so one searchsorted covers all.
    flat = (xs + 2.0 * far * np.arange(m)[:, None]).ravel()
    reach = np.searchsorted(flat, flat + hard_core, side="right") - np.arange(flat.size) - 1
    width = int(reach[np.take_along_axis(valid, order, axis=1).ravel()].max(initial=0))
    cols = xs.shape[1]
    dead = np.zeros((m, cols), dtype=bool)
    for step in range(1, min(width, cols - 1) + 1):
        dx = xs[:, step:] - xs[:, :-step]
        dy = ys[:, step:] - ys[:, :-step]
        close = dx * dx + dy * dy < hard_core**2
        right_is_later = order[:, step:] > order[:, :-step]
        dead[:, step:] |= close & right_is_later
        dead[:, :-step] |= close & ~right_is_later
    keep = np.zeros_like(valid)
    np.put_along_axis(keep, order, ~dead, axis=1)
    return keep & valid


def _impressions(
    rng: np.random.Generator,
    shape: _Shapes,
    mst: _Minutiae,
    cap: Capture,
    width: int,
    height: int,
    dpi: int,
    first: int | None = None,
) -> list[FingerTemplate]:
    """Step 6: one impression of each of ``m`` fingers; templates are built for the ``first``
    only (the random draws, made before, are the same whatever ``first`` is)."""
    m, k = int(mst.x.shape[0]), int(mst.x.shape[1])
    scale = dpi / REFERENCE_DPI
    cx, cy = shape.centre_x[:, None], shape.centre_y[:, None]

    # a. Plastic distortion (Cappelli, Maio & Maltoni 2001), directions by a 2 px finite step.
    contact_x = cx + rng.normal(0.0, CONTACT_OFFSET_SIGMA_PX * scale, (m, 1))
    contact_y = cy + rng.normal(0.0, CONTACT_OFFSET_SIGMA_PX * scale, (m, 1))
    contact_r = rng.uniform(*CONTACT_RADIUS_PX, (m, 1)) * scale
    brake_k = rng.uniform(*BRAKE_WIDTH_PX, (m, 1)) * scale
    twist = np.radians(rng.uniform(-1.0, 1.0, (m, 1)) * DISTORTION_ROTATION_DEG * cap.distortion)
    shift = rng.normal(0.0, DISTORTION_SHIFT_SIGMA_PX * scale * cap.distortion, (m, 2, 1))

    def distort(px: F64, py: F64) -> tuple[F64, F64]:
        rel_x, rel_y = px - contact_x, py - contact_y
        d = np.maximum(np.hypot(rel_x, rel_y) - contact_r, 0.0)
        brake = -np.expm1(-0.5 * (d / brake_k) ** 2)
        c, s = np.cos(twist), np.sin(twist)  # counter-clockwise as displayed
        moved_x = contact_x + c * rel_x + s * rel_y + shift[:, 0]
        moved_y = contact_y - s * rel_x + c * rel_y + shift[:, 1]
        return px + brake * (moved_x - px), py + brake * (moved_y - py)

    step = 2.0 * scale
    tip_x = mst.x + step * np.cos(mst.theta)
    tip_y = mst.y - step * np.sin(mst.theta)
    x, y = distort(mst.x, mst.y)
    tip_x, tip_y = distort(tip_x, tip_y)
    theta = np.arctan2(y - tip_y, tip_x - x)

    # b. Rigid motion about the finger centre; counter-clockwise as displayed.
    rot = np.radians(rng.uniform(*cap.rotation_deg, (m, 1)))
    tx = rng.uniform(*cap.translation_px, (m, 1)) * scale
    ty = rng.uniform(*cap.translation_px, (m, 1)) * scale

    def rigid(px: F64, py: F64) -> tuple[F64, F64]:
        c, s = np.cos(rot), np.sin(rot)
        rel_x, rel_y = px - cx, py - cy
        return cx + c * rel_x + s * rel_y + tx, cy - s * rel_x + c * rel_y + ty

    x, y = rigid(x, y)
    theta = theta + rot

    # c. Noise.
    x = x + rng.normal(0.0, cap.position_noise_px * scale, (m, k))
    y = y + rng.normal(0.0, cap.position_noise_px * scale, (m, k))
    theta = theta + rng.normal(0.0, math.radians(cap.angle_noise_deg), (m, k))
    quality = mst.quality + rng.normal(0.0, QUALITY_NOISE_SIGMA, (m, k))

    # d. Contact region (tested where the minutia sits on the finger), image, missing.
    pressure = rng.uniform(PRESSURE_SCALE[0], PRESSURE_SCALE[1], size=m)
    lost = rng.uniform(*cap.missing, (m, 1))
    valid = (
        mst.valid
        & _inside(shape, mst.x, mst.y, pressure)
        & _in_image(x, y, width, height)
        & (rng.random((m, k)) >= lost)
    )

    # e. Spurious minutiae: uniform in the contact region (rejection from its bounding box in
    # the finger frame), moved with the finger, kept if inside the image.
    n_fake = rng.integers(cap.spurious[0], cap.spurious[1] + 1, size=m)
    fake_k = max(2 * int(n_fake.max()), 1)
    half_w = (shape.semi_x * pressure)[:, None]
    fu = rng.uniform(-1.0, 1.0, (m, fake_k)) * half_w
    fv = rng.uniform(-shape.semi_bottom, shape.semi_top, (fake_k, m)).T * pressure[:, None]
    c, s = np.cos(shape.tilt)[:, None], np.sin(shape.tilt)[:, None]
    fx, fy = cx + c * fu - s * fv, cy - (s * fu + c * fv)
    f_ok = _inside(shape, fx, fy, pressure)
    f_ok &= np.cumsum(f_ok, axis=1) <= n_fake[:, None]
    fx, fy = rigid(fx, fy)
    f_ok &= _in_image(fx, fy, width, height)
    # An impression with nothing left (far off the image) keeps one minutia, clipped inside.
    empty = ~(valid.any(axis=1) | f_ok.any(axis=1))
    if empty.any():
        fx[empty, 0] = np.clip(fx[empty, 0], 0.0, width - 1.0)
        fy[empty, 0] = np.clip(fy[empty, 0], 0.0, height - 1.0)
        f_ok[empty, 0] = True
    lo_q, hi_q = SPURIOUS_QUALITY_RANGE

    x = np.concatenate([x, fx], axis=1)
    y = np.concatenate([y, fy], axis=1)
    theta = np.concatenate([theta, rng.uniform(0.0, _TWO_PI, (m, fake_k))], axis=1)
    kind = np.concatenate(
        [mst.kind, rng.integers(KIND_RIDGE_ENDING, KIND_BIFURCATION + 1, (m, fake_k))], axis=1
    )
    quality = np.concatenate(
        [np.clip(np.rint(quality), *QUALITY_RANGE), rng.integers(lo_q, hi_q + 1, (m, fake_k))],
        axis=1,
    )
    valid = np.concatenate([valid, f_ok], axis=1)

    # f. Shuffle (valid first, random order), cap at 255, and build the templates.
    order = np.argsort(np.where(valid, rng.random(valid.shape), 2.0), axis=1)
    counts = np.minimum(valid.sum(axis=1), MAX_MINUTIAE)
    theta = np.mod(theta, _TWO_PI)
    columns = [np.take_along_axis(a, order, axis=1) for a in (x, y, theta, kind, quality)]
    out = []
    for i in range(m if first is None else min(first, m)):
        n = int(counts[i])
        xi, yi, ti, ki, qi = (col[i, :n] for col in columns)
        out.append(
            FingerTemplate(
                x=xi, y=yi, theta=ti, kind=ki, quality=qi, width=width, height=height, dpi=dpi
            )
        )
    return out


def _in_image(x: F64, y: F64, width: int, height: int) -> Bool:
    # Compared in float32, the precision the template stores, so nothing rounds onto the border.
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    return (xf >= 0) & (xf < width) & (yf >= 0) & (yf < height)


def _finger(shape: _Shapes, mst: _Minutiae, width: int, height: int, dpi: int) -> SyntheticFinger:
    keep = mst.valid[0]
    master = FingerTemplate(
        x=mst.x[0, keep],
        y=mst.y[0, keep],
        theta=mst.theta[0, keep],
        kind=mst.kind[0, keep],
        quality=mst.quality[0, keep],
        width=width,
        height=height,
        dpi=dpi,
    )
    present = ~np.isnan(shape.cores[0, :, 0]), ~np.isnan(shape.deltas[0, :, 0])
    return SyntheticFinger(
        master=master,
        pattern=PATTERNS[int(shape.pattern[0])],
        cores=shape.cores[0][present[0]].copy(),
        deltas=shape.deltas[0][present[1]].copy(),
        tilt_rad=float(shape.tilt[0]),
        centre=(float(shape.centre_x[0]), float(shape.centre_y[0])),
        semi_axes_px=(
            float(shape.semi_x[0]),
            float(shape.semi_top[0]),
            float(shape.semi_bottom[0]),
        ),
        arch_width_px=float(shape.arch_width[0]),
        arch_height=float(shape.arch_height[0]),
    )

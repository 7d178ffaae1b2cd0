"""Synthetic iris codes with the statistics of real ones, for tests and benchmarks at scale.

Algorithm steps
1. Impostor codes: each (ring, bit) stream is white Gaussian noise along the angular axis,
   smoothed circularly by a Gaussian of width ``IMPOSTOR_SMOOTHING_COLUMNS`` (scaled with the
   number of columns) and thresholded at zero. The smoothing is calibrated so that the fractional
   Hamming distance between unrelated codes is binomial with about 249 degrees of freedom for
   2,048 bits, as Daugman measured on real codes (J. Daugman, "The importance of being random",
   Pattern Recognition 36(2):279-291, 2003). Bits of one code are therefore correlated along the
   angle, as a Gabor filter's outputs are.
2. Masks: an upper and a lower eyelid (parabolic arcs over the outer rings, centred on the top and
   bottom of the iris) plus a few specular reflections (small rectangles), scaled per code so the
   occluded fraction is drawn uniformly from ``occlusion`` (10-40 % by default). A mask is the same
   for both phase bits of a sample.
3. Genuine probes: the enrolled code rotated by a whole number of columns (a head tilt), with a
   fraction of its bits flipped independently (``noise``, 10-30 % by default), and a fresh mask
   (eyelids sit in image coordinates, they do not turn with the iris).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from matcher.iris import IrisGeometry

#: Gaussian smoothing width along the angle, in columns of a 128-column code, that gives ~249
#: impostor degrees of freedom for 8 x 128 x 2 codes (measured: 5.0 -> 259, 5.5 -> 231).
IMPOSTOR_SMOOTHING_COLUMNS = 5.2

BoolArray = npt.NDArray[np.bool_]


def random_codes(n: int, geometry: IrisGeometry, rng: np.random.Generator) -> BoolArray:
    """``n`` independent codes, bool ``(n, rings, columns, bits)``, angularly correlated."""
    r, c, b = geometry.shape
    sigma = IMPOSTOR_SMOOTHING_COLUMNS * c / 128.0
    # Smoothed white noise drawn directly in the frequency domain: only the few low-frequency
    # bins the Gaussian passes are drawn (the rest are below 1e-6 and left zero), which makes
    # this several times cheaper than filtering full-band noise and is the same distribution.
    response = np.exp(-2.0 * (np.pi * np.fft.rfftfreq(c) * sigma) ** 2)
    kept = int(np.count_nonzero(response > 1e-6))
    spec = np.zeros((n, r * b, c // 2 + 1), dtype=np.complex64)
    re = rng.standard_normal((n, r * b, kept), dtype=np.float32)
    im = rng.standard_normal((n, r * b, kept), dtype=np.float32)
    im[:, :, 0] = 0.0  # the DC bin of a real signal is real
    scale = (response[:kept] * np.where(np.arange(kept) == 0, 1.0, np.sqrt(0.5))).astype(np.float32)
    spec[:, :, :kept] = (re + 1j * im) * scale
    if kept == c // 2 + 1 and c % 2 == 0:
        spec[:, :, -1] = spec[:, :, -1].real  # so is the Nyquist bin
    smooth = np.fft.irfft(spec, n=c, axis=2)
    bits = smooth > 0
    return np.ascontiguousarray(bits.reshape(n, r, b, c).transpose(0, 1, 3, 2))


def random_masks(
    n: int,
    geometry: IrisGeometry,
    rng: np.random.Generator,
    occlusion: tuple[float, float] = (0.10, 0.40),
) -> BoolArray:
    """``n`` validity masks with eyelid- and reflection-shaped occlusions, bool like the codes."""
    r, c, b = geometry.shape
    lo, hi = occlusion
    if not 0 <= lo <= hi < 1:
        raise ValueError(f"occlusion range must lie in [0, 1), got {occlusion}")
    target = rng.uniform(lo, hi, size=n)
    cols = np.arange(c)[None, :]
    rings_from_outside = (r - 1 - np.arange(r))[None, :, None]  # 0 at the outermost ring

    def lid(centre: float, offset: np.ndarray, half_width: np.ndarray) -> npt.NDArray[np.float64]:
        dist = (cols - (centre + offset) + c / 2) % c - c / 2
        return np.clip(1.0 - (dist / half_width) ** 2, 0.0, None)  # (n, c), peak 1

    width_u = rng.uniform(c / 8, c / 3, size=(n, 1))
    width_l = rng.uniform(c / 8, c / 3, size=(n, 1))
    offset_u = rng.normal(0, c / 32, size=(n, 1))
    offset_l = rng.normal(0, c / 32, size=(n, 1))
    share = rng.uniform(0.4, 0.9, size=(n, 1))  # the upper lid usually covers more
    # Reflections: up to three small blobs near the pupil (inner rings).
    refl = np.zeros((n, r, c), dtype=bool)
    for _ in range(3):
        present = rng.random(n) < 0.5
        r0 = rng.integers(0, max(1, r // 2), size=n)
        c0 = rng.integers(0, c, size=n)
        h = rng.integers(1, max(2, r // 4 + 1), size=n)
        w = rng.integers(2, max(3, c // 32 + 1), size=n)
        rr = np.arange(r)[None, :, None]
        cc = np.arange(c)[None, None, :]
        inside = (
            (rr >= r0[:, None, None])
            & (rr < (r0 + h)[:, None, None])
            & (((cc - c0[:, None, None]) % c) < w[:, None, None])
        )
        refl |= inside & present[:, None, None]

    def covered(scale: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Rings covered per column from outside, (n, c): a ring goes once the lid passes it."""
        depth_u = np.floor(scale[:, None] * share * upper)
        depth_l = np.floor(scale[:, None] * (1 - share) * lower)
        return np.minimum(np.maximum(depth_u, depth_l), r)

    # A code whose target is below its reflections' share gets no reflections.
    refl &= (refl.mean(axis=(1, 2)) <= target)[:, None, None]
    refl_frac = refl.mean(axis=(1, 2))
    # Lids too narrow to reach a high target even fully closed are widened (squinting eyes).
    for _ in range(6):
        upper = lid(c / 4, offset_u, width_u)
        lower = lid(3 * c / 4, offset_l, width_l)
        reach = covered(np.full(n, 4.0 * r)).mean(axis=1) / r + refl_frac
        short = reach < target
        if not short.any():
            break
        width_u[short] = np.minimum(width_u[short] * 1.5, c / 1.5)
        width_l[short] = np.minimum(width_l[short] * 1.5, c / 1.5)
    # Bisection on the lid depth, per code, so lids + reflections meet each code's target.
    lo_s, hi_s = np.zeros(n), np.full(n, 4.0 * r)
    for _ in range(16):
        mid = (lo_s + hi_s) / 2
        frac = covered(mid).mean(axis=1) / r + refl_frac
        too_much = frac > target
        hi_s = np.where(too_much, mid, hi_s)
        lo_s = np.where(too_much, lo_s, mid)
    lids = rings_from_outside < covered(lo_s)[:, None, :]
    valid = ~(lids | refl)
    return np.ascontiguousarray(np.repeat(valid[:, :, :, None], b, axis=3))


@dataclass(frozen=True)
class GenuineProbes:
    """Probes made from enrolled codes. ``shift`` is what a search must report: the ``s`` with
    ``np.roll(probe, s, axis=1)`` aligned to the enrolled code."""

    codes: BoolArray
    masks: BoolArray
    shift: npt.NDArray[np.int32]
    noise: npt.NDArray[np.float64]


def genuine_probes(
    codes: BoolArray,
    rng: np.random.Generator,
    max_shift: int = 8,
    noise: tuple[float, float] = (0.10, 0.30),
    occlusion: tuple[float, float] = (0.10, 0.40),
) -> GenuineProbes:
    """A new capture of each enrolled code: rotated, with bit noise and a fresh mask."""
    n = codes.shape[0]
    geometry = IrisGeometry(*codes.shape[1:])
    rot = np.asarray(rng.integers(-max_shift, max_shift + 1, size=n))
    level = np.asarray(rng.uniform(noise[0], noise[1], size=n), np.float64)
    out = np.empty_like(codes)
    for i in range(n):
        out[i] = np.roll(codes[i], int(rot[i]), axis=1)
    flips = rng.random(codes.shape) < level[:, None, None, None]
    out ^= flips
    masks = random_masks(n, geometry, rng, occlusion)
    return GenuineProbes(out, masks, (-rot).astype(np.int32), level)


def code_chunks(
    n: int,
    geometry: IrisGeometry,
    seed: int,
    chunk: int = 16384,
    occlusion: tuple[float, float] = (0.10, 0.40),
    mask_pool: int = 8192,
) -> Iterator[tuple[BoolArray, BoolArray]]:
    """Codes and masks for a large gallery, ``chunk`` at a time, reproducible from ``seed``.

    Every code is drawn independently; masks are drawn from a pool of ``mask_pool`` occlusion
    patterns (eyelids vary far less between people than iris texture does, and drawing a fresh
    mask per code would dominate the time to build a million-code gallery).
    """
    rng = np.random.default_rng(seed)
    pool = random_masks(min(mask_pool, max(n, 1)), geometry, rng, occlusion)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        yield random_codes(m, geometry, rng), pool[rng.integers(0, pool.shape[0], size=m)]
        done += m

"""Ridge period and contextual (oriented Gabor) enhancement of a normalised fingerprint image.

Algorithm steps (L. Hong, Y. Wan, A. K. Jain, "Fingerprint image enhancement: algorithm and
performance evaluation", IEEE TPAMI 20(8):777-789, 1998, with the even-symmetric Gabor filter
applied as two 1-D passes in the ridge frame, which is exact for a locally constant orientation
and costs ~50 taps per pixel instead of ~300):

1. Along-ridge pass: every foreground pixel (and a margin round it) is replaced by a Gaussian
   average along its local ridge direction (the Gabor envelope along the ridge). Samples are
   bilinear; each orientation bin has a precomputed sparse kernel.
2. Ridge period (Hong et al. step 4, "x-signature"): at the centre of each block the along-ridge
   smoothed image is sampled across the ridges; the mean distance between its zero crossings is
   half the period. Implausible values are discarded; the block map is smoothed (normalised
   convolution) and missing blocks take the image median.
3. Across-ridge pass: a zero-mean 1-D Gabor profile ``exp(-t^2 / 2 s^2) cos(2 pi t / period)``
   across the ridge, with the local period (1 px bins) and ``s`` proportional to it. The output
   is about +-1 on clear ridges: negative on ridges (dark), positive in valleys.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
from numba import njit

from matcher.extract import fingerprint_params as xp
from matcher.extract.orientation import OrientationField

__all__ = ["ridge_period", "along_ridge_smooth", "enhance"]

Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

_PERIODS = np.arange(int(xp.MIN_RIDGE_PERIOD_PX), int(xp.MAX_RIDGE_PERIOD_PX) + 1, dtype=np.float64)


def _sparse_line_kernels(
    directions: list[tuple[float, float]], profiles: list[npt.NDArray[np.float64]], half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sparse kernels: taps ``profile[t]`` at ``t * direction``, t in [-half, half].

    Returns ``(dy, dx, w, count)``: int32/int32/float32 ``(k, max_taps)`` and int32 ``(k,)``.
    """
    kernels: list[dict[tuple[int, int], float]] = []
    for (cx, cy), profile in zip(directions, profiles, strict=True):
        taps: dict[tuple[int, int], float] = {}
        for i, t in enumerate(range(-half, half + 1)):
            px, py = t * cx, t * cy
            x0, y0 = math.floor(px), math.floor(py)
            fx, fy = px - x0, py - y0
            for ddy, ddx, wt in (
                (0, 0, (1 - fx) * (1 - fy)),
                (0, 1, fx * (1 - fy)),
                (1, 0, (1 - fx) * fy),
                (1, 1, fx * fy),
            ):
                if wt > 1e-9:
                    key = (y0 + ddy, x0 + ddx)
                    taps[key] = taps.get(key, 0.0) + wt * float(profile[i])
        kernels.append(taps)
    width = max(len(k) for k in kernels)
    dy = np.zeros((len(kernels), width), np.int32)
    dx = np.zeros((len(kernels), width), np.int32)
    w = np.zeros((len(kernels), width), np.float32)
    count = np.zeros(len(kernels), np.int32)
    for k, taps in enumerate(kernels):
        for j, ((oy, ox), wt) in enumerate(sorted(taps.items())):
            dy[k, j], dx[k, j], w[k, j] = oy, ox, wt
        count[k] = len(taps)
    return dy, dx, w, count


def _tables() -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    n = xp.ENHANCE_ORIENTATIONS
    angles = [math.pi * k / n for k in range(n)]
    t = np.arange(-xp.ENHANCE_ALONG_HALF_PX, xp.ENHANCE_ALONG_HALF_PX + 1, dtype=np.float64)
    g = np.exp(-(t**2) / (2 * xp.ENHANCE_ALONG_SIGMA_PX**2))
    g /= g.sum()
    along = _sparse_line_kernels(
        [(math.cos(a), math.sin(a)) for a in angles], [g] * n, xp.ENHANCE_ALONG_HALF_PX
    )
    t = np.arange(-xp.ENHANCE_ACROSS_HALF_PX, xp.ENHANCE_ACROSS_HALF_PX + 1, dtype=np.float64)
    profiles = []
    for period in _PERIODS:
        s = xp.ENHANCE_ACROSS_SIGMA_PERIODS * period
        env = np.exp(-(t**2) / (2 * s * s))
        h = env * np.cos(2 * math.pi * t / period)
        h -= env * (h.sum() / env.sum())  # zero mean: flat regions give 0
        h /= float(np.sum(h * np.cos(2 * math.pi * t / period)))  # unit gain at the period
        profiles.append(h)
    dirs = []
    profs = []
    for a in angles:
        for h in profiles:
            dirs.append((-math.sin(a), math.cos(a)))
            profs.append(h)
    across = _sparse_line_kernels(dirs, profs, xp.ENHANCE_ACROSS_HALF_PX)
    return along, across


_ALONG, _ACROSS = _tables()


@njit(nogil=True, cache=True)
def _sparse_filter(img, pad, index, active, dy, dx, w, count, out):  # type: ignore[no-untyped-def]
    """out[y, x] = sum_j w[k, j] img[pad + y + dy[k, j], pad + x + dx[k, j]] with k = index[y, x],
    where active; 0 elsewhere. ``img`` is the image padded by ``pad`` on every side."""
    h, wd = out.shape
    for y in range(h):
        for x in range(wd):
            if not active[y, x]:
                out[y, x] = 0.0
                continue
            k = index[y, x]
            s = np.float32(0.0)
            for j in range(count[k]):
                s += w[k, j] * img[pad + y + dy[k, j], pad + x + dx[k, j]]
            out[y, x] = s


def _filter(
    img: Float32Array,
    index: npt.NDArray[np.int32],
    active: BoolArray,
    table: tuple[np.ndarray, ...],
) -> Float32Array:
    dy, dx = table[0], table[1]
    pad = int(max(np.abs(dy).max(), np.abs(dx).max()))
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    out = np.empty_like(img)
    _sparse_filter(padded, pad, index, active, *table, out)  # type: ignore[call-arg]
    return out


@njit(nogil=True, cache=True)
def _block_periods(smooth, angle, mask, block, half, pmin, pmax, out):  # type: ignore[no-untyped-def]
    """Ridge period per block from zero crossings of a profile across the ridges; NaN if none."""
    h, w = smooth.shape
    nby, nbx = out.shape
    for by in range(nby):
        for bx in range(nbx):
            cy = min(by * block + block // 2, h - 1)
            cx = min(bx * block + block // 2, w - 1)
            out[by, bx] = np.nan
            if not mask[cy, cx]:
                continue
            nx = -math.sin(angle[cy, cx])
            ny = math.cos(angle[cy, cx])
            first = -1.0
            last = -1.0
            crossings = 0
            prev = 0.0
            for i in range(2 * half + 1):
                t = i - half
                px = cx + t * nx
                py = cy + t * ny
                if px < 0 or py < 0 or px > w - 1 or py > h - 1:
                    v = 0.0
                else:
                    x0 = min(int(px), w - 2)
                    y0 = min(int(py), h - 2)
                    fx = px - x0
                    fy = py - y0
                    v = (
                        smooth[y0, x0] * (1 - fx) * (1 - fy)
                        + smooth[y0, x0 + 1] * fx * (1 - fy)
                        + smooth[y0 + 1, x0] * (1 - fx) * fy
                        + smooth[y0 + 1, x0 + 1] * fx * fy
                    )
                if i > 0 and (prev < 0.0) != (v < 0.0) and prev != v:
                    pos = (t - 1) + prev / (prev - v)
                    if first < -0.5 and crossings == 0:
                        first = pos
                    last = pos
                    crossings += 1
                prev = v
            if crossings >= 3:
                period = 2.0 * (last - first) / (crossings - 1)
                if pmin <= period <= pmax:
                    out[by, bx] = period


def _orientation_bins(angle: Float32Array) -> npt.NDArray[np.int32]:
    n = xp.ENHANCE_ORIENTATIONS
    return (np.rint(angle * (n / math.pi)).astype(np.int32) % n).astype(np.int32)


def along_ridge_smooth(
    normalised: Float32Array, field: OrientationField, active: BoolArray
) -> Float32Array:
    """Step 1: Gaussian average along the local ridge direction where ``active`` (0 elsewhere)."""
    return _filter(normalised, _orientation_bins(field.angle), active, _ALONG)


def ridge_period(
    smooth: Float32Array, field: OrientationField, mask: BoolArray
) -> tuple[Float32Array, float]:
    """Step 2: ridge period in pixels per pixel (float32 ``(H, W)``), from the along-ridge smoothed
    image, and the fraction of foreground blocks where a plausible period was measured (low on
    anything that is not a fingerprint). Where nothing could be measured, the image median (or
    9 px, a typical adult period)."""
    b = xp.PERIOD_BLOCK_PX
    h, w = smooth.shape
    blocks = np.empty((-(-h // b), -(-w // b)), np.float32)
    _block_periods(
        smooth,
        field.angle,
        mask,
        b,
        xp.PERIOD_PROFILE_HALF_PX,
        xp.MIN_RIDGE_PERIOD_PX,
        xp.MAX_RIDGE_PERIOD_PX,
        blocks,
    )
    valid = np.isfinite(blocks)
    centres = mask[
        np.minimum(np.arange(blocks.shape[0]) * b + b // 2, h - 1)[:, None],
        np.minimum(np.arange(blocks.shape[1]) * b + b // 2, w - 1)[None, :],
    ]
    measured = float(valid.sum()) / max(1, int(centres.sum()))
    default = float(np.median(blocks[valid])) if valid.sum() >= 4 else 9.0
    values = np.where(valid, blocks, 0.0).astype(np.float32)
    weights = valid.astype(np.float32)
    s = xp.PERIOD_SMOOTH_BLOCKS
    num = cv2.GaussianBlur(values, (0, 0), s, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(weights, (0, 0), s, borderType=cv2.BORDER_CONSTANT)
    smoothed = np.where(den > 0.05, num / np.maximum(den, 1e-6), default).astype(np.float32)
    # Block centres sit at b/2 + i b: resize maps them onto the pixel grid.
    period = np.asarray(cv2.resize(smoothed, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    return period, measured


def enhance(
    smooth: Float32Array, field: OrientationField, period: Float32Array, mask: BoolArray
) -> Float32Array:
    """Step 3: across-ridge Gabor pass on the along-ridge smoothed image, inside ``mask``.

    float32 ``(H, W)``, about -1 on ridge centres (dark) and +1 in valleys; 0 outside the mask.
    """
    p = np.clip(np.rint(period) - _PERIODS[0], 0, len(_PERIODS) - 1).astype(np.int32)
    index = (_orientation_bins(field.angle) * len(_PERIODS) + p).astype(np.int32)
    return _filter(smooth, index, mask, _ACROSS)

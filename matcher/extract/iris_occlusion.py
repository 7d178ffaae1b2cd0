"""Eyelids, eyelashes and reflections in the polar image: which samples are iris.

Algorithm steps
1. Iris statistics from a region eyelids rarely reach (lateral directions, inner 10-60 % of the
   band): median and robust sigma (1.4826 x median absolute deviation) of the blurred polar image.
   Everything below is relative to these, so no grey level is tied to one camera's exposure.
2. Outliers: a sample is *bright* (eyelid skin, sclera, reflection) when its blurred value is
   more than ``_K_BRIGHT`` sigmas above the median, *dark* (eyelashes, their shadows) when its
   raw value is more than ``_K_DARK`` sigmas below, or *rough* (a lash crossing the iris, seen
   as a local standard deviation well above the iris's own; cf. the local-variance lash test of
   W. Kong and D. Zhang, ISIMP 2001).
3. Eyelids: in each column of the upper and lower halves, the radial cut that best separates an
   outer run of outliers from the iris below it (maximising the outlier excess beyond the cut,
   a one-dimensional optimal split); the cuts are median-filtered across columns so the eyelid
   boundary is a smooth curve, then everything beyond it is masked.
4. The scattered outliers are masked too, grown by one sample.
5. Upper lid: lashes hanging over the iris are thin, low-contrast strokes that the per-sample
   tests miss in part, and, being radial and alike in every eye, they make impostor codes agree
   (measured on IITD: impostor Hamming distances down to 0.21 from lash areas). When the outer
   top of the iris looks unlike the iris (:func:`_lid_present`), the whole top sector
   beyond ``UPPER_LID_INNER_T`` of the band is masked, as Daugman's and Masek's systems mask a
   fixed top sector; an open eye keeps it.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from matcher.extract.iris_normalize import polar_grid
from matcher.extract.iris_params import (
    UPPER_LID_INNER_T,
    UPPER_LID_SECTOR_SIN,
    UPPER_LID_TEST_SHARE,
)

F32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

_K_BRIGHT = 3.5
_K_DARK = 4.5
_K_ROUGH = 4.0
#: An outer run counts as eyelid where at least this share of its samples are outliers.
_EYELID_OUTLIER_SHARE = 0.5
#: Median filter across columns for the eyelid cut, as a fraction of the circle.
_EYELID_SMOOTH_FRAC = 1.0 / 24.0
#: Looser outlier thresholds (in sigmas, and local-sd excess) of the upper-lid presence test.
_K_LID_TEST = 2.5


def _iris_statistics(
    smooth: F32Array, valid: BoolArray, t: npt.NDArray[np.float64], sin_t: npt.NDArray[np.float64]
) -> tuple[float, float]:
    ref = valid & ((t >= 0.1) & (t <= 0.6))[:, None] & (np.abs(sin_t) < 0.5)[None, :]
    vals = smooth[ref] if ref.sum() >= 32 else smooth[valid]
    if vals.size == 0:
        return float(np.median(smooth)), 1.0
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med)))
    return med, max(1.4826 * mad, 1.5)


def _lid_present(
    smooth: F32Array,
    polar: F32Array,
    local_sd: F32Array,
    valid: BoolArray,
    t: npt.NDArray[np.float64],
    med: float,
    sigma: float,
    ref_sd: float,
    sector: BoolArray,
) -> bool:
    """Whether an eyelid or its lashes reach into the outer part of the columns ``sector``.

    Lid skin is brighter than the iris, lashes darker or rougher: the share of samples that look
    unlike the iris (looser thresholds than the per-sample masking) in the outer half of the top
    sector decides. An open eye scores a few percent; a lid, even a partly lifted one, far more.
    """
    top = (t > 0.5)[:, None] & sector[None, :]
    k = _K_LID_TEST
    unlike = (
        (smooth > med + k * sigma)
        | (polar < med - 1.3 * k * sigma)
        | (local_sd > ref_sd * (1.0 + k))
        | ~valid
    )
    return bool(unlike[top].mean() > UPPER_LID_TEST_SHARE)


def _circular_median(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.int64]:
    half = max(1, width // 2)
    pad = np.concatenate([values[-half:], values, values[:half]]).astype(np.uint8)
    out = cv2.medianBlur(pad[None, :], 5)[0] if half <= 2 else None
    if out is None:
        k = 2 * half + 1
        idx = np.arange(values.size)[:, None] + np.arange(k)[None, :]
        out = np.median(pad[idx], axis=1)
        return np.asarray(out, np.int64)
    return out[half:-half].astype(np.int64)


def occlusion_mask(polar: F32Array, valid: BoolArray) -> BoolArray:
    """Valid iris samples of ``polar`` ``(n_radial, n_angular)``, given the in-image ``valid``."""
    n_r, n_a = polar.shape
    t, theta = polar_grid(n_r, n_a)
    sin_t = np.sin(theta)
    wrap = np.concatenate([polar[:, -4:], polar, polar[:, :4]], axis=1)
    smooth = np.asarray(cv2.GaussianBlur(wrap, (0, 0), 1.0), np.float32)[:, 4:-4]
    med, sigma = _iris_statistics(smooth, valid, t, sin_t)
    mean = cv2.blur(wrap, (5, 3))[:, 4:-4]
    sq = cv2.blur(wrap * wrap, (5, 3))[:, 4:-4]
    local_sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    ref_sd = float(np.median(local_sd[valid])) if valid.any() else 1.0
    bright = smooth > med + _K_BRIGHT * sigma
    dark = polar < med - _K_DARK * sigma
    rough = local_sd > ref_sd * (1.0 + _K_ROUGH)
    outlier = bright | dark | rough | ~valid

    # Eyelid cut per column: maximise sum over rows beyond the cut of (outlier - share).
    gain = outlier.astype(np.float64) - _EYELID_OUTLIER_SHARE
    suffix = np.cumsum(gain[::-1], axis=0)[::-1]  # suffix[i] = sum of gain[i:]
    cut = np.where(suffix.max(axis=0) > 1.0, np.argmax(suffix, axis=0), n_r)
    lid_cols = np.abs(sin_t) > 0.35
    cut = np.where(lid_cols, cut, n_r)
    width = max(3, round(_EYELID_SMOOTH_FRAC * n_a))
    cut = _circular_median(cut.astype(np.int64), width)
    cut = np.where(lid_cols, cut, n_r)
    rows = np.arange(n_r)[:, None]
    keep = valid & (rows < cut[None, :])
    straight_up = sin_t < -0.8  # +-37 degrees about the top, where the lid sags lowest
    if _lid_present(smooth, polar, local_sd, valid, t, med, sigma, ref_sd, straight_up):
        keep &= ~((sin_t < -UPPER_LID_SECTOR_SIN)[None, :] & (t > UPPER_LID_INNER_T)[:, None])
    spots = cv2.dilate((bright | dark | rough).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(
        bool
    )
    return keep & ~spots

"""Pupil boundary: darkest round blob, then an ellipse fitted to its radial edge points.

Algorithm steps
1. A grey closing with a disc about 2.5 % of the image side erases eyelashes and other thin
   dark structures; a light blur follows. This runs on a copy about 120 px on its short side.
2. Dark blobs at a ladder of thresholds between the darkest level and the median, in the image
   as captured (filling reflections turns bright skin between lashes into dark patches):
   every connected component whose largest inscribed disc (distance transform) lies in the
   plausible pupil range is scored by how isolated that disc is (the share of a ring just
   outside it that is not in the blob: the iris surrounds a pupil, while a lash mass or a dark
   image corner goes on past its disc), its size and darkness, halved when the disc is cut by
   the image border. A good blob nested in the best one at a pupil-to-iris ratio is the pupil
   inside a dark iris. The pupil's inscribed disc seeds the boundary (lashes glued to the pupil
   add area but do not move the disc). Scoring the threshold ladder makes the step independent
   of the camera's exposure.
3. Refinement on gradients (twice, re-centring each time): along 96 rays from the centre, the
   strongest dark-to-bright radial derivative within 0.6-1.5 seed radii is an edge point; a
   robust circle (outliers from eyelids, lashes and reflections rejected), then an ellipse when
   the inliers go round the pupil (cf. the ellipse pupil models of Z. He, T. Tan, Z. Sun, X. Qiu,
   "Toward accurate and fast iris segmentation for iris biometrics", IEEE TPAMI 31(9), 2009).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from matcher.errors import QualityTooLow
from matcher.extract.iris_boundary import Ellipse, F32Array, circle, fit_ellipse_or_circle
from matcher.extract.iris_boundary import polar_sample as _polar
from matcher.extract.iris_params import (
    LASH_CLOSING_FRAC,
    PUPIL_EDGE_BAND,
    PUPIL_IRIS_RATIO_RANGE,
    PUPIL_MAX_RADIUS_FRAC,
    PUPIL_MIN_RADIUS_FRAC,
    PUPIL_THRESHOLDS,
)

U8Array = npt.NDArray[np.uint8]

#: Short side of the copy the blob search runs on, px (the boundary is refined at full size).
_SEED_SIDE_PX = 120
_RAYS = 96
#: Pupil radius (fraction of the short side) below which the seed score starts to shrink.
_TYPICAL_PUPIL_FRAC = 0.08


def _fill_holes(binary: U8Array) -> U8Array:
    """``binary`` (0/1) with every background region not connected to the border set to 1.

    Reflections larger than the filling step leave bright islands in the pupil; a blob with holes
    would have a far smaller inscribed disc than the pupil.
    """
    h, w = binary.shape
    flood = np.zeros((h + 2, w + 2), np.uint8)
    flood[1:-1, 1:-1] = binary
    mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 2)
    return (flood[1:-1, 1:-1] != 2).astype(np.uint8)


def _ring_outside(labels: npt.NDArray[np.int32], j: int, cx: int, cy: int, r: float) -> float:
    """Share of the in-image ring ``r + 1 .. 1.4 r + 2`` about ``(cx, cy)`` not labelled ``j``."""
    h, w = labels.shape
    outer = 1.4 * r + 2.0
    x0, x1 = max(0, int(cx - outer)), min(w, int(cx + outer) + 1)
    y0, y1 = max(0, int(cy - outer)), min(h, int(cy + outer) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    ring = (d2 >= (r + 1.0) ** 2) & (d2 <= outer**2)
    n = int(ring.sum())
    if n == 0:
        return 0.0
    return float(np.count_nonzero(labels[y0:y1, x0:x1][ring] != j)) / n


def _pupil_of(
    found: list[tuple[float, float, float, float]],
) -> tuple[float, float, float, float] | None:
    """The pupil among the blobs ``(score, cx, cy, r)``: the best, or a good one nested in it.

    A dark iris can itself be a round, isolated blob at a higher threshold, and with a small
    pupil it outscores it on size; a round blob inside it, of a pupil-to-iris ratio in range, is
    the pupil then. Ties keep the earliest (darkest threshold).
    """
    if not found:
        return None
    best = max(found, key=lambda c: c[0])
    lo_ratio, hi_ratio = PUPIL_IRIS_RATIO_RANGE
    nested = [
        c
        for c in found
        if c[0] >= 0.5 * best[0]
        and lo_ratio * best[3] <= c[3] <= hi_ratio * best[3]
        and math.hypot(c[1] - best[1], c[2] - best[2]) < best[3] - c[3]
    ]
    return max(nested, key=lambda c: c[0]) if nested else best


def _seed(image: U8Array) -> tuple[float, float, float]:
    """Centre and equivalent radius of the best dark round blob, in ``image`` pixels."""
    h, w = image.shape
    scale = min(1.0, _SEED_SIDE_PX / min(h, w))
    small = (
        cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
        if scale < 1.0
        else image
    )
    sh, sw = small.shape
    side = min(sh, sw)
    k = max(3, round(LASH_CLOSING_FRAC * side) | 1)
    closed = cv2.morphologyEx(
        small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    closed = cv2.GaussianBlur(closed, (0, 0), max(0.8, side / 200.0))
    hist = np.bincount(closed.ravel(), minlength=256)
    cdf = np.cumsum(hist) / closed.size
    lo = float(np.searchsorted(cdf, 0.001))
    med = float(np.searchsorted(cdf, 0.5))
    if med - lo < 8:
        raise QualityTooLow("no pupil found: the image has no dark region against its median")
    rmin = max(1.5, PUPIL_MIN_RADIUS_FRAC * side)
    rmax = PUPIL_MAX_RADIUS_FRAC * side
    found: list[tuple[float, float, float, float]] = []
    for i in range(1, PUPIL_THRESHOLDS + 1):
        t = lo + (med - lo) * 0.6 * i / PUPIL_THRESHOLDS
        binary = _fill_holes((closed <= t).astype(np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        dist: npt.NDArray[np.float32] | None = None
        areas = stats[1:, cv2.CC_STAT_AREA]
        plausible = (areas >= math.pi * rmin * rmin) & (areas <= 2.0 * math.pi * rmax * rmax)
        for j in np.flatnonzero(plausible) + 1:
            x0, y0, bw, bh, area = (int(v) for v in stats[j])
            if dist is None:
                dist = np.asarray(cv2.distanceTransform(binary, cv2.DIST_L2, 5), np.float32)
            sub = np.where(
                labels[y0 : y0 + bh, x0 : x0 + bw] == j, dist[y0 : y0 + bh, x0 : x0 + bw], 0
            )
            k_max = int(np.argmax(sub))
            r_in = float(sub.flat[k_max])
            if not rmin <= r_in <= rmax:
                continue
            # The inscribed disc is the pupil's core; lashes or an eyelid glued to the blob add
            # area but do not move it. Score: how much of a ring just outside that disc is
            # outside the blob (a pupil is isolated by the brighter iris all round, except where
            # lashes touch it; a dark corner or lash mass goes on past the disc), size (tiny
            # round specks are lash gaps), a disc cut by the image border, and darkness.
            by, bx = divmod(k_max, bw)
            cx_s, cy_s = x0 + bx, y0 + by
            isolated = _ring_outside(np.asarray(labels, np.int32), int(j), cx_s, cy_s, r_in)
            size = min(1.0, r_in / (_TYPICAL_PUPIL_FRAC * side))
            border = min(cx_s, cy_s, sw - 1 - cx_s, sh - 1 - cy_s) < r_in
            score = isolated**2 * size * (0.5 if border else 1.0)
            score *= 1.0 - 0.5 * (t - lo) / (med - lo)
            found.append((score, float(cx_s), float(cy_s), r_in))
    best = _pupil_of(found)
    if best is None or best[0] < 0.1:
        raise QualityTooLow("no pupil found: no dark round region of plausible size")
    _, cx, cy, r = best
    inv = 1.0 / scale
    return (cx + 0.5) * inv - 0.5, (cy + 0.5) * inv - 0.5, r * inv


def _edge_points(
    smooth: F32Array, cx: float, cy: float, r: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Strongest dark-to-bright radial edge on each ray, within the pupil edge band."""
    lo, hi = PUPIL_EDGE_BAND
    step = max(0.25, r / 80.0)
    radii = np.arange(lo * r, hi * r, step)
    thetas = np.linspace(0.0, 2 * math.pi, _RAYS, endpoint=False)
    polar, valid = _polar(smooth, cx, cy, thetas, radii)
    deriv = np.zeros_like(polar)
    deriv[:, 1:-1] = polar[:, 2:] - polar[:, :-2]
    deriv[~valid] = 0.0
    deriv[:, [0, -1]] = 0.0
    j = np.argmax(deriv, axis=1)
    strength = deriv[np.arange(_RAYS), j]
    ok = (
        strength > 0.25 * float(np.median(strength[strength > 0]))
        if (strength > 0).any()
        else (strength > 0)
    )
    rr = radii[j]
    return (cx + rr * np.cos(thetas))[ok], (cy + rr * np.sin(thetas))[ok]


def detect_pupil(image: U8Array, raw: U8Array | None = None) -> Ellipse:
    """The pupil boundary in ``image`` (grey uint8, reflections already filled).

    ``raw``: the same image before reflections were filled, where the seed blob is searched
    (default ``image``). Filling replaces bright skin seen between eyelashes with the lashes'
    own dark level, which can form dark discs darker than the pupil; in the raw image a
    reflection inside the pupil is only a hole, which the blob search fills.

    Raises :class:`~matcher.errors.QualityTooLow` when no plausible pupil is found.
    """
    cx, cy, r = _seed(image if raw is None else raw)
    side = min(image.shape)
    smooth = cv2.GaussianBlur(image, (0, 0), max(0.7, r / 25.0)).astype(np.float32)
    pupil = circle(cx, cy, r)
    for _ in range(2):
        xs, ys = _edge_points(smooth, pupil.cx, pupil.cy, pupil.r)
        fitted = fit_ellipse_or_circle(xs, ys)
        if fitted is None:
            break
        if not PUPIL_MIN_RADIUS_FRAC * side * 0.7 <= fitted.r <= PUPIL_MAX_RADIUS_FRAC * side * 1.3:
            break
        pupil = fitted
    return pupil

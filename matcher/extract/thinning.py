"""Binarisation, thinning to a one-pixel skeleton, and the crossing number of skeleton pixels.

Algorithm steps:

1. Binarise the enhanced image: a ridge pixel is a foreground pixel with a negative enhanced value
   (ridges are dark). Ridge fragments and valley holes below a small area are removed (they would
   make spurious endings, islands and lakes).
2. Thinning: T. Y. Zhang, C. Y. Suen, "A fast parallel algorithm for thinning digital patterns",
   CACM 27(3):236-239, 1984: two sub-iterations that peel border pixels from the south-east and
   the north-west sides until nothing changes.
3. Staircase removal: Zhang-Suen leaves pixels that are the corner of an "L" between two
   4-neighbours; such a pixel is redundant for 8-connectivity and would read as a false
   bifurcation. It is deleted, in raster order, when it is 8-simple (Yokoi connectivity number 1,
   S. Yokoi, J. Toriwaki, T. Fukumura, CGIP 4:63-73, 1975) and not an end point.
4. Crossing number (Rutovitz; Maltoni et al., *Handbook*, section 3.7.1): half the number of
   0/1 changes round the 8 neighbours: 1 at a ridge ending, 2 inside a ridge, 3 at a
   bifurcation.

The numba kernels have slow numpy references (``*_reference``) that the tests compare against.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from numba import njit

from matcher.errors import InvalidTemplate
from matcher.extract import fingerprint_params as xp

__all__ = [
    "binarise",
    "thin",
    "thin_reference",
    "crossing_numbers",
    "crossing_numbers_reference",
]

UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

# Ring of the 8 neighbours, clockwise from north: P2..P9 in Zhang and Suen's notation.
_RING_DY = np.array([-1, -1, 0, 1, 1, 1, 0, -1], np.int64)
_RING_DX = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)


def _drop_small(binary: npt.NDArray[np.uint8], min_area: int) -> npt.NDArray[np.uint8]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels].astype(np.uint8)


def binarise(enhanced: npt.NDArray[np.float32], mask: BoolArray) -> BoolArray:
    """Step 1: boolean ridge map (True on ridges) of an enhanced image inside ``mask``."""
    ridges = ((enhanced < 0) & mask).astype(np.uint8)
    ridges = _drop_small(ridges, xp.MIN_RIDGE_AREA_PX2)
    holes = _drop_small(((1 - ridges) & mask).astype(np.uint8), xp.MIN_HOLE_AREA_PX2)
    return (mask & (holes == 0)).astype(bool)


@njit(nogil=True, inline="always")
def _ring(img, y, x, p):  # type: ignore[no-untyped-def]
    p[0] = img[y - 1, x]
    p[1] = img[y - 1, x + 1]
    p[2] = img[y, x + 1]
    p[3] = img[y + 1, x + 1]
    p[4] = img[y + 1, x]
    p[5] = img[y + 1, x - 1]
    p[6] = img[y, x - 1]
    p[7] = img[y - 1, x - 1]


@njit(nogil=True, cache=True)
def _thin(img, max_iterations):  # type: ignore[no-untyped-def]
    """Zhang-Suen (at most ``max_iterations`` passes) then staircase removal, in place on a uint8
    0/1 image with a zero border."""
    h, w = img.shape
    p = np.zeros(8, np.uint8)
    ys = np.empty(h * w, np.int32)
    xs = np.empty(h * w, np.int32)
    changed = True
    iterations = 0
    while changed and iterations < max_iterations:
        iterations += 1
        changed = False
        for sub in range(2):
            n = 0
            for y in range(1, h - 1):
                for x in range(1, w - 1):
                    if img[y, x] == 0:
                        continue
                    _ring(img, y, x, p)
                    b = 0
                    a = 0
                    for i in range(8):
                        b += p[i]
                        if p[i] == 0 and p[(i + 1) % 8] == 1:
                            a += 1
                    if b < 2 or b > 6 or a != 1:
                        continue
                    if sub == 0:
                        ok = p[0] * p[2] * p[4] == 0 and p[2] * p[4] * p[6] == 0
                    else:
                        ok = p[0] * p[2] * p[6] == 0 and p[0] * p[4] * p[6] == 0
                    if ok:
                        ys[n] = y
                        xs[n] = x
                        n += 1
            for i in range(n):
                img[ys[i], xs[i]] = 0
            if n > 0:
                changed = True
    # Staircase removal, sequential in raster order.
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if img[y, x] == 0:
                continue
            _ring(img, y, x, p)
            # p: N, NE, E, SE, S, SW, W, NW. L corners between two 4-neighbours.
            corner = (
                (p[0] != 0 and p[2] != 0)
                or (p[2] != 0 and p[4] != 0)
                or (p[4] != 0 and p[6] != 0)
                or (p[6] != 0 and p[0] != 0)
            )
            if not corner:
                continue
            b = 0
            for i in range(8):
                b += p[i]
            if b < 2:
                continue
            # Yokoi 8-connectivity number on the complement, 4-neighbours at even ring indices.
            c = 0
            for k in range(0, 8, 2):
                # q = 1 - p (complement); c += q0 - q0 q1 q2, without unsigned arithmetic.
                if p[k] == 0 and not (p[(k + 1) % 8] == 0 and p[(k + 2) % 8] == 0):
                    c += 1
            if c == 1:
                img[y, x] = 0


def _check_binary(ridges: npt.NDArray[np.generic]) -> UInt8Array:
    a = np.asarray(ridges)
    if a.ndim != 2 or a.dtype.kind not in "biu":
        raise InvalidTemplate(f"expected a 2-D boolean or integer image, got {a.dtype} {a.shape}")
    padded = np.zeros((a.shape[0] + 2, a.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = a != 0
    return padded


def thin(ridges: npt.NDArray[np.generic]) -> UInt8Array:
    """Steps 2-3: one-pixel, 8-connected skeleton (uint8 0/1, same shape) of a binary image."""
    img = _check_binary(ridges)
    _thin(img, xp.MAX_THINNING_ITERATIONS)
    return img[1:-1, 1:-1].copy()


@njit(nogil=True, cache=True)
def _crossing_numbers(img, out):  # type: ignore[no-untyped-def]
    h, w = img.shape
    p = np.zeros(8, np.uint8)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if img[y, x] == 0:
                out[y - 1, x - 1] = 0
                continue
            _ring(img, y, x, p)
            c = 0
            for i in range(8):
                if p[i] != p[(i + 1) % 8]:
                    c += 1
            out[y - 1, x - 1] = c // 2


def crossing_numbers(skeleton: npt.NDArray[np.generic]) -> UInt8Array:
    """Step 4: uint8 ``(H, W)`` crossing number of each skeleton pixel (0 off the skeleton).
    Pixels outside the image count as background."""
    img = _check_binary(skeleton)
    out = np.empty((img.shape[0] - 2, img.shape[1] - 2), np.uint8)
    _crossing_numbers(img, out)
    return out


# ------------------------------------------------------------------ slow numpy references


def _neighbours(img: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    h, w = img.shape
    return [
        img[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
        for dy, dx in zip(_RING_DY.tolist(), _RING_DX.tolist(), strict=True)
    ]


def thin_reference(ridges: npt.NDArray[np.generic]) -> UInt8Array:
    """Slow reference of :func:`thin`: vectorised Zhang-Suen, then a Python-loop staircase pass."""
    img = _check_binary(ridges).astype(np.int64)
    changed = True
    iterations = 0
    while changed and iterations < xp.MAX_THINNING_ITERATIONS:
        iterations += 1
        changed = False
        for sub in range(2):
            p = _neighbours(img)
            centre = img[1:-1, 1:-1]
            b = sum(p)
            a = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.int64) for i in range(8))
            if sub == 0:
                ok = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                ok = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            delete = (centre == 1) & (b >= 2) & (b <= 6) & (a == 1) & ok
            if delete.any():
                centre[delete] = 0
                changed = True
    h, w = img.shape
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            if img[y, x] == 0:
                continue
            q = [int(img[y + dy, x + dx]) for dy, dx in zip(_RING_DY, _RING_DX, strict=True)]
            corner = any(q[k] and q[(k + 2) % 8] for k in (0, 2, 4, 6))
            if not corner or sum(q) < 2:
                continue
            c = sum(
                (1 - q[k]) - (1 - q[k]) * (1 - q[(k + 1) % 8]) * (1 - q[(k + 2) % 8])
                for k in (0, 2, 4, 6)
            )
            if c == 1:
                img[y, x] = 0
    return img[1:-1, 1:-1].astype(np.uint8)


def crossing_numbers_reference(skeleton: npt.NDArray[np.generic]) -> UInt8Array:
    """Slow reference of :func:`crossing_numbers` (vectorised numpy)."""
    img = _check_binary(skeleton).astype(np.int64)
    p = _neighbours(img)
    cn = sum(np.abs(p[i] - p[(i + 1) % 8]) for i in range(8)) // 2
    return np.where(img[1:-1, 1:-1] == 1, cn, 0).astype(np.uint8)

"""Minutiae from a ridge skeleton: detection, skeleton tracing, false-minutiae removal, direction.

Algorithm steps (Maltoni, Maio, Jain, Prabhakar, *Handbook of Fingerprint Recognition*, 2nd ed.,
sections 3.7-3.8; the structural post-processing of Q. Xiao, H. Raafat, "Fingerprint image
postprocessing: a combined statistical and structural approach", Pattern Recognition 24(10),
1991, and of N. Ratha, S. Chen, A. K. Jain, "Adaptive flow orientation-based feature extraction
in fingerprint images", Pattern Recognition 28(11), 1995):

1. Candidates: skeleton pixels with crossing number 1 (ridge ending) or 3 (bifurcation).
2. Tracing: from each candidate, each branch (one for an ending, three for a bifurcation) is
   followed along the skeleton for a few ridge periods, recording where it is after
   ``DIRECTION_TRACE_PX`` steps and whether it runs into another candidate.
3. Structural removal: an ending whose ridge reaches a bifurcation within a short path is a
   spur (both go); two endings joined by a short path are a ridge fragment; two bifurcations
   joined by a short path are a bridge or a lake (hole).
4. Direction (ISO/IEC 19794-2): a ridge ending points from the ending into its ridge; a
   bifurcation points into the valley between its two branches, i.e. along the bisector of the two
   branches closest in angle. The traced direction picks the sense; the angle itself is the
   smoothed orientation field there, which is far less noisy than a few skeleton pixels.
5. Broken ridges: two endings close together that face each other across the gap, along the
   ridge flow, are one ridge with a break (both go).
6. Minutiae too close to the edge of the foreground (or of the image) are dropped: that is where
   ridges are cut off by the segmentation; then minutiae in dense clusters (noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from numba import njit

from matcher.extract import fingerprint_params as xp
from matcher.extract.orientation import OrientationField
from matcher.extract.thinning import crossing_numbers

__all__ = ["Minutiae", "detect_minutiae"]

KIND_ENDING = 1
KIND_BIFURCATION = 2


@dataclass(frozen=True, eq=False)
class Minutiae:
    """Minutiae at the working resolution: ``x, y`` float64 pixels (y down); ``angle`` float64
    radians in pixel coordinates, direction ``(cos angle, sin angle)`` (ISO theta = -angle);
    ``kind`` uint8 (1 ending, 2 bifurcation); ``border_distance`` float64 px to the foreground
    edge."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    angle: npt.NDArray[np.float64]
    kind: npt.NDArray[np.uint8]
    border_distance: npt.NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


_DY = np.array([-1, -1, 0, 1, 1, 1, 0, -1], np.int64)
_DX = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)


@njit(nogil=True, cache=True)
def _trace(skel, ids, visit, stamp, self_id, y, x, max_steps, dir_steps, dy, dx, out):  # type: ignore[no-untyped-def]
    """Follow the skeleton from (y, x), whose predecessors are already stamped in ``visit``.

    ``out`` (int64, 4): y, x after ``dir_steps`` steps (or the last pixel reached), the steps
    taken, and the id of the candidate run into (-1: none within ``max_steps``, -2: the path
    forked or ended without a candidate).
    """
    cy = y
    cx = x
    steps = 1
    visit[cy, cx] = stamp
    out[0] = cy
    out[1] = cx
    out[3] = -1
    while True:
        hit = ids[cy, cx]
        if hit >= 0 and hit != self_id:
            out[3] = hit
            break
        if steps <= dir_steps:
            out[0] = cy
            out[1] = cx
        if steps >= max_steps:
            break
        count = 0
        ny = -1
        nx = -1
        four = 0
        fy = -1
        fx = -1
        found = -1
        for k in range(8):
            yy = cy + dy[k]
            xx = cx + dx[k]
            if skel[yy, xx] == 0 or visit[yy, xx] == stamp:
                continue
            if ids[yy, xx] >= 0 and ids[yy, xx] != self_id:
                found = k
            count += 1
            ny = yy
            nx = xx
            if k % 2 == 0:
                four += 1
                fy = yy
                fx = xx
        if found >= 0:
            ny = cy + dy[found]
            nx = cx + dx[found]
        elif count == 0:
            out[3] = -2
            break
        elif count > 1:
            # A 4-neighbour and a diagonal one touching it are one path, not a fork.
            if count == 2 and four == 1:
                ny = fy
                nx = fx
            else:
                out[3] = -2
                break
        # Stamp every neighbour so the path never steps back across a diagonal.
        for k in range(8):
            yy = cy + dy[k]
            xx = cx + dx[k]
            if skel[yy, xx] != 0 and ids[yy, xx] < 0:
                visit[yy, xx] = stamp
        cy = ny
        cx = nx
        visit[cy, cx] = stamp
        steps += 1
    out[2] = steps


@njit(nogil=True, cache=True)
def _trace_all(skel, cn, max_steps, dir_steps, dy, dx):  # type: ignore[no-untyped-def]
    """Candidates and their traced branches. ``skel``: uint8 0/1 with a 1-pixel zero border;
    ``cn``: crossing numbers of the same padded grid."""
    h, w = skel.shape
    n = 0
    for y in range(h):
        for x in range(w):
            if cn[y, x] == 1 or cn[y, x] == 3:
                n += 1
    ys = np.empty(n, np.int64)
    xs = np.empty(n, np.int64)
    kinds = np.empty(n, np.uint8)
    ids = np.full((h, w), -1, np.int32)
    i = 0
    for y in range(h):
        for x in range(w):
            if cn[y, x] == 1 or cn[y, x] == 3:
                ys[i] = y
                xs[i] = x
                kinds[i] = 1 if cn[y, x] == 1 else 2
                ids[y, x] = i
                i += 1
    branch = np.full((n, 3, 4), -1, np.int64)  # y, x at dir_steps, steps, hit
    visit = np.zeros((h, w), np.int32)
    out = np.empty(4, np.int64)
    stamp = 0
    for i in range(n):
        y = ys[i]
        x = xs[i]
        # Branch starts: one pixel per run of skeleton pixels round the ring (prefer a
        # 4-neighbour within a run).
        b = 0
        k0 = 0
        for k in range(8):  # start the scan just after a background ring pixel
            if skel[y + dy[k], x + dx[k]] == 0:
                k0 = k
                break
        run_start = -1
        best = -1
        for j in range(1, 9):
            k = (k0 + j) % 8
            on = skel[y + dy[k], x + dx[k]] != 0
            if on:
                if run_start < 0:
                    run_start = k
                    best = k
                elif k % 2 == 0 and best % 2 == 1:
                    best = k
            if (not on or j == 8) and run_start >= 0:
                if b < 3:
                    stamp += 1
                    visit[y, x] = stamp
                    for kk in range(8):
                        if skel[y + dy[kk], x + dx[kk]] != 0:
                            visit[y + dy[kk], x + dx[kk]] = stamp
                    _trace(
                        skel,
                        ids,
                        visit,
                        stamp,
                        i,
                        y + dy[best],
                        x + dx[best],
                        max_steps,
                        dir_steps,
                        dy,
                        dx,
                        out,
                    )
                    for q in range(4):
                        branch[i, b, q] = out[q]
                b += 1
                run_start = -1
    return ys, xs, kinds, branch


@njit(nogil=True, cache=True)
def _pairs_kernel(x, y, order, r, out_a, out_b):  # type: ignore[no-untyped-def]
    """Pairs (i < j) with distance <= r, by a sweep over points sorted by y; returns the count
    written, or -1 when the output buffers are too small."""
    n = order.shape[0]
    k = 0
    r2 = r * r
    for p in range(n):
        i = order[p]
        for q in range(p + 1, n):
            j = order[q]
            if y[j] - y[i] > r:
                break
            if (x[j] - x[i]) ** 2 + (y[j] - y[i]) ** 2 <= r2:
                if k >= out_a.shape[0]:
                    return -1
                out_a[k] = min(i, j)
                out_b[k] = max(i, j)
                k += 1
    return k


def _pairs_within(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], r: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs (a, b), a < b, of points at most ``r`` apart; O(n log n + pairs)."""
    order = np.argsort(y, kind="stable")
    size = 8 * x.shape[0] + 16
    while True:
        out_a = np.empty(size, np.int64)
        out_b = np.empty(size, np.int64)
        k = _pairs_kernel(x, y, order, float(r), out_a, out_b)
        if k >= 0:
            return out_a[:k], out_b[:k]
        size *= 4


def _angle_diff(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """a - b wrapped into [-pi, pi)."""
    return np.mod(a - b + math.pi, 2 * math.pi) - math.pi


def detect_minutiae(
    skeleton: npt.NDArray[np.uint8], field: OrientationField, mask: npt.NDArray[np.bool_]
) -> Minutiae:
    """Steps 1-6 on a uint8 0/1 skeleton ``(H, W)`` with its orientation field and foreground
    mask (all at 500 dpi). Returns the kept minutiae (possibly none)."""
    h, w = skeleton.shape
    skel = np.zeros((h + 2, w + 2), np.uint8)
    skel[1:-1, 1:-1] = skeleton != 0
    cn = np.zeros_like(skel)
    cn[1:-1, 1:-1] = crossing_numbers(skeleton)
    ys, xs, kinds, branch = _trace_all(skel, cn, xp.MAX_TRACE_PX, xp.DIRECTION_TRACE_PX, _DY, _DX)
    n = ys.shape[0]
    keep = np.ones(n, bool)
    # Step 3: structural removal, on the path lengths to the candidate each branch ran into.
    i_idx, b_idx = np.nonzero(branch[:, :, 3] >= 0)
    j_idx = branch[i_idx, b_idx, 3]
    s = branch[i_idx, b_idx, 2]
    ki, kj = kinds[i_idx], kinds[j_idx]
    ending_i, ending_j = ki == KIND_ENDING, kj == KIND_ENDING
    false_pair = (
        (ending_i & ~ending_j & (s <= xp.SPUR_MAX_PX))  # spur
        | (ending_i & ending_j & (s <= xp.SHORT_RIDGE_MAX_PX))  # ridge fragment
        | (~ending_i & ~ending_j & (s <= xp.BRIDGE_MAX_PX))  # bridge or lake
    )
    keep[i_idx[false_pair]] = False
    keep[j_idx[false_pair]] = False
    # A bifurcation must have three branches.
    keep &= (kinds == KIND_ENDING) | (branch[:, 2, 2] > 0)
    # Step 4: directions. Traced vectors (pixel coordinates, y down) from the candidate.
    vy = (branch[:, :, 0] - ys[:, None]).astype(np.float64)
    vx = (branch[:, :, 1] - xs[:, None]).astype(np.float64)
    norm = np.hypot(vx, vy)
    norm[norm == 0] = 1.0
    ux, uy = vx / norm, vy / norm
    tx = ux[:, 0].copy()
    ty = uy[:, 0].copy()
    bif = np.flatnonzero(kinds == KIND_BIFURCATION)
    if bif.size:
        pairs = ((0, 1), (0, 2), (1, 2))
        dots = np.stack(
            [ux[bif, a] * ux[bif, b] + uy[bif, a] * uy[bif, b] for a, b in pairs], axis=1
        )
        best = np.argmax(dots, axis=1)
        pa = np.array([p[0] for p in pairs])[best]
        pb = np.array([p[1] for p in pairs])[best]
        tx[bif] = ux[bif, pa] + ux[bif, pb]
        ty[bif] = uy[bif, pa] + uy[bif, pb]
    traced = np.arctan2(ty, tx)
    py = np.clip(ys - 1, 0, h - 1)
    px = np.clip(xs - 1, 0, w - 1)
    flow = field.angle[py, px].astype(np.float64)
    angle = np.where(np.abs(_angle_diff(flow, traced)) <= math.pi / 2, flow, flow + math.pi)
    angle = np.mod(angle, 2 * math.pi)
    # Back to image coordinates.
    yf = (ys - 1).astype(np.float64)
    xf = (xs - 1).astype(np.float64)
    idx = np.flatnonzero(keep)
    yf, xf, angle, kinds = yf[idx], xf[idx], angle[idx], kinds[idx]
    # Step 5: broken ridges.
    ends = np.flatnonzero(kinds == KIND_ENDING)
    drop = np.zeros(idx.size, bool)
    if ends.size >= 2:
        ex, ey, ea = xf[ends], yf[ends], angle[ends]
        a, b = _pairs_within(ex, ey, xp.BREAK_MAX_PX)
        dx, dy = ex[b] - ex[a], ey[b] - ey[a]
        dist = np.hypot(dx, dy)
        opposite = np.abs(_angle_diff(ea[a], ea[b] + math.pi)) <= xp.BREAK_MAX_ANGLE_RAD
        # Each lies behind the other (an ending points into its ridge, away from the gap),
        # close to the line of its direction.
        cos_max = math.cos(xp.BREAK_MAX_ANGLE_RAD)
        behind_a = -(dx * np.cos(ea[a]) + dy * np.sin(ea[a])) >= cos_max * dist
        behind_b = (dx * np.cos(ea[b]) + dy * np.sin(ea[b])) >= cos_max * dist
        broken = opposite & behind_a & behind_b & (dist > 0)
        drop[ends[a[broken]]] = True
        drop[ends[b[broken]]] = True
    # Step 6: border and clusters.
    dist_map = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    border = dist_map[yf.astype(np.int64), xf.astype(np.int64)].astype(np.float64)
    drop |= border < xp.BORDER_MARGIN_PX
    live = np.flatnonzero(~drop)
    if live.size:
        a, b = _pairs_within(xf[live], yf[live], xp.CLUSTER_RADIUS_PX)
        neighbours = np.bincount(a, minlength=live.size) + np.bincount(b, minlength=live.size)
        drop[live[neighbours > xp.CLUSTER_MAX_NEIGHBOURS]] = True
    ok = ~drop
    return Minutiae(
        x=xf[ok],
        y=yf[ok],
        angle=angle[ok],
        kind=kinds[ok].astype(np.uint8),
        border_distance=border[ok],
    )

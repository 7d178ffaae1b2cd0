"""Numba CPU kernels of the fingerprint matcher: cylinders, local similarities, consolidation.

Glossary inside kernels: ``X, Y`` minutia positions in a y-up frame (pixels at 500 dpi, ``Y = -y``),
``T`` directions (radians, counter-clockwise, the ISO convention, which is the same angle in the
y-up frame), ``cb`` cylinder bits ``(n, sections)`` uint64 (bit ``a*S+b`` of word ``k`` is cell
``(a, b)`` of angular section ``k``), ``cm`` validity masks ``(n,)`` uint64, ``G`` the local
similarity matrix, ``P`` candidate pairs.

Public wrappers check dtypes and shapes; kernels never raise and release the GIL.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import NamedTuple

import numba
import numpy as np
import numpy.typing as npt
from numba import njit, prange

from matcher import finger_params as fp
from matcher.errors import InvalidTemplate
from matcher.kernels.cpu import _popcount

_TWO_PI = 2.0 * math.pi
#: Fast-math without no-NaN/no-inf assumptions (as in :mod:`matcher.kernels.cpu`).
_FASTMATH = {"nsz", "contract", "reassoc", "arcp", "afn"}
# The kernels read the algorithm constants from one float64 array passed in, not from
# matcher.finger_params directly: numba's on-disk cache keys on this file only, so constants
# baked in from another module would go stale when that module is edited.
_CYLINDER_RADIUS_PX = 0
_SPATIAL_SIGMA_PX = 1
_DIRECTIONAL_SIGMA_RAD = 2
_HULL_MARGIN_PX = 3
_CELL_ON_THRESHOLD = 4
_MIN_VALID_CELL_FRACTION = 5
_MIN_NEIGHBOURS = 6
_MAX_DIRECTION_DIFF_RAD = 7
_RELAXATION_PAIRS = 8
_COMPAT_DISTANCE_MU_PX = 9
_COMPAT_DISTANCE_TAU = 10
_COMPAT_DIRECTION_MU_RAD = 11
_COMPAT_DIRECTION_TAU = 12
_COMPAT_RADIAL_MU_RAD = 13
_COMPAT_RADIAL_TAU = 14
_RELAXATION_WEIGHT = 15
_RELAXATION_ITERATIONS = 16
_MIN_SCORED_PAIRS = 17
_MAX_SCORED_PAIRS = 18
_SCORED_PAIRS_SIGMOID_MU = 19
_SCORED_PAIRS_SIGMOID_TAU = 20
_COMPAT_DISTANCE_CUT = 21
_COMPAT_DIRECTION_CUT = 22
_GEOMETRIC_HYPOTHESES = 23
_GEOMETRIC_DISTANCE_PX = 24
_GEOMETRIC_DIRECTION_RAD = 25
_GEOMETRIC_OVERLAP_PX = 26
_GEOMETRIC_MIN_OVERLAP = 27
_GEOMETRIC_WEIGHT = 28


def _params() -> npt.NDArray[np.float64]:
    values = [getattr(fp, n) for n in _PARAM_NAMES[:-8]]
    # A compatibility sigmoid 1/(1+exp(-tau (v - mu))) is below 1e-4 once tau (v - mu) < -9.2:
    # past these cuts the kernel skips the trigonometry.
    values.append(fp.COMPAT_DISTANCE_MU_PX + 9.2 / abs(fp.COMPAT_DISTANCE_TAU))
    values.append(fp.COMPAT_DIRECTION_MU_RAD + 9.2 / abs(fp.COMPAT_DIRECTION_TAU))
    values.extend(getattr(fp, n) for n in _PARAM_NAMES[-6:])
    return np.asarray(values, np.float64)


_PARAM_NAMES = [
    "CYLINDER_RADIUS_PX",
    "SPATIAL_SIGMA_PX",
    "DIRECTIONAL_SIGMA_RAD",
    "HULL_MARGIN_PX",
    "CELL_ON_THRESHOLD",
    "MIN_VALID_CELL_FRACTION",
    "MIN_NEIGHBOURS",
    "MAX_DIRECTION_DIFF_RAD",
    "RELAXATION_PAIRS",
    "COMPAT_DISTANCE_MU_PX",
    "COMPAT_DISTANCE_TAU",
    "COMPAT_DIRECTION_MU_RAD",
    "COMPAT_DIRECTION_TAU",
    "COMPAT_RADIAL_MU_RAD",
    "COMPAT_RADIAL_TAU",
    "RELAXATION_WEIGHT",
    "RELAXATION_ITERATIONS",
    "MIN_SCORED_PAIRS",
    "MAX_SCORED_PAIRS",
    "SCORED_PAIRS_SIGMOID_MU",
    "SCORED_PAIRS_SIGMOID_TAU",
    "COMPAT_DISTANCE_CUT",
    "COMPAT_DIRECTION_CUT",
    "GEOMETRIC_HYPOTHESES",
    "GEOMETRIC_DISTANCE_PX",
    "GEOMETRIC_DIRECTION_RAD",
    "GEOMETRIC_OVERLAP_PX",
    "GEOMETRIC_MIN_OVERLAP",
    "GEOMETRIC_WEIGHT",
]
PARAMS = _params()

# The cylinder layout is structural: one 64-bit word per angular section (8 x 8 cells), six
# sections written out in the local-similarity loop.
_CELLS_PER_SIDE = 8
_SECTIONS = 6
if (fp.CYLINDER_CELLS_PER_SIDE, fp.CYLINDER_SECTIONS) != (_CELLS_PER_SIDE, _SECTIONS):
    raise ImportError("finger_cpu is written for 8 x 8 cells x 6 sections")


@njit(nogil=True, inline="always")
def _angle_diff(a, b):  # type: ignore[no-untyped-def]
    """a - b wrapped into [-pi, pi)."""
    d = a - b
    return d - _TWO_PI * math.floor((d + math.pi) / _TWO_PI)


@njit(nogil=True, cache=True)
def _convex_hull(X, Y):  # type: ignore[no-untyped-def]
    """Indices of the convex hull, counter-clockwise (Andrew's monotone chain)."""
    n = X.shape[0]
    order = np.argsort(X * 1e6 + Y)
    hull = np.empty(2 * n + 1, np.int64)
    k = 0
    for idx in range(n):
        i = order[idx]
        while k >= 2:
            a = hull[k - 2]
            b = hull[k - 1]
            if (X[b] - X[a]) * (Y[i] - Y[a]) - (Y[b] - Y[a]) * (X[i] - X[a]) <= 0:
                k -= 1
            else:
                break
        hull[k] = i
        k += 1
    lower = k + 1
    for idx in range(n - 2, -1, -1):
        i = order[idx]
        while k >= lower:
            a = hull[k - 2]
            b = hull[k - 1]
            if (X[b] - X[a]) * (Y[i] - Y[a]) - (Y[b] - Y[a]) * (X[i] - X[a]) <= 0:
                k -= 1
            else:
                break
        hull[k] = i
        k += 1
    return hull[: max(k - 1, 1)]


@njit(nogil=True, inline="always")
def _outside_distance(px, py, X, Y, hull):  # type: ignore[no-untyped-def]
    """Distance from (px, py) to a convex polygon; 0 inside or on it."""
    h = hull.shape[0]
    if h < 3:
        best = 1e18
        for q in range(h):
            d = math.hypot(px - X[hull[q]], py - Y[hull[q]])
            best = min(best, d)
        if h == 2:  # a segment
            ax, ay = X[hull[0]], Y[hull[0]]
            bx, by = X[hull[1]], Y[hull[1]]
            lx, ly = bx - ax, by - ay
            ll = lx * lx + ly * ly
            if ll > 0:
                t = min(1.0, max(0.0, ((px - ax) * lx + (py - ay) * ly) / ll))
                best = min(best, math.hypot(px - ax - t * lx, py - ay - t * ly))
        return best
    inside = True
    best = 1e18
    for q in range(h):
        a = hull[q]
        b = hull[(q + 1) % h]
        ax, ay = X[a], Y[a]
        lx, ly = X[b] - ax, Y[b] - ay
        if lx * (py - ay) - ly * (px - ax) < 0:
            inside = False
        ll = lx * lx + ly * ly
        t = 0.0 if ll == 0 else min(1.0, max(0.0, ((px - ax) * lx + (py - ay) * ly) / ll))
        best = min(best, math.hypot(px - ax - t * lx, py - ay - t * ly))
    return 0.0 if inside else best


@njit(nogil=True, cache=True)
def _build_cylinders(X, Y, T, prm, out_bits, out_mask, out_ok):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    ns = _CELLS_PER_SIDE
    nd = _SECTIONS
    radius = prm[_CYLINDER_RADIUS_PX]
    sigma_s = prm[_SPATIAL_SIGMA_PX]
    sigma_d = prm[_DIRECTIONAL_SIGMA_RAD]
    cut_s = 3.0 * sigma_s
    cell = 2.0 * radius / ns
    dd = _TWO_PI / nd
    norm_s = 1.0 / (sigma_s * math.sqrt(_TWO_PI))
    erf_scale = 1.0 / (sigma_d * math.sqrt(2.0))
    hull = _convex_hull(X, Y)
    # Cells of a full disc, for the validity fraction.
    disc = 0
    for a in range(ns):
        for b in range(ns):
            u = (a - (ns - 1) / 2.0) * cell
            v = (b - (ns - 1) / 2.0) * cell
            if u * u + v * v <= radius * radius:
                disc += 1
    near = np.empty(n, np.int64)
    acc = np.empty(nd)
    for i in range(n):
        # Neighbours that can reach some cell of this cylinder.
        m = 0
        for j in range(n):
            if j != i and math.hypot(X[j] - X[i], Y[j] - Y[i]) <= radius + cut_s:
                near[m] = j
                m += 1
        c, s = math.cos(T[i]), math.sin(T[i])
        mask = np.uint64(0)
        valid = 0
        for k in range(nd):
            out_bits[i, k] = 0
        for a in range(ns):
            for b in range(ns):
                u = (a - (ns - 1) / 2.0) * cell
                v = (b - (ns - 1) / 2.0) * cell
                if u * u + v * v > radius * radius:
                    continue
                px = X[i] + c * u - s * v
                py = Y[i] + s * u + c * v
                if _outside_distance(px, py, X, Y, hull) > prm[_HULL_MARGIN_PX]:
                    continue
                bit = np.uint64(1) << np.uint64(a * ns + b)
                mask |= bit
                valid += 1
                for k in range(nd):
                    acc[k] = 0.0
                for q in range(m):
                    j = near[q]
                    d2 = (X[j] - px) ** 2 + (Y[j] - py) ** 2
                    if d2 > cut_s * cut_s:
                        continue
                    cs = norm_s * math.exp(-d2 / (2.0 * sigma_s * sigma_s))
                    dphi = _angle_diff(T[j], T[i])
                    for k in range(nd):
                        diff = _angle_diff(-math.pi + (k + 0.5) * dd, dphi)
                        cd = 0.5 * (
                            math.erf((diff + dd / 2.0) * erf_scale)
                            - math.erf((diff - dd / 2.0) * erf_scale)
                        )
                        acc[k] += cs * cd
                for k in range(nd):
                    if acc[k] >= prm[_CELL_ON_THRESHOLD]:
                        out_bits[i, k] |= bit
        out_mask[i] = mask
        out_ok[i] = valid >= prm[_MIN_VALID_CELL_FRACTION] * disc and m >= prm[_MIN_NEIGHBOURS]


def build_cylinders(
    x: npt.ArrayLike, y: npt.ArrayLike, theta: npt.ArrayLike
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Bit cylinders of every minutia: ``(bits (n, sections) uint64, mask (n,) uint64, ok (n,))``.

    ``x, y``: pixels at 500 dpi, origin top-left, y down; ``theta``: radians, ISO convention.
    ``ok`` is False for cylinders MCC discards (too few valid cells or neighbours).
    """
    x64 = np.asarray(x, np.float64)
    n = x64.shape[0]
    if np.shape(y) != (n,) or np.shape(theta) != (n,):
        raise InvalidTemplate("x, y and theta must be 1-D arrays of one length")
    bits = np.zeros((n, fp.CYLINDER_SECTIONS), np.uint64)
    mask = np.zeros(n, np.uint64)
    ok = np.zeros(n, np.bool_)
    if n:
        _build_cylinders(
            x64, -np.asarray(y, np.float64), np.asarray(theta, np.float64), PARAMS, bits, mask, ok
        )
    return bits, mask, ok


@njit(nogil=True, inline="always")
def _advance(v, k, x, strict):  # type: ignore[no-untyped-def]
    """First index ``>= k`` of ascending ``v`` with ``v[i] > x`` (strict) or ``v[i] >= x``, by a
    forward walk: ``k`` must not be past the answer."""
    n = v.shape[0]
    while k < n and not (v[k] > x or (not strict and v[k] == x)):
        k += 1
    return k


@njit(nogil=True, inline="always")
def _pad_run(lo, hi, n):  # type: ignore[no-untyped-def]
    """``[lo, hi)`` widened to a multiple of 8 entries inside ``[0, n)`` (unchanged if empty)."""
    if hi <= lo:
        return lo, hi
    width = min((hi - lo + 7) // 8 * 8, n)
    lo = min(lo, n - width)
    return lo, lo + width


@njit(nogil=True, inline="always")
def _sigmoid(v, mu, tau):  # type: ignore[no-untyped-def]
    return 1.0 / (1.0 + math.exp(-tau * (v - mu)))


@njit(nogil=True, inline="always")
def _rank_candidates(row_best, row_arg, col_best, col_arg, nb, w, out_s, out_i, out_j):  # type: ignore[no-untyped-def]
    """Candidate pairs: each row's and each column's best entry (positive only), once each,
    into ``out_s, out_i, out_j`` (value descending, equal values by ``i * nb + j``); returns
    how many. ``w`` is ``(vals, keys, i, j)`` scratch of ``na + nb`` entries each."""
    vals, keys, ci, cj = w
    na = row_best.shape[0]
    m = 0
    for i in range(na):
        if row_best[i] > 0.0:
            vals[m] = row_best[i]
            keys[m] = i * nb + row_arg[i]
            ci[m] = i
            cj[m] = row_arg[i]
            m += 1
    for j in range(nb):
        i = col_arg[j]
        # A column's best that is also its row's best is already in.
        if col_best[j] > 0.0 and not (row_best[i] > 0.0 and row_arg[i] == j):
            vals[m] = col_best[j]
            keys[m] = i * nb + j
            ci[m] = i
            cj[m] = j
            m += 1
    if m <= 256:
        # Rank by counting, branch-free: a few thousand comparisons, no mispredicted sort.
        # Row and column are carried along, not divided out of the key (a division does not
        # vectorise). Padded to whole vectors of 8 with entries that outrank nothing (every
        # candidate value is positive), so the inner loop has no scalar tail.
        m8 = min((m + 7) // 8 * 8, vals.shape[0])
        for q in range(m, m8):
            vals[q] = -1.0
            keys[q] = 0
        for p in range(m):
            v = vals[p]
            kp = keys[p]
            rank = 0
            for q in range(m8):
                rank += 1 if (vals[q] > v) | ((vals[q] == v) & (keys[q] < kp)) else 0
            out_s[rank] = v
            out_i[rank] = ci[p]
            out_j[rank] = cj[p]
        return m
    by_key = np.argsort(keys[:m], kind="mergesort")
    order = by_key[np.argsort(-vals[:m][by_key], kind="mergesort")]  # stable: equal values by key
    for q in range(m):
        out_s[q] = vals[order[q]]
        out_i[q] = ci[order[q]]
        out_j[q] = cj[order[q]]
    return m


@njit(nogil=True, cache=True)
def _best_partners(row_best, row_arg, col_best, col_arg, nb):  # type: ignore[no-untyped-def]
    """:func:`_rank_candidates` as ``(values, keys)`` with ``key = i * nb + j`` (for tests)."""
    n = row_best.shape[0] + nb
    s, i, j = np.empty(n), np.empty(n, np.int64), np.empty(n, np.int64)
    w = (np.empty(n + 8), np.empty(n + 8, np.int64), np.empty(n, np.int64), np.empty(n, np.int64))
    m = _rank_candidates(row_best, row_arg, col_best, col_arg, nb, w, s, i, j)
    return s[:m], i[:m] * nb + j[:m]


#: Per-thread work arrays of :func:`_match_into`, sized once per scan (``na`` probe minutiae,
#: ``nb`` the largest template, ``R`` = RELAXATION_PAIRS) so a match allocates nothing.
_Scratch = namedtuple(
    "_Scratch",
    [
        "v_row",  # (2 na + 8,) one B minutia's local similarities against a run of A
        "rb2",  # (2 na + 8,) float64, "ra2" int64: best partner of each copy of each A minutia
        "ra2",
        "a2_w",  # (sections, 2 na + 8) uint64, "a2_m" (2 na + 8,) uint64: A's cylinders twice
        "a2_m",
        "a2_t",  # (2 na + 8,) float64 x2: A's directions twice, as they are and shifted by 2 pi
        "a2_s",
        "a_info",  # (1,) float64: 1 when A's directions are sorted ascending in [0, 2 pi)
        "row_best",  # (na,) float64, "row_arg" (na,) int64: each probe minutia's best partner
        "row_arg",
        "col_best",  # (nb,) float64, "col_arg" (nb,) int64: each template minutia's best partner
        "col_arg",
        "c_val",  # (na + nb (+ 8),) candidates unsorted: value, key i * nb + j, i, j
        "c_key",
        "c_i",
        "c_j",
        "s_val",  # (na + nb,) candidates sorted: value, i, j
        "s_i",
        "s_j",
        "used_a",  # (na,) bool, "used_b" (nb,) bool: greedy assignment
        "used_b",
        "pair_i",  # (R,) int64, "pair_j" (R,) int64, "lam" (R,): the assigned pairs
        "pair_j",
        "lam",
        "geo",  # (6, R): the pairs' minutiae xa, ya, ta, xb, yb, tb
        "dd",  # (R * R,) distance and direction differences of each pair against the later ones
        "dt",
        "e_p",  # (R * R,) int64, "e_q", "e_r12" (R * R,): pairs of pairs inside the cuts
        "e_q",
        "e_r12",
        "rho_pq",  # (R * R,) x2: compatibility of each listed pair of pairs, from each end
        "rho_qp",
        "lam0",  # (R,) each: relaxation state, efficiency, order, upper bounds
        "cur",
        "nxt",
        "eff",
        "order",
        "ub",
        "ub_nxt",
        "g_x",  # (nb + 8,) float64 x3: B's minutiae under one hypothesis of the geometric
        "g_y",  # check, padded past nb with far-away points
        "g_t",
        "g_taken",  # (nb + 8,) float64: 1 where B's minutia is already paired, else 0
        "g_near",  # (nb + 8,) float64: 1 where an A minutia is near B's, else 0
        "g_v",  # (nb + 8,) float64 x2: one A minutia's distances to B's candidates, nearness
        "g_c",
    ],
)


@njit(nogil=True, cache=True)
def _new_scratch(na, nb, n_pairs):  # type: ignore[no-untyped-def]
    na = max(na, 1)
    nb = max(nb, 1)
    r = max(n_pairs, 1)
    n2 = 2 * na + 8
    return _Scratch(
        np.empty(n2),
        np.zeros(n2),
        np.zeros(n2, np.int64),
        np.zeros((_SECTIONS, n2), np.uint64),
        np.zeros(n2, np.uint64),
        np.zeros(n2),
        np.zeros(n2),
        np.zeros(1),
        np.empty(na),
        np.empty(na, np.int64),
        np.empty(nb),
        np.empty(nb, np.int64),
        np.empty(na + nb + 8),
        np.empty(na + nb + 8, np.int64),
        np.empty(na + nb, np.int64),
        np.empty(na + nb, np.int64),
        np.empty(na + nb),
        np.empty(na + nb, np.int64),
        np.empty(na + nb, np.int64),
        np.empty(na, np.bool_),
        np.empty(nb, np.bool_),
        np.empty(r, np.int64),
        np.empty(r, np.int64),
        np.empty(r),
        np.empty((6, r)),
        np.empty(r * r),
        np.empty(r * r),
        np.empty(r * r, np.int64),
        np.empty(r * r, np.int64),
        np.empty(r * r),
        np.empty(r * r),
        np.empty(r * r),
        np.empty(r),
        np.empty(r),
        np.empty(r),
        np.empty(r),
        np.empty(r, np.int64),
        np.empty(r),
        np.empty(r),
        np.empty(nb + 8),
        np.empty(nb + 8),
        np.empty(nb + 8),
        np.empty(nb + 8),
        np.empty(nb + 8),
        np.empty(nb + 8),
        np.empty(nb + 8),
    )


#: Where the geometric check puts the padding past B's minutiae: farther than any tolerance;
#: and what stands for "no candidate" in its distances (finite: the check runs without inf).
_FAR = 1e30
_NONE = 1e300


# All fast-math flags here, no-NaN and no-inf included (the inputs are validated templates and
# nothing below makes either): without them LLVM keeps a minimum reduction scalar.
@njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def _paired_share(xa, ya, ta, xb, yb, tb, pi, pj, order, n_p, prm, s):  # type: ignore[no-untyped-def]
    """Geometric check: the share ``n^2 / (n_A n_B)`` of minutiae paired by the best transform.

    Hypotheses are the rigid transforms of the first ``GEOMETRIC_HYPOTHESES`` pairs in ``order``
    (B's minutia onto A's, directions included). Under each, A's minutiae in index order take
    the nearest B minutia not yet taken within the tolerances (squared distance strictly
    smallest, ties to the lower index); ``n`` counts them. ``n_A`` (``n_B``) counts minutiae with
    a minutia of the other side within ``GEOMETRIC_OVERLAP_PX``, at least
    ``GEOMETRIC_MIN_OVERLAP``. The first hypothesis with the largest ``n`` wins. ``s``: a
    :data:`_Scratch` at least ``nb`` long (B's aligned minutiae and flags).

    Written branch-free over B (one vector loop per minutia of A, B padded to whole vectors
    with far-away points): which pairs fall within a tolerance is data no branch predictor
    learns, and a mispredicted test per pair cost more than the arithmetic (measured: a
    cell grid that tests a tenth of the pairs was no faster than testing all of them).
    """
    na = xa.shape[0]
    nb = xb.shape[0]
    nbp = min((nb + 7) // 8 * 8, s.g_x.shape[0])
    tol2 = prm[_GEOMETRIC_DISTANCE_PX] * prm[_GEOMETRIC_DISTANCE_PX]
    atol = prm[_GEOMETRIC_DIRECTION_RAD]
    r2 = prm[_GEOMETRIC_OVERLAP_PX] * prm[_GEOMETRIC_OVERLAP_PX]
    xt, yt, tt = s.g_x[:nbp], s.g_y[:nbp], s.g_t[:nbp]
    taken, near_b = s.g_taken[:nbp], s.g_near[:nbp]
    for j in range(nb, nbp):
        xt[j] = _FAR
        yt[j] = _FAR
        tt[j] = 0.0
    best_n = -1.0
    best_a = 0.0
    best_b = 0.0
    for h in range(min(int(prm[_GEOMETRIC_HYPOTHESES]), n_p)):
        p = order[h]
        i0 = pi[p]
        j0 = pj[p]
        rot = _angle_diff(ta[i0], tb[j0])
        cs = math.cos(rot)
        sn = math.sin(rot)
        tx = xa[i0] - (cs * xb[j0] - sn * yb[j0])
        ty = ya[i0] - (sn * xb[j0] + cs * yb[j0])
        for j in range(nb):
            xt[j] = cs * xb[j] - sn * yb[j] + tx
            yt[j] = sn * xb[j] + cs * yb[j] + ty
            tt[j] = tb[j] + rot
        for j in range(nbp):
            taken[j] = 0.0
            near_b[j] = 0.0
        # B's aligned extent, widened by the overlap radius: an A minutia outside it is near
        # no B minutia (and pairs with none), so its row is skipped.
        x_lo, x_hi, y_lo, y_hi = xt[0], xt[0], yt[0], yt[0]
        for j in range(1, nb):
            x_lo = xt[j] if xt[j] < x_lo else x_lo
            x_hi = xt[j] if xt[j] > x_hi else x_hi
            y_lo = yt[j] if yt[j] < y_lo else y_lo
            y_hi = yt[j] if yt[j] > y_hi else y_hi
        reach = prm[_GEOMETRIC_OVERLAP_PX]
        x_lo -= reach
        x_hi += reach
        y_lo -= reach
        y_hi += reach
        n = 0.0
        n_a = 0.0
        v, cl = s.g_v[:nbp], s.g_c[:nbp]
        for i in range(na):
            xi, yi, ti = xa[i], ya[i], ta[i]
            if not (x_lo <= xi <= x_hi and y_lo <= yi <= y_hi):
                continue
            # Stores only, no reduction, so the loop vectorises; the reductions follow.
            for j in range(nbp):
                dx = xi - xt[j]
                dy = yi - yt[j]
                d2 = dx * dx + dy * dy
                close = 1.0 if d2 < r2 else 0.0
                cl[j] = close
                near_b[j] = max(near_b[j], close)
                da = ti - tt[j]
                da -= _TWO_PI * math.floor((da + math.pi) / _TWO_PI)  # into [-pi, pi)
                ok = (d2 < tol2) & (abs(da) < atol) & (taken[j] == 0.0)
                v[j] = d2 if ok else _NONE
            near = 0.0
            for j in range(nbp):
                near += cl[j]
            n_a += 1.0 if near > 0.0 else 0.0
            nearest = _NONE
            for j in range(nbp):
                nearest = min(nearest, v[j])
            if nearest < _NONE:
                pick = 0
                while v[pick] != nearest:  # the lowest index at that distance
                    pick += 1
                taken[pick] = 1.0
                n += 1.0
        if n > best_n:
            n_b = 0.0
            for j in range(nbp):
                n_b += near_b[j]
            best_n = n
            best_a = n_a
            best_b = n_b
    if best_n <= 0.0:
        return 0.0
    floor = prm[_GEOMETRIC_MIN_OVERLAP]
    return min(1.0, best_n * best_n / (max(best_a, floor) * max(best_b, floor)))


@njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _probe_pairs(xa, ya, ta, ca, ma, s):  # type: ignore[no-untyped-def]
    """Fill the probe's side of :func:`_match_into` in ``s``, once per probe: A's cylinders,
    masks and directions twice over (``a2_*``, the second copy of the directions shifted by
    2 pi) with ``a_info`` saying whether the directions are sorted ascending in [0, 2 pi)."""
    na = xa.shape[0]
    ascending = True
    for i in range(na):
        ascending &= (ta[i] >= 0.0) & (ta[i] < _TWO_PI)
        if i:
            ascending &= ta[i - 1] <= ta[i]
    s.a_info[0] = 1.0 if ascending else 0.0
    for c in range(2):
        for i in range(na):
            for k in range(_SECTIONS):
                s.a2_w[k, c * na + i] = ca[k, i]
            s.a2_m[c * na + i] = ma[i]
            s.a2_t[c * na + i] = ta[i]
            s.a2_s[c * na + i] = ta[i] + c * _TWO_PI


@njit(nogil=True, inline="always")
def _top_mean(v, n, n_score):  # type: ignore[no-untyped-def]
    """min(1, sum of the ``n_score`` largest of ``v[:n]`` / n_score), by partial selection
    (n_score is at most a dozen); reorders ``v``."""
    total = 0.0
    for q in range(min(n_score, n)):
        k = q
        for p in range(q + 1, n):
            if v[p] > v[k]:
                k = p
        x = v[k]
        v[k] = v[q]
        v[q] = x
        total += x
    return min(1.0, total / n_score)


#: What :func:`_match_into` returns for a template whose upper bound is below the threshold.
_PRUNED = -1.0
# Slack on the upper bound: it is computed in another order than the score (and under
# fast-math), so it may come out a few ulps low; 1e-9 is far above any such rounding.
_BOUND_SLACK = 1e-9


@njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _match_into(xa, ya, ta, ca, ma, xb, yb, tb, cb, mb, min_cells, prm, thr, s):  # type: ignore[no-untyped-def]
    """MCC-style score in [0, 1] of two feature sets (only minutiae with valid cylinders), or
    ``_PRUNED`` when a proven upper bound of the score is below ``thr`` (``-inf``: never).

    ``ca``/``cb`` are section-major ``(sections, n)``. ``s`` is a :data:`_Scratch` at least as
    large as the inputs, with A's side filled by :func:`_probe_pairs` (A's doubled cylinders,
    against which the local similarities of one minutia of B are a vectorisable loop). The
    score, when returned, is the same double whatever ``thr``.
    """
    na = xa.shape[0]
    nb = xb.shape[0]
    if na == 0 or nb == 0:
        return 0.0
    # 1. Local similarities. Candidates are every minutia's best partner on the other side: the
    # maximum of its row (A) or column (B), ties to the lower index. The MCC paper's global top-n
    # can be filled by a few minutiae with many look-alike neighbours and leave others without
    # a candidate; the best partner of each minutia cannot.
    row_best, row_arg, col_best, col_arg = s.row_best, s.row_arg, s.col_best, s.col_arg
    rb2, ra2 = s.rb2, s.ra2
    for i in range(2 * na):
        rb2[i] = 0.0
        ra2[i] = 0
    for j in range(nb):
        col_best[j] = 0.0
        col_arg[j] = 0
    # One minutia of B against a run of A at a time. A (the probe) is stored twice over by
    # _probe_pairs, directions sorted ascending (as features() stores them) and the second
    # copy shifted by 2 pi, so the A minutiae within B's direction window are one contiguous
    # run, about half of A, whatever the wrap-around. The window is widened by a hair and the
    # exact test stays in the loop, so the result is the same as visiting every entry; an
    # unsorted A is visited whole. Entries outside the runs are zero by definition and never
    # read: a zero changes no row or column maximum. Each A minutia's best is kept per copy
    # and the two copies are merged at the end.
    w0, w1, w2 = s.a2_w[0], s.a2_w[1], s.a2_w[2]
    w3, w4, w5 = s.a2_w[3], s.a2_w[4], s.a2_w[5]
    am, at, a_shift = s.a2_m, s.a2_t, s.a2_s[: 2 * na]
    n2 = 2 * na
    window = prm[_MAX_DIRECTION_DIFF_RAD] + 1e-9
    use_window = (s.a_info[0] != 0.0) & (window < math.pi)
    # The window edges as running indices into the doubled A: with B's directions ascending,
    # each only moves forward; a window start lower than the previous one restarts them.
    e_lo, e_hi = 0, 0
    a_prev = -np.inf
    for j in range(nb):
        tj = tb[j]
        lo, hi = 0, na
        if use_window and 0.0 <= tj < _TWO_PI:
            a0 = tj - window
            if a0 < 0.0:
                a0 += _TWO_PI
            if not (a0 >= a_prev):
                e_lo, e_hi = 0, 0
            a_prev = a0
            e_lo = _advance(a_shift, e_lo, a0, False)
            e_hi = _advance(a_shift, max(e_hi, e_lo), a0 + 2.0 * window, True)
            # Padded to whole vectors of 8 (entries beyond the window compute to zero by the
            # exact test): otherwise a run of ~20 spends most of its time in the scalar tail.
            # Never wider than A, so no minutia is visited twice.
            lo, hi = _pad_run(e_lo, e_hi, n2)
            if hi - lo > na:
                lo, hi = 0, na
        mj = mb[j]
        c0, c1, c2, c3, c4, c5 = cb[0, j], cb[1, j], cb[2, j], cb[3, j], cb[4, j], cb[5, j]
        width = hi - lo
        # The six sections written out so the loop over A's run is the vectorised one. Slices,
        # not an offset loop: numba vectorises the loop only over unit-stride views.
        rw = s.v_row[:width]
        ats, ams = at[lo:hi], am[lo:hi]
        d0, d1, d2 = w0[lo:hi], w1[lo:hi], w2[lo:hi]
        d3, d4, d5 = w3[lo:hi], w4[lo:hi], w5[lo:hi]
        for k in range(width):
            dt = ats[k] - tj
            dt -= _TWO_PI * math.floor((dt + math.pi) / _TWO_PI)  # into [-pi, pi)
            m = ams[k] & mj
            x0, y0 = d0[k] & m, c0 & m
            x1, y1 = d1[k] & m, c1 & m
            x2, y2 = d2[k] & m, c2 & m
            x3, y3 = d3[k] & m, c3 & m
            x4, y4 = d4[k] & m, c4 & m
            x5, y5 = d5[k] & m, c5 & m
            d = (
                _popcount(x0 ^ y0)
                + _popcount(x1 ^ y1)
                + _popcount(x2 ^ y2)
                + _popcount(x3 ^ y3)
                + _popcount(x4 ^ y4)
                + _popcount(x5 ^ y5)
            )
            sa = (
                _popcount(x0)
                + _popcount(x1)
                + _popcount(x2)
                + _popcount(x3)
                + _popcount(x4)
                + _popcount(x5)
            )
            sb = (
                _popcount(y0)
                + _popcount(y1)
                + _popcount(y2)
                + _popcount(y3)
                + _popcount(y4)
                + _popcount(y5)
            )
            # Branch-free, so the loop vectorises; a zero denominator is masked by ``ok``.
            ok = (
                (abs(dt) <= prm[_MAX_DIRECTION_DIFF_RAD])
                & (_popcount(m) >= min_cells)
                & (sa + sb > 0)
            )
            # Square roots of the counts converted to double, not a table: three gathers a
            # vector cost more than three vector square roots (measured); both are the
            # correctly rounded root, so the value is the same.
            den = math.sqrt(float(sa)) + math.sqrt(float(sb))
            sim = 1.0 - math.sqrt(float(d)) / (den + (0.0 if ok else 1.0))
            rw[k] = sim if ok else 0.0
        # B's best partner (its column maximum) and A's best partners, in their own loops:
        # folded into the loop above they cost more (the maximum stops it vectorising).
        best = 0.0
        for k in range(width):
            best = max(best, rw[k])
        if best > 0.0:
            # The lowest A index holding it (a run may wrap into the second copy).
            first = n2
            for k in range(width):
                i = lo + k
                i = i - na if i >= na else i
                first = min(first, i if rw[k] == best else n2)
            col_best[j] = best
            col_arg[j] = first
        # Strictly greater: an equal later B minutia keeps the earlier one.
        rbs, ras = rb2[lo:hi], ra2[lo:hi]
        for k in range(width):
            v = rw[k]
            better = v > rbs[k]
            rbs[k] = v if better else rbs[k]
            ras[k] = j if better else ras[k]
    for i in range(na):
        # The two copies of each A minutia: the larger, equal ones to the lower B index.
        v1, v2 = rb2[i], rb2[i + na]
        take2 = (v2 > v1) | ((v2 == v1) & (ra2[i + na] < ra2[i]))
        row_best[i] = v2 if take2 else v1
        row_arg[i] = ra2[i + na] if take2 else ra2[i]
    n_cand = _rank_candidates(
        row_best[:na],
        row_arg,
        col_best,
        col_arg,
        nb,
        (s.c_val, s.c_key, s.c_i, s.c_j),
        s.s_val,
        s.s_i,
        s.s_j,
    )
    cand_s, cand_i, cand_j = s.s_val, s.s_i, s.s_j
    # 2. One-to-one assignment: greedy over the sorted candidates.
    used_a, used_b = s.used_a, s.used_b
    for i in range(na):
        used_a[i] = False
    for j in range(nb):
        used_b[j] = False
    pi, pj, lam = s.pair_i, s.pair_j, s.lam
    n_p = 0
    for q in range(n_cand):
        i = cand_i[q]
        j = cand_j[q]
        if n_p == int(prm[_RELAXATION_PAIRS]):
            break
        if cand_s[q] <= 0.0 or used_a[i] or used_b[j]:
            continue
        used_a[i] = True
        used_b[j] = True
        pi[n_p] = i
        pj[n_p] = j
        lam[n_p] = cand_s[q]
        n_p += 1
    if n_p == 0:
        return 0.0
    # 3. Relaxation (MCC's LSS-R): pairs supported by geometrically compatible pairs gain.
    # The pairs' minutiae gathered once, so the distance and direction tests of one pair against
    # all later ones are one vectorised loop; the rest runs only for the few that pass, kept as
    # a list of pairs of pairs with their distance-and-direction factor r12.
    pxa, pya, pta = s.geo[0, :n_p], s.geo[1, :n_p], s.geo[2, :n_p]
    pxb, pyb, ptb = s.geo[3, :n_p], s.geo[4, :n_p], s.geo[5, :n_p]
    for p in range(n_p):
        pxa[p], pya[p], pta[p] = xa[pi[p]], ya[pi[p]], ta[pi[p]]
        pxb[p], pyb[p], ptb[p] = xb[pj[p]], yb[pj[p]], tb[pj[p]]
    # dd[p, q], dt[p, q] for q > p, row by row, read back only once all rows are written:
    # measured faster than testing each row right after its vector loop (most likely scalar
    # loads stalling on the wide stores just made to the same lines).
    dd_m = s.dd[: n_p * n_p].reshape((n_p, n_p))
    dt_m = s.dt[: n_p * n_p].reshape((n_p, n_p))
    for p in range(n_p):
        # Both sides computed from the pairs' gathered minutiae (contiguous loads; reading the
        # probe's side from a table of its minutiae was two gathers a vector). The loop starts
        # early enough to be whole vectors of 8 (entries q <= p are computed and not read):
        # the scalar tail would otherwise cost as much as the vector part. Slices from q0 and
        # a loop from 0, as in step 1: indices that numba cannot prove non-negative get
        # wrap-around selects, and LLVM turns every load into a gather.
        q0 = _pad_run(p + 1, n_p, n_p)[0]
        xq, yq, tq = pxb[q0:n_p], pyb[q0:n_p], ptb[q0:n_p]
        uq, vq, sq = pxa[q0:n_p], pya[q0:n_p], pta[q0:n_p]
        ddq, dtq = dd_m[p, q0:n_p], dt_m[p, q0:n_p]
        xbp, ybp, tbp = pxb[p], pyb[p], ptb[p]
        xap, yap, tap = pxa[p], pya[p], pta[p]
        for k in range(n_p - q0):
            ax, ay = uq[k] - xap, vq[k] - yap
            bx, by = xq[k] - xbp, yq[k] - ybp
            ddq[k] = abs(math.sqrt(ax * ax + ay * ay) - math.sqrt(bx * bx + by * by))
            dtq[k] = abs(_angle_diff(_angle_diff(tap, sq[k]), _angle_diff(tbp, tq[k])))
    # Past these a sigmoid is below 1e-4 and the compatibility is defined as zero (part of the
    # score, not only a shortcut). The pairs of pairs inside the cuts are listed branch-free
    # (write always, advance on a pass): a pass is rare and unpredictable. Distance and
    # direction terms are symmetric; the radial term (below) is taken from each end.
    e_p, e_q, e_r12 = s.e_p, s.e_q, s.e_r12
    n_e = 0
    for p in range(n_p):
        for q in range(p + 1, n_p):
            out = (dd_m[p, q] > prm[_COMPAT_DISTANCE_CUT]) | (
                dt_m[p, q] > prm[_COMPAT_DIRECTION_CUT]
            )
            e_p[n_e] = p
            e_q[n_e] = q
            n_e += 0 if out else 1
    for e in range(n_e):
        p = e_p[e]
        q = e_q[e]
        e_r12[e] = _sigmoid(
            dd_m[p, q], prm[_COMPAT_DISTANCE_MU_PX], prm[_COMPAT_DISTANCE_TAU]
        ) * _sigmoid(dt_m[p, q], prm[_COMPAT_DIRECTION_MU_RAD], prm[_COMPAT_DIRECTION_TAU])
    n_min = min(na, nb)
    n_score = int(prm[_MIN_SCORED_PAIRS]) + int(
        round(
            _sigmoid(n_min, prm[_SCORED_PAIRS_SIGMOID_MU], prm[_SCORED_PAIRS_SIGMOID_TAU])
            * (prm[_MAX_SCORED_PAIRS] - prm[_MIN_SCORED_PAIRS])
        )
    )
    w = prm[_RELAXATION_WEIGHT]
    iterations = int(prm[_RELAXATION_ITERATIONS])
    # Each relaxed bound keeps at least w ** iterations of its start (every term is
    # non-negative), and the pairs come in descending similarity: when that much of the n_score
    # best already reaches thr the bound cannot prune, and is not worth computing (the k-th
    # best of an impostor gallery sits there).
    kept = 0.0
    if thr > 0.0:  # a full scan (thr -inf) needs none of this
        for p in range(min(n_score, n_p)):
            kept += lam[p]
    if thr > 0.0 and min(1.0, w**iterations * kept / n_score) < thr:
        # Branch and bound. The radial factor is at most 1, so r12 bounds each compatibility;
        # relaxation has non-negative coefficients, so relaxing with r12 in place of rho bounds
        # every relaxed value from above, and the score (the mean of n_score relaxed values,
        # whichever pairs the efficiency order picks) is at most the mean of the n_score
        # largest bounds. Costs a few operations per pair of pairs inside the cuts.
        ub, ub_nxt = s.ub, s.ub_nxt
        for p in range(n_p):
            ub[p] = lam[p]
        for _ in range(iterations):
            for p in range(n_p):
                ub_nxt[p] = 0.0
            for e in range(n_e):
                ub_nxt[e_p[e]] += e_r12[e] * ub[e_q[e]]
                ub_nxt[e_q[e]] += e_r12[e] * ub[e_p[e]]
            for p in range(n_p):
                ub_nxt[p] = w * ub[p] + (1.0 - w) * ub_nxt[p] / max(n_p - 1, 1)
            ub, ub_nxt = ub_nxt, ub
        if _top_mean(ub, n_p, n_score) * (1.0 + _BOUND_SLACK) + _BOUND_SLACK < thr:
            return _PRUNED
    # The compatibilities are kept as the list (most pairs of pairs are outside the cuts, so
    # zero), and relaxation runs over it: for each pair the nonzero terms are added in the
    # same order as a row of the full matrix would add them (listed pairs come ordered by
    # their first pair, then their second), so the sums are those of the dense product.
    rho_pq, rho_qp = s.rho_pq, s.rho_qp
    for e in range(n_e):
        p = e_p[e]
        q = e_q[e]
        r12 = e_r12[e]
        ax, ay = pxa[q] - pxa[p], pya[q] - pya[p]
        bx, by = pxb[q] - pxb[p], pyb[q] - pyb[p]
        # Radial terms: (theta_a - seg_a) - (theta_b - seg_b) from each end. Only the angle
        # of segment a relative to segment b is needed (one atan2), and from the other end
        # both segments turn by pi, which cancels.
        dseg = math.atan2(bx * ay - by * ax, ax * bx + ay * by)
        rho_pq[e] = r12 * _sigmoid(
            abs(_angle_diff(pta[p] - ptb[p], dseg)),
            prm[_COMPAT_RADIAL_MU_RAD],
            prm[_COMPAT_RADIAL_TAU],
        )
        rho_qp[e] = r12 * _sigmoid(
            abs(_angle_diff(pta[q] - ptb[q], dseg)),
            prm[_COMPAT_RADIAL_MU_RAD],
            prm[_COMPAT_RADIAL_TAU],
        )
    lam0 = s.lam0[:n_p]
    cur = s.cur[:n_p]
    nxt = s.nxt[:n_p]
    lam0[:] = lam[:n_p]
    cur[:] = lam[:n_p]
    for _ in range(iterations):
        nxt[:] = 0.0
        for e in range(n_e):
            nxt[e_p[e]] += rho_pq[e] * cur[e_q[e]]
            nxt[e_q[e]] += rho_qp[e] * cur[e_p[e]]
        for p in range(n_p):
            nxt[p] = w * cur[p] + (1.0 - w) * nxt[p] / max(n_p - 1, 1)
        cur[:] = nxt
    # 4. Score: the pairs that relaxation kept best, averaged over n_P.
    eff = s.eff
    for p in range(n_p):
        eff[p] = cur[p] / lam0[p]
    # Stable (insertion sort, descending): pairs of equal efficiency (common: a pair compatible
    # with no other ends at exactly w ** iterations) keep candidate order, so the score never
    # depends on a sort's internals.
    order = s.order
    for p in range(n_p):
        k = p
        while k > 0 and eff[order[k - 1]] < eff[p]:
            order[k] = order[k - 1]
            k -= 1
        order[k] = p
    total = 0.0
    for q in range(min(n_score, n_p)):
        total += cur[order[q]]
    mcc = min(1.0, max(0.0, total / n_score))
    # The check below only weighs the score down: below the threshold already, it cannot rise.
    if mcc * (1.0 + _BOUND_SLACK) + _BOUND_SLACK < thr:
        return _PRUNED
    # 5. Geometric check of the alignment the best pairs imply.
    g = _paired_share(xa, ya, ta, xb, yb, tb, pi, pj, order, n_p, prm, s)
    wg = prm[_GEOMETRIC_WEIGHT]
    return mcc * (1.0 + wg * g) / (1.0 + wg)


@njit(nogil=True, cache=True)
def _match(xa, ya, ta, ca, ma, xb, yb, tb, cb, mb, min_cells, prm):  # type: ignore[no-untyped-def]
    """:func:`_match_into` never pruned, with its own scratch (one 1:1 match)."""
    s = _new_scratch(xa.shape[0], xb.shape[0], int(prm[_RELAXATION_PAIRS]))
    _probe_pairs(xa, ya, ta, ca, ma, s)
    # B's cylinders as a column slice, typed as the scans pass them (any layout): one
    # compiled _match_into for both, not a second one (about 8 s of compilation) for this.
    cb_any = cb[:, 0 : cb.shape[1]]
    return _match_into(xa, ya, ta, ca, ma, xb, yb, tb, cb_any, mb, min_cells, prm, -np.inf, s)


def match_features(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    """Score two feature tuples ``(X, Y_up, theta, bits (sections, n), mask)``."""
    return float(_match(*a, *b, min_matchable_cells(), PARAMS))  # type: ignore[call-arg]


def min_matchable_cells() -> int:
    return int(math.ceil(fp.MIN_MATCHABLE_CELL_FRACTION * _disc_cells()))


def _disc_cells() -> int:
    ns = fp.CYLINDER_CELLS_PER_SIDE
    cell = 2.0 * fp.CYLINDER_RADIUS_PX / ns
    c = (np.arange(ns) - (ns - 1) / 2.0) * cell
    return int(np.count_nonzero(c[:, None] ** 2 + c[None, :] ** 2 <= fp.CYLINDER_RADIUS_PX**2))


@njit(nogil=True, inline="always")
def _match_template(px, py, pt, pc, pm, offsets, gx, gy, gt, gc, gm, t, min_cells, prm, thr, s):  # type: ignore[no-untyped-def]
    """:func:`_match_into` of the probe against gallery template ``t``, read in place (the
    template's cylinder words are read one minutia at a time, so a column slice of the
    gallery's ``(sections, total)`` array costs nothing against a contiguous copy)."""
    lo = offsets[t]
    hi = offsets[t + 1]
    return _match_into(
        px,
        py,
        pt,
        pc,
        pm,
        gx[lo:hi],
        gy[lo:hi],
        gt[lo:hi],
        gc[:, lo:hi],
        gm[lo:hi],
        min_cells,
        prm,
        thr,
        s,
    )


@njit(nogil=True, parallel=True, cache=True)
def _scan_kernel(
    px,
    py,
    pt,
    pc,
    pm,
    offsets,
    gx,
    gy,
    gt,
    gc,
    gm,
    rows,
    min_cells,
    prm,
    thr,
    n_chunks,
    max_len,
    out,
):  # type: ignore[no-untyped-def]
    """Every row's score into ``out``; ``-inf`` for a template proven below ``thr``."""
    n = rows.shape[0]
    for ch in prange(n_chunks):
        s = _new_scratch(px.shape[0], max_len, int(prm[_RELAXATION_PAIRS]))
        _probe_pairs(px, py, pt, pc, pm, s)
        for r in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            v = _match_template(
                px,
                py,
                pt,
                pc,
                pm,
                offsets,
                gx,
                gy,
                gt,
                gc,
                gm,
                rows[r],
                min_cells,
                prm,
                thr,
                s,
            )
            out[r] = -np.inf if v == _PRUNED else v


@njit(nogil=True, parallel=True, cache=True)
def _top_kernel(
    px,
    py,
    pt,
    pc,
    pm,
    offsets,
    gx,
    gy,
    gt,
    gc,
    gm,
    rows,
    min_cells,
    prm,
    n_chunks,
    max_len,
    top_s,
    top_t,
    scored,
):  # type: ignore[no-untyped-def]
    """Each chunk of ``rows`` keeps its own best ``k`` (``top_s, top_t`` of shape
    ``(n_chunks, k)``, score descending, equal scores by template index, padded with the
    floor (``-inf``, or the caller's minimum score) / -1) and
    skips the consolidation of any template whose bound is below the highest k-th best any
    chunk has so far (``top_s[:, k - 1]``, read while other threads write it: each value read
    is some chunk's k-th best at some moment). No chunk's k-th best exceeds the whole scan's,
    so every template of the overall top k is scored in full and kept by its chunk;
    ``scored[ch]`` counts the full matches."""
    n = rows.shape[0]
    k = top_s.shape[1]
    for ch in prange(n_chunks):
        s = _new_scratch(px.shape[0], max_len, int(prm[_RELAXATION_PAIRS]))
        _probe_pairs(px, py, pt, pc, pm, s)
        ts = top_s[ch]
        tt = top_t[ch]
        n_full = 0
        for r in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            t = rows[r]
            # Strictly below a k-th best is out whatever the tie rule; -inf until k are kept.
            thr = ts[k - 1]
            for other in range(n_chunks):
                thr = max(thr, top_s[other, k - 1])
            v = _match_template(
                px, py, pt, pc, pm, offsets, gx, gy, gt, gc, gm, t, min_cells, prm, thr, s
            )
            if v == _PRUNED:
                continue
            n_full += 1
            # Insert into the sorted list if it beats the last: (score desc, template asc).
            if v < ts[k - 1] or (v == ts[k - 1] and tt[k - 1] != -1 and t > tt[k - 1]):
                continue
            q = k - 1
            # Padding (template -1, at the floor) counts below a template of equal score.
            while q > 0 and (
                ts[q - 1] < v or (ts[q - 1] == v and (tt[q - 1] == -1 or tt[q - 1] > t))
            ):
                ts[q] = ts[q - 1]
                tt[q] = tt[q - 1]
                q -= 1
            ts[q] = v
            tt[q] = t
        scored[ch] = n_full


def _check_scan_args(
    offsets: npt.ArrayLike, gallery: tuple[np.ndarray, ...], rows: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rows = np.asarray(rows)
    offsets = np.asarray(offsets)
    if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.size < 1:
        raise InvalidTemplate("offsets must be a 1-D int64 array of at least one entry")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > gallery[0].shape[0]:
        raise InvalidTemplate("offsets must rise from 0 to at most the number of minutiae")
    if rows.ndim != 1 or (rows.size and (rows.dtype.kind not in "iu" or rows.min() < 0)):
        raise InvalidTemplate("rows must be a 1-D array of non-negative template indices")
    if rows.size and rows.max() >= offsets.size - 1:
        raise InvalidTemplate(f"row {int(rows.max())} is past the {offsets.size - 1} templates")
    return offsets, rows.astype(np.int64, copy=False)


def scan(
    probe: tuple[np.ndarray, ...],
    offsets: npt.NDArray[np.int64],
    gallery: tuple[np.ndarray, ...],
    rows: npt.NDArray[np.int64],
    min_score: float | None = None,
) -> npt.NDArray[np.float64]:
    """Scores of one probe against the gallery templates ``rows`` (CSR layout, see FingerGallery).

    ``probe`` and ``gallery`` are ``(X, Y_up, theta, bits (sections, n), mask)``; template ``t``
    owns minutiae ``offsets[t]:offsets[t + 1]``. With ``min_score``, a template proven below it
    skips the rest of its match and scores ``-inf`` (every score at least ``min_score`` is
    exact). Parallel over templates; releases the GIL.
    """
    offsets, rows = _check_scan_args(offsets, gallery, rows)
    floor = _floor(min_score)
    out = np.empty(rows.shape[0], np.float64)
    if rows.shape[0]:
        n_chunks = max(1, min(rows.shape[0], numba.get_num_threads() * 8))
        max_len = max(1, int(np.diff(offsets).max()))
        _scan_kernel(  # type: ignore[call-arg]
            *probe,
            offsets,
            *gallery,
            rows,
            min_matchable_cells(),
            PARAMS,
            floor,
            n_chunks,
            max_len,
            out,
        )
    return out


def _floor(min_score: float | None) -> float:
    """``min_score`` checked, as the kernels' threshold (``-inf`` for none)."""
    if min_score is None:
        return -np.inf
    if isinstance(min_score, bool) or not isinstance(min_score, float | int | np.number):
        raise InvalidTemplate(f"min_score must be a number, got {min_score!r}")
    floor = float(min_score)
    if math.isnan(floor):
        raise InvalidTemplate("min_score must not be NaN")
    return floor


class TopK(NamedTuple):
    """Result of :func:`scan_top`: ``scores`` descending, ``templates`` their gallery indices
    (equal scores by ascending index), at most ``k`` of each; ``scored`` how many templates
    were matched in full (the others were proven below the k-th best and skipped)."""

    scores: npt.NDArray[np.float64]
    templates: npt.NDArray[np.int64]
    scored: int


def scan_top(
    probe: tuple[np.ndarray, ...],
    offsets: npt.NDArray[np.int64],
    gallery: tuple[np.ndarray, ...],
    rows: npt.NDArray[np.int64],
    k: int,
    min_score: float | None = None,
) -> TopK:
    """The ``k`` best of :func:`scan` over ``rows``, exactly as sorting its scores (score
    descending, equal scores by ascending template index), with the same score values;
    with ``min_score``, only those scoring at least that (a decision threshold: what a
    1:N identification or a duplicate search asks for).

    Branch and bound: a template whose upper bound on the score (relaxation run with the
    distance-and-direction compatibilities, which bound the full ones, see
    :func:`_match_into`) is below the k-th best so far, or below ``min_score``, skips the
    radial terms, the relaxation and the geometric check (about two fifths of a match); one
    whose MCC score is below them skips the geometric check. The geometric check weighs
    impostor scores down to a third of their MCC score, so without ``min_score`` the k-th
    best of an impostor-only gallery sits under every bound and little is skipped; a
    decision threshold sits above nearly every impostor's bound. Same arguments as
    :func:`scan`. Parallel over chunks of ``rows`` (one per thread); releases the GIL.
    """
    offsets, rows = _check_scan_args(offsets, gallery, rows)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidTemplate(f"k must be a positive integer, got {k!r}")
    floor = _floor(min_score)
    k = int(min(k, max(rows.shape[0], 1)))
    n_chunks = max(1, min(rows.shape[0], numba.get_num_threads()))
    # The floor stands in for the k-th best until k templates reach it: a template scoring
    # exactly the floor is still kept (the kernel skips only what is proven strictly below).
    top_s = np.full((n_chunks, k), floor)
    top_t = np.full((n_chunks, k), -1, np.int64)
    scored = np.zeros(n_chunks, np.int64)
    if rows.shape[0]:
        max_len = max(1, int(np.diff(offsets).max()))
        _top_kernel(  # type: ignore[call-arg]
            *probe,
            offsets,
            *gallery,
            rows,
            min_matchable_cells(),
            PARAMS,
            n_chunks,
            max_len,
            top_s,
            top_t,
            scored,
        )
    s, t = top_s.ravel(), top_t.ravel()
    keep = t >= 0
    s, t = s[keep], t[keep]
    order = np.lexsort((t, -s))[:k]
    return TopK(s[order], t[order], int(scored.sum()))

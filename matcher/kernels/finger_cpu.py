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

import numba
import numpy as np
import numpy.typing as npt
from numba import njit, prange

from matcher import finger_params as fp
from matcher.errors import InvalidTemplate
from matcher.kernels.cpu import _popcount

_TWO_PI = 2.0 * math.pi
# sqrt of every popcount a local similarity can meet (six 64-bit sections): a table lookup is
# the same double as math.sqrt and cheaper than three vector square roots per entry.
_SQRT = np.sqrt(np.arange(6 * 64 + 1, dtype=np.float64))
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
def _first_at_least(v, x, strict):  # type: ignore[no-untyped-def]
    """First index of ascending ``v`` with ``v[k] > x`` (strict) or ``v[k] >= x``."""
    lo = 0
    hi = v.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if v[mid] > x or (not strict and v[mid] == x):
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(nogil=True, inline="always")
def _sigmoid(v, mu, tau):  # type: ignore[no-untyped-def]
    return 1.0 / (1.0 + math.exp(-tau * (v - mu)))


@njit(nogil=True, cache=True)
def _best_partners(row_best, row_arg, col_best, col_arg, nb):  # type: ignore[no-untyped-def]
    """Candidate pairs: each row's and each column's best entry (positive only), once each,
    as ``(values, keys)`` with ``key = i * nb + j``, value descending, equal values by key."""
    na = row_best.shape[0]
    vals = np.empty(na + nb)
    keys = np.empty(na + nb, np.int64)
    m = 0
    for i in range(na):
        if row_best[i] > 0.0:
            vals[m] = row_best[i]
            keys[m] = i * nb + row_arg[i]
            m += 1
    for j in range(nb):
        i = col_arg[j]
        # A column's best that is also its row's best is already in.
        if col_best[j] > 0.0 and not (row_best[i] > 0.0 and row_arg[i] == j):
            vals[m] = col_best[j]
            keys[m] = i * nb + j
            m += 1
    out_s = np.empty(m)
    out_k = np.empty(m, np.int64)
    if m <= 256:
        # Rank by counting, branch-free: a few thousand comparisons, no mispredicted sort.
        for p in range(m):
            v = vals[p]
            kp = keys[p]
            rank = 0
            for q in range(m):
                rank += 1 if (vals[q] > v) | ((vals[q] == v) & (keys[q] < kp)) else 0
            out_s[rank] = v
            out_k[rank] = kp
        return out_s, out_k
    by_key = np.argsort(keys[:m], kind="mergesort")
    order = by_key[np.argsort(-vals[:m][by_key], kind="mergesort")]  # stable: equal values by key
    for q in range(m):
        out_s[q] = vals[order[q]]
        out_k[q] = keys[order[q]]
    return out_s, out_k


@njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _paired_share(xa, ya, ta, xb, yb, tb, pi, pj, order, n_p, prm):  # type: ignore[no-untyped-def]
    """Geometric check: the share ``n^2 / (n_A n_B)`` of minutiae paired by the best transform.

    Hypotheses are the rigid transforms of the first ``GEOMETRIC_HYPOTHESES`` pairs in ``order``
    (B's minutia onto A's, directions included). Under each, A's minutiae in index order take
    the nearest B minutia not yet taken within the tolerances (squared distance strictly
    smallest, ties to the lower index); ``n`` counts them. ``n_A`` (``n_B``) counts minutiae with
    a minutia of the other side within ``GEOMETRIC_OVERLAP_PX``, at least
    ``GEOMETRIC_MIN_OVERLAP``. The first hypothesis with the largest ``n`` wins.
    """
    na = xa.shape[0]
    nb = xb.shape[0]
    tol2 = prm[_GEOMETRIC_DISTANCE_PX] * prm[_GEOMETRIC_DISTANCE_PX]
    atol = prm[_GEOMETRIC_DIRECTION_RAD]
    r2 = prm[_GEOMETRIC_OVERLAP_PX] * prm[_GEOMETRIC_OVERLAP_PX]
    xt = np.empty(nb)
    yt = np.empty(nb)
    tt = np.empty(nb)
    taken = np.empty(nb, np.bool_)
    near_b = np.empty(nb, np.bool_)
    best_n = -1.0
    best_a = 0.0
    best_b = 0.0
    for h in range(min(int(prm[_GEOMETRIC_HYPOTHESES]), n_p)):
        p = order[h]
        i0 = pi[p]
        j0 = pj[p]
        rot = _angle_diff(ta[i0], tb[j0])
        c = math.cos(rot)
        s = math.sin(rot)
        tx = xa[i0] - (c * xb[j0] - s * yb[j0])
        ty = ya[i0] - (s * xb[j0] + c * yb[j0])
        for j in range(nb):
            xt[j] = c * xb[j] - s * yb[j] + tx
            yt[j] = s * xb[j] + c * yb[j] + ty
            tt[j] = tb[j] + rot
            taken[j] = False
            near_b[j] = False
        n = 0.0
        n_a = 0.0
        for i in range(na):
            nearest = tol2
            pick = -1
            near = False
            for j in range(nb):
                dx = xa[i] - xt[j]
                dy = ya[i] - yt[j]
                d2 = dx * dx + dy * dy
                if d2 < r2:
                    near = True
                    near_b[j] = True
                if d2 < nearest and not taken[j] and abs(_angle_diff(ta[i], tt[j])) < atol:
                    nearest = d2
                    pick = j
            if pick >= 0:
                taken[pick] = True
                n += 1.0
            if near:
                n_a += 1.0
        if n > best_n:
            n_b = 0.0
            for j in range(nb):
                if near_b[j]:
                    n_b += 1.0
            best_n = n
            best_a = n_a
            best_b = n_b
    if best_n <= 0.0:
        return 0.0
    floor = prm[_GEOMETRIC_MIN_OVERLAP]
    return min(1.0, best_n * best_n / (max(best_a, floor) * max(best_b, floor)))


@njit(nogil=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _match(xa, ya, ta, ca, ma, xb, yb, tb, cb, mb, min_cells, prm):  # type: ignore[no-untyped-def]
    """MCC-style score in [0, 1] of two feature sets (only minutiae with valid cylinders).

    ``ca``/``cb`` are section-major ``(sections, n)`` so the row of local similarities of one
    minutia of A against every minutia of B is a vectorisable loop over B.
    """
    na = xa.shape[0]
    nb = xb.shape[0]
    if na == 0 or nb == 0:
        return 0.0
    # 1. Local similarities. Candidates are every minutia's best partner on the other side: the
    # maximum of its row (A) or column (B), ties to the lower index. The MCC paper's global top-n
    # can be filled by a few minutiae with many look-alike neighbours and leave others without
    # a candidate; the best partner of each minutia cannot.
    sim_all = np.empty(na * nb)
    row_best = np.zeros(na)
    row_arg = np.zeros(na, np.int64)
    col_best = np.zeros(nb)
    col_arg = np.zeros(nb, np.int64)
    # Directions sorted ascending (as features() stores them) let each row visit only the B
    # minutiae within the direction window: one or two contiguous runs, about half of B. The
    # window is widened by a hair and the exact test stays in the loop, so the result is the
    # same as visiting every entry; unsorted input simply visits all of B.
    c0b, c1b, c2b, c3b, c4b, c5b = cb[0], cb[1], cb[2], cb[3], cb[4], cb[5]
    sorted_b = True
    for j in range(1, nb):
        sorted_b &= tb[j - 1] <= tb[j]
    sorted_b &= (tb[0] >= 0.0) & (tb[nb - 1] < _TWO_PI)
    window = prm[_MAX_DIRECTION_DIFF_RAD] + 1e-9
    for i in range(na):
        row = sim_all[i * nb : (i + 1) * nb]
        ti = ta[i]
        lo1, hi1, lo2, hi2 = 0, nb, 0, 0
        if sorted_b and window < math.pi and 0.0 <= ti < _TWO_PI:
            a0 = ti - window
            a1 = ti + window
            if a0 < 0.0:
                lo1, hi1 = 0, _first_at_least(tb, a1, True)
                lo2, hi2 = _first_at_least(tb, a0 + _TWO_PI, False), nb
            elif a1 >= _TWO_PI:
                lo1, hi1 = _first_at_least(tb, a0, False), nb
                lo2, hi2 = 0, _first_at_least(tb, a1 - _TWO_PI, True)
            else:
                lo1 = _first_at_least(tb, a0, False)
                hi1 = _first_at_least(tb, a1, True)
            # The runs never overlap (window < pi); zero the rest of the row.
            for j in range(nb):
                row[j] = 0.0
        mi = ma[i]
        c0, c1, c2, c3, c4, c5 = ca[0, i], ca[1, i], ca[2, i], ca[3, i], ca[4, i], ca[5, i]
        for run in range(2):
            lo = lo1 if run == 0 else lo2
            hi = hi1 if run == 0 else hi2
            # The six sections written out so the loop over B's minutiae is the vectorised one.
            # Slices, not an offset loop: numba vectorises the loop only over unit-stride views.
            rw = row[lo:hi]
            tbs = tb[lo:hi]
            mbs = mb[lo:hi]
            d0, d1, d2 = c0b[lo:hi], c1b[lo:hi], c2b[lo:hi]
            d3, d4, d5 = c3b[lo:hi], c4b[lo:hi], c5b[lo:hi]
            for j in range(hi - lo):
                dt = ti - tbs[j]
                dt -= _TWO_PI * math.floor((dt + math.pi) / _TWO_PI)  # into [-pi, pi)
                m = mi & mbs[j]
                x0, y0 = c0 & m, d0[j] & m
                x1, y1 = c1 & m, d1[j] & m
                x2, y2 = c2 & m, d2[j] & m
                x3, y3 = c3 & m, d3[j] & m
                x4, y4 = c4 & m, d4[j] & m
                x5, y5 = c5 & m, d5[j] & m
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
                den = _SQRT[sa] + _SQRT[sb]
                sim = 1.0 - _SQRT[d] / (den + (0.0 if ok else 1.0))
                rw[j] = sim if ok else 0.0
        best = 0.0
        for j in range(nb):
            best = max(best, row[j])
        if best > 0.0:
            j = 0
            while row[j] != best:
                j += 1
            row_best[i] = best
            row_arg[i] = j
        # Strictly greater: an equal later row keeps the earlier one (vectorised selects).
        for j in range(nb):
            v = row[j]
            better = v > col_best[j]
            col_best[j] = v if better else col_best[j]
            col_arg[j] = i if better else col_arg[j]
    cand_s, cand_k = _best_partners(row_best, row_arg, col_best, col_arg, nb)
    n_cand = cand_s.shape[0]
    cand_i = cand_k // nb
    cand_j = cand_k % nb
    # 2. One-to-one assignment: greedy over the sorted candidates.
    used_a = np.zeros(na, np.bool_)
    used_b = np.zeros(nb, np.bool_)
    pi = np.empty(n_cand, np.int64)
    pj = np.empty(n_cand, np.int64)
    lam = np.empty(n_cand)
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
    rho = np.zeros((n_p, n_p))
    # The pairs' minutiae gathered once, so the distance and direction tests of one pair against
    # all later ones are one vectorised loop; the trigonometry runs only for the few that pass.
    pxa, pya, pta = xa[pi[:n_p]], ya[pi[:n_p]], ta[pi[:n_p]]
    pxb, pyb, ptb = xb[pj[:n_p]], yb[pj[:n_p]], tb[pj[:n_p]]
    dd_all = np.empty(n_p)
    dt_all = np.empty(n_p)
    for p in range(n_p):
        for q in range(p + 1, n_p):
            ax, ay = pxa[q] - pxa[p], pya[q] - pya[p]
            bx, by = pxb[q] - pxb[p], pyb[q] - pyb[p]
            dd_all[q] = abs(math.sqrt(ax * ax + ay * ay) - math.sqrt(bx * bx + by * by))
            dt_all[q] = abs(_angle_diff(_angle_diff(pta[p], pta[q]), _angle_diff(ptb[p], ptb[q])))
        for q in range(p + 1, n_p):
            dd = dd_all[q]
            dt = dt_all[q]
            # Past these a sigmoid is below 1e-4 and the compatibility is defined as zero (part of
            # the score, not only a shortcut). Distance and direction terms are symmetric; the
            # radial term is taken from each end.
            if dd > prm[_COMPAT_DISTANCE_CUT] or dt > prm[_COMPAT_DIRECTION_CUT]:
                continue
            ax, ay = pxa[q] - pxa[p], pya[q] - pya[p]
            bx, by = pxb[q] - pxb[p], pyb[q] - pyb[p]
            r12 = _sigmoid(dd, prm[_COMPAT_DISTANCE_MU_PX], prm[_COMPAT_DISTANCE_TAU]) * _sigmoid(
                dt, prm[_COMPAT_DIRECTION_MU_RAD], prm[_COMPAT_DIRECTION_TAU]
            )
            # Radial terms: (theta_a - seg_a) - (theta_b - seg_b) from each end. Only the angle
            # of segment a relative to segment b is needed (one atan2), and from the other end
            # both segments turn by pi, which cancels.
            dseg = math.atan2(bx * ay - by * ax, ax * bx + ay * by)
            rho[p, q] = r12 * _sigmoid(
                abs(_angle_diff(pta[p] - ptb[p], dseg)),
                prm[_COMPAT_RADIAL_MU_RAD],
                prm[_COMPAT_RADIAL_TAU],
            )
            rho[q, p] = r12 * _sigmoid(
                abs(_angle_diff(pta[q] - ptb[q], dseg)),
                prm[_COMPAT_RADIAL_MU_RAD],
                prm[_COMPAT_RADIAL_TAU],
            )
    lam0 = lam[:n_p].copy()
    cur = lam[:n_p].copy()
    nxt = np.empty(n_p)
    w = prm[_RELAXATION_WEIGHT]
    for _ in range(int(prm[_RELAXATION_ITERATIONS])):
        for p in range(n_p):
            acc = 0.0
            for q in range(n_p):
                acc += rho[p, q] * cur[q]
            nxt[p] = w * cur[p] + (1.0 - w) * acc / max(n_p - 1, 1)
        cur[:] = nxt
    # 4. Score: the pairs that relaxation kept best, averaged over n_P.
    n_min = min(na, nb)
    n_score = int(prm[_MIN_SCORED_PAIRS]) + int(
        round(
            _sigmoid(n_min, prm[_SCORED_PAIRS_SIGMOID_MU], prm[_SCORED_PAIRS_SIGMOID_TAU])
            * (prm[_MAX_SCORED_PAIRS] - prm[_MIN_SCORED_PAIRS])
        )
    )
    eff = np.empty(n_p)
    for p in range(n_p):
        eff[p] = cur[p] / lam0[p]
    # Stable: pairs of equal efficiency (common: a pair compatible with no other ends at exactly
    # w ** iterations) keep candidate order, so the score never depends on a sort's internals.
    order = np.argsort(-eff, kind="mergesort")
    total = 0.0
    for q in range(min(n_score, n_p)):
        total += cur[order[q]]
    mcc = min(1.0, max(0.0, total / n_score))
    # 5. Geometric check of the alignment the best pairs imply.
    g = _paired_share(xa, ya, ta, xb, yb, tb, pi, pj, order, n_p, prm)
    wg = prm[_GEOMETRIC_WEIGHT]
    return mcc * (1.0 + wg * g) / (1.0 + wg)


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


@njit(nogil=True, parallel=True, cache=True)
def _scan_kernel(
    px, py, pt, pc, pm, offsets, gx, gy, gt, gc, gm, rows, min_cells, prm, n_chunks, max_len, out
):  # type: ignore[no-untyped-def]
    n = rows.shape[0]
    for ch in prange(n_chunks):
        # Each template's cylinders are copied into a contiguous (6, m) scratch: a column slice
        # of the gallery's (6, total) array has an unknown stride to numba, and the local
        # similarity loop only vectorises over unit-stride rows.
        scratch = np.empty(gc.shape[0] * max_len, np.uint64)
        for r in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            t = rows[r]
            lo = offsets[t]
            hi = offsets[t + 1]
            m = hi - lo
            cb = scratch[: gc.shape[0] * m].reshape((gc.shape[0], m))
            for k in range(gc.shape[0]):
                for q in range(m):
                    cb[k, q] = gc[k, lo + q]
            out[r] = _match(
                px, py, pt, pc, pm, gx[lo:hi], gy[lo:hi], gt[lo:hi], cb, gm[lo:hi], min_cells, prm
            )


def scan(
    probe: tuple[np.ndarray, ...],
    offsets: npt.NDArray[np.int64],
    gallery: tuple[np.ndarray, ...],
    rows: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Scores of one probe against the gallery templates ``rows`` (CSR layout, see FingerGallery).

    ``probe`` and ``gallery`` are ``(X, Y_up, theta, bits (sections, n), mask)``; template ``t``
    owns minutiae ``offsets[t]:offsets[t + 1]``. Parallel over templates; releases the GIL.
    """
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
    rows = rows.astype(np.int64, copy=False)
    out = np.empty(rows.shape[0], np.float64)
    if rows.shape[0]:
        n_chunks = max(1, min(rows.shape[0], numba.get_num_threads() * 8))
        max_len = max(1, int(np.diff(offsets).max()))
        _scan_kernel(  # type: ignore[call-arg]
            *probe, offsets, *gallery, rows, min_matchable_cells(), PARAMS, n_chunks, max_len, out
        )
    return out

"""Slow, obviously-correct fingerprint matching in plain Python/numpy: the kernels' yardstick.

Written straight from the definitions in :mod:`matcher.finger_params` and MCC (Cappelli, Ferrara,
Maltoni, TPAMI 2010), one cell and one pair at a time, with no pruning and no vector tricks.
"""

from __future__ import annotations

import math

import numpy as np

from matcher import finger_params as fp


def angle_diff(a: float, b: float) -> float:
    d = (a - b) % (2 * math.pi)
    return d - 2 * math.pi if d >= math.pi else d


def _inside_or_near_hull(px: float, py: float, pts: np.ndarray, margin: float) -> bool:
    """Distance from the convex hull (via every edge of the hull of pts) <= margin."""
    hull = _hull(pts)
    if len(hull) >= 3:
        inside = all(
            (hull[(k + 1) % len(hull)][0] - hull[k][0]) * (py - hull[k][1])
            - (hull[(k + 1) % len(hull)][1] - hull[k][1]) * (px - hull[k][0])
            >= 0
            for k in range(len(hull))
        )
        if inside:
            return True
    best = min(math.hypot(px - hx, py - hy) for hx, hy in hull)
    for k in range(len(hull)):
        (ax, ay), (bx, by) = hull[k], hull[(k + 1) % len(hull)]
        lx, ly = bx - ax, by - ay
        ll = lx * lx + ly * ly
        if ll:
            t = min(1.0, max(0.0, ((px - ax) * lx + (py - ay) * ly) / ll))
            best = min(best, math.hypot(px - ax - t * lx, py - ay - t * ly))
    return best <= margin


def _hull(pts: np.ndarray) -> list[tuple[float, float]]:
    p = sorted(set(map(tuple, pts.tolist())))
    if len(p) <= 2:
        return p

    def cross(o, a, b):  # type: ignore[no-untyped-def]
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for q in p:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    upper: list = []
    for q in reversed(p):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return lower[:-1] + upper[:-1]


def cylinders_reference(x, y, theta):  # type: ignore[no-untyped-def]
    """(bits (n, sections) uint64, mask (n,) uint64, ok (n,) bool) from the MCC definitions."""
    X, Y, T = np.asarray(x, float), -np.asarray(y, float), np.asarray(theta, float)
    n = len(X)
    ns, nd, radius = fp.CYLINDER_CELLS_PER_SIDE, fp.CYLINDER_SECTIONS, fp.CYLINDER_RADIUS_PX
    ss, sd = fp.SPATIAL_SIGMA_PX, fp.DIRECTIONAL_SIGMA_RAD
    cell, dd = 2 * radius / ns, 2 * math.pi / nd
    pts = np.stack([X, Y], axis=1)
    disc = sum(
        1
        for a in range(ns)
        for b in range(ns)
        if ((a - (ns - 1) / 2) * cell) ** 2 + ((b - (ns - 1) / 2) * cell) ** 2 <= radius**2
    )
    bits = np.zeros((n, nd), np.uint64)
    mask = np.zeros(n, np.uint64)
    ok = np.zeros(n, bool)
    for i in range(n):
        neighbours = [
            j
            for j in range(n)
            if j != i and math.hypot(X[j] - X[i], Y[j] - Y[i]) <= radius + 3 * ss
        ]
        valid = 0
        for a in range(ns):
            for b in range(ns):
                u, v = (a - (ns - 1) / 2) * cell, (b - (ns - 1) / 2) * cell
                if u * u + v * v > radius * radius:
                    continue
                px = X[i] + math.cos(T[i]) * u - math.sin(T[i]) * v
                py = Y[i] + math.sin(T[i]) * u + math.cos(T[i]) * v
                if not _inside_or_near_hull(px, py, pts, fp.HULL_MARGIN_PX):
                    continue
                valid += 1
                mask[i] |= np.uint64(1) << np.uint64(a * ns + b)
                for k in range(nd):
                    total = 0.0
                    for j in neighbours:
                        d2 = (X[j] - px) ** 2 + (Y[j] - py) ** 2
                        if d2 > (3 * ss) ** 2:
                            continue
                        cs = math.exp(-d2 / (2 * ss * ss)) / (ss * math.sqrt(2 * math.pi))
                        diff = angle_diff(-math.pi + (k + 0.5) * dd, angle_diff(T[j], T[i]))
                        e = 1 / (sd * math.sqrt(2))
                        cd = 0.5 * (math.erf((diff + dd / 2) * e) - math.erf((diff - dd / 2) * e))
                        total += cs * cd
                    if total >= fp.CELL_ON_THRESHOLD:
                        bits[i, k] |= np.uint64(1) << np.uint64(a * ns + b)
        ok[i] = valid >= fp.MIN_VALID_CELL_FRACTION * disc and len(neighbours) >= fp.MIN_NEIGHBOURS
    return bits, mask, ok


def _sigmoid(v: float, mu: float, tau: float) -> float:
    return 1 / (1 + math.exp(-tau * (v - mu)))


def match_reference(a, b, min_cells: int) -> float:  # type: ignore[no-untyped-def]
    """Score of two feature tuples (X, Y_up, theta, bits (sections, n), mask), by definition."""
    xa, ya, ta, ca, ma = a
    xb, yb, tb, cb, mb = b
    na, nb = len(xa), len(xb)
    if not na or not nb:
        return 0.0
    pop = lambda w: bin(int(w)).count("1")  # noqa: E731
    sims = []
    for i in range(na):
        for j in range(nb):
            if abs(angle_diff(ta[i], tb[j])) > fp.MAX_DIRECTION_DIFF_RAD:
                continue
            m = int(ma[i]) & int(mb[j])
            if pop(m) < min_cells:
                continue
            d = sum(pop((int(ca[k, i]) ^ int(cb[k, j])) & m) for k in range(ca.shape[0]))
            sa = sum(pop(int(ca[k, i]) & m) for k in range(ca.shape[0]))
            sb = sum(pop(int(cb[k, j]) & m) for k in range(ca.shape[0]))
            if sa + sb == 0:
                continue
            s = 1 - math.sqrt(d) / (math.sqrt(sa) + math.sqrt(sb))
            if s > 0:
                sims.append((s, i, j))
    # Candidates: each minutia's best partner (its row's and its column's maximum; equal
    # similarities go to the lower index), once each, best first, equal ones by (i, j).
    best_row: dict[int, tuple[float, int, int]] = {}
    best_col: dict[int, tuple[float, int, int]] = {}
    for s, i, j in sims:  # (i, j) order, so "strictly greater" keeps the lower index
        if i not in best_row or s > best_row[i][0]:
            best_row[i] = (s, i, j)
        if j not in best_col or s > best_col[j][0]:
            best_col[j] = (s, i, j)
    cands = sorted(
        set(best_row.values()) | set(best_col.values()), key=lambda t: (-t[0], t[1], t[2])
    )
    used_a, used_b, pairs = set(), set(), []
    for s, i, j in cands:
        if len(pairs) == fp.RELAXATION_PAIRS:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, s))
    if not pairs:
        return 0.0
    n_p = len(pairs)
    rho = np.zeros((n_p, n_p))
    for p, (ia, ja, _) in enumerate(pairs):
        for q, (ib, jb, _) in enumerate(pairs):
            if p == q:
                continue
            d1 = math.hypot(xa[ia] - xa[ib], ya[ia] - ya[ib])
            d2 = math.hypot(xb[ja] - xb[jb], yb[ja] - yb[jb])
            dt = abs(angle_diff(angle_diff(ta[ia], ta[ib]), angle_diff(tb[ja], tb[jb])))
            # The matcher's definition: compatibility is zero where a sigmoid is below 1e-4.
            if abs(d1 - d2) > fp.COMPAT_DISTANCE_MU_PX + 9.2 / abs(fp.COMPAT_DISTANCE_TAU):
                continue
            if dt > fp.COMPAT_DIRECTION_MU_RAD + 9.2 / abs(fp.COMPAT_DIRECTION_TAU):
                continue
            ra = angle_diff(ta[ia], math.atan2(ya[ib] - ya[ia], xa[ib] - xa[ia]))
            rb = angle_diff(tb[ja], math.atan2(yb[jb] - yb[ja], xb[jb] - xb[ja]))
            rho[p, q] = (
                _sigmoid(abs(d1 - d2), fp.COMPAT_DISTANCE_MU_PX, fp.COMPAT_DISTANCE_TAU)
                * _sigmoid(dt, fp.COMPAT_DIRECTION_MU_RAD, fp.COMPAT_DIRECTION_TAU)
                * _sigmoid(abs(angle_diff(ra, rb)), fp.COMPAT_RADIAL_MU_RAD, fp.COMPAT_RADIAL_TAU)
            )
    lam0 = np.array([s for _, _, s in pairs])
    lam = lam0.copy()
    w = fp.RELAXATION_WEIGHT
    for _ in range(fp.RELAXATION_ITERATIONS):
        lam = w * lam + (1 - w) * (rho @ lam) / max(n_p - 1, 1)
    n_score = fp.MIN_SCORED_PAIRS + int(
        round(
            _sigmoid(min(na, nb), fp.SCORED_PAIRS_SIGMOID_MU, fp.SCORED_PAIRS_SIGMOID_TAU)
            * (fp.MAX_SCORED_PAIRS - fp.MIN_SCORED_PAIRS)
        )
    )
    order = np.argsort(-(lam / lam0), kind="stable")
    mcc = float(min(1.0, max(0.0, lam[order[:n_score]].sum() / n_score)))
    g = paired_share_reference(a, b, [pairs[p][:2] for p in order])
    return mcc * (1 + fp.GEOMETRIC_WEIGHT * g) / (1 + fp.GEOMETRIC_WEIGHT)


def paired_share_reference(a, b, pairs) -> float:  # type: ignore[no-untyped-def]
    """The geometric check by its definition: ``pairs`` (i, j) most efficient first."""
    xa, ya, ta = a[0], a[1], a[2]
    xb, yb, tb = b[0], b[1], b[2]
    best = None
    for i0, j0 in pairs[: fp.GEOMETRIC_HYPOTHESES]:
        rot = angle_diff(ta[i0], tb[j0])
        c, s = math.cos(rot), math.sin(rot)
        tx = xa[i0] - (c * xb[j0] - s * yb[j0])
        ty = ya[i0] - (s * xb[j0] + c * yb[j0])
        bx = [c * x - s * y + tx for x, y in zip(xb, yb, strict=True)]
        by = [s * x + c * y + ty for x, y in zip(xb, yb, strict=True)]
        taken: set[int] = set()
        for i in range(len(xa)):
            near = [
                (math.hypot(xa[i] - bx[j], ya[i] - by[j]) ** 2, j)
                for j in range(len(xb))
                if j not in taken
                and math.hypot(xa[i] - bx[j], ya[i] - by[j]) < fp.GEOMETRIC_DISTANCE_PX
                and abs(angle_diff(ta[i], tb[j] + rot)) < fp.GEOMETRIC_DIRECTION_RAD
            ]
            if near:
                taken.add(min(near)[1])
        r = fp.GEOMETRIC_OVERLAP_PX
        n_a = sum(
            any(math.hypot(xa[i] - bx[j], ya[i] - by[j]) < r for j in range(len(xb)))
            for i in range(len(xa))
        )
        n_b = sum(
            any(math.hypot(xa[i] - bx[j], ya[i] - by[j]) < r for i in range(len(xa)))
            for j in range(len(xb))
        )
        if best is None or len(taken) > best[0]:
            best = (len(taken), n_a, n_b)
    if not best or not best[0]:
        return 0.0
    n, n_a, n_b = best
    floor = fp.GEOMETRIC_MIN_OVERLAP
    return min(1.0, n * n / (max(n_a, floor) * max(n_b, floor)))

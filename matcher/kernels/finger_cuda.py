"""Numba CUDA kernel of the fingerprint 1:N scan: the contract of :func:`finger_cpu.scan`, on a GPU.

Same arguments, same constants (:data:`finger_cpu.PARAMS` and its index names,
:func:`finger_cpu.min_matchable_cells`) and the same algorithm, step by step, as
``finger_cpu._match``; scores agree with the CPU kernel to within 1e-9. Every value that feeds a
discrete decision (candidate order, greedy picks, cut-offs, efficiency order) is computed by the
same operations in the same order, so exact ties stay exact ties and are broken the same way; the
CPU kernel is compiled with fast-math and the GPU's libdevice ``exp``/``atan2`` are not glibc's,
so other values may differ in the last bits. The public wrapper checks dtypes, shapes, contiguity,
finite values and the CSR offsets and raises :class:`~matcher.errors.InvalidTemplate`; the kernel
and its device functions only do arithmetic on arrays and never raise.

Install and simulator: as :mod:`matcher.kernels.cuda` (the ``[gpu]`` extra on a GPU host; importing
this module never needs CUDA; without a device :func:`available` is ``False`` and :func:`scan`
raises :class:`~matcher.errors.DeviceUnavailable` after checking its inputs; tests run the kernel
under ``NUMBA_ENABLE_CUDASIM=1``).

Algorithm steps (per gallery template; MCC, Cappelli, Ferrara, Maltoni, TPAMI 2010)
1. Local similarity of every (probe minutia i, template minutia j), i outer, j inner: zero unless
   the directions differ by at most MAX_DIRECTION_DIFF_RAD, the common valid cells reach
   ``min_cells`` and some bit is set; ``1 - sqrt(|a ^ b|) / (sqrt|a| + sqrt|b|)`` over the common
   cells. Candidates are each probe minutia's best partner and each template minutia's best
   partner (running maxima; strictly greater replaces, so equal maxima go to the lower index),
   sorted value descending, equal values in ``(i, j)`` order, as on the CPU.
2. Greedy one-to-one assignment over the sorted candidates, at most RELAXATION_PAIRS pairs.
3. Compatibility ``rho`` of every two pairs (distance and direction sigmoids once per pair of
   pairs, radial-angle sigmoid from each end; zero past the CPU's cut-offs), then
   RELAXATION_ITERATIONS of relaxation.
4. Efficiency ``relaxed / initial`` of each pair; the mean relaxed similarity of the n_score most
   efficient pairs, in a stable order as on the CPU: pairs compatible with no other pair all end
   with efficiency exactly ``RELAXATION_WEIGHT ** RELAXATION_ITERATIONS`` but different relaxed
   values, so the tie rule decides which of them count.
5. Geometric check (:func:`finger_cpu._paired_share`): the rigid transforms of the first
   GEOMETRIC_HYPOTHESES pairs in that order; under each, probe minutiae in index order take the
   nearest free template minutia within the tolerances; the score is weighed by the share of
   minutiae paired by the best transform.

Thread mapping, and why
-----------------------
One thread per requested template: thread ``r`` scores ``rows[r]`` and writes ``out[r]``. A match is
a few thousand dependent steps (running maxima, a greedy pass, a 40 x 40 relaxation, a sort), with
nothing to share between templates, so a thread owns one whole match and needs no barrier or
reduction. All threads read the same probe minutia at the same moment: the probe stays in global
memory and each load is one broadcast from L1 (shared memory would add a cooperative load and a
barrier for no fewer transactions). Each thread walks its own CSR slice of the gallery
(``offsets[t]:offsets[t + 1]``), so gallery loads are not coalesced across a warp; a template is a
few hundred bytes per section row and stays in L1/L2 while the probe loop sweeps it. Templates of
different sizes make the threads of a warp finish at different times (divergence); sorting
``rows`` by minutiae count before the call would even this out.

Memory
------
Per-thread scratch is ``cuda.local.array`` with compile-time sizes: candidates
(``_MAX_CANDIDATES`` = 510 x (float64 + int64), 8.2 kB), running row/column maxima (255 x (float64
+ 2 int32), 4.1 kB), pairs (``_MAX_PAIRS`` = 40 x (3 float64 + 2 int32)), ``rho`` (40 x 40
float64, 12.8 kB) and the sort's order: about 27 kB per thread in local memory (cached in
L1/L2; only the entries a template uses are touched). The CPU kernel's per-minutia ``used`` flags
and its ``na x nb`` similarity matrix are replaced by a scan of the pairs already taken and by
running maxima updated as each similarity is computed.
The full gallery (``offsets``, five arrays, ``rows``) is copied to the device on every call, then
one launch of ``len(rows)`` threads; a device-resident gallery (copied once at enrolment) is the
next step.

Glossary inside kernels: ``px, py, pt, pc, pm`` the probe's X, Y (y up), theta, section-major bits
``(6, n)`` and validity masks; ``gx ... gm`` the same for the flat gallery; ``lo`` the first
minutia of the thread's template, ``nb`` its count; ``prm`` :data:`finger_cpu.PARAMS`; ``cand_*``
candidate pairs; ``pi, pj, lam`` assigned pairs and their initial similarities; ``cur`` relaxed
similarities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.kernels import finger_cpu
from matcher.kernels.cuda import _require_cuda, available  # noqa: F401 (re-exported)
from matcher.kernels.finger_cpu import (
    _COMPAT_DIRECTION_CUT,
    _COMPAT_DIRECTION_MU_RAD,
    _COMPAT_DIRECTION_TAU,
    _COMPAT_DISTANCE_CUT,
    _COMPAT_DISTANCE_MU_PX,
    _COMPAT_DISTANCE_TAU,
    _COMPAT_RADIAL_MU_RAD,
    _COMPAT_RADIAL_TAU,
    _GEOMETRIC_DIRECTION_RAD,
    _GEOMETRIC_DISTANCE_PX,
    _GEOMETRIC_HYPOTHESES,
    _GEOMETRIC_MIN_OVERLAP,
    _GEOMETRIC_OVERLAP_PX,
    _GEOMETRIC_WEIGHT,
    _MAX_DIRECTION_DIFF_RAD,
    _MAX_SCORED_PAIRS,
    _MIN_SCORED_PAIRS,
    _RELAXATION_ITERATIONS,
    _RELAXATION_PAIRS,
    _RELAXATION_WEIGHT,
    _SCORED_PAIRS_SIGMOID_MU,
    _SCORED_PAIRS_SIGMOID_TAU,
    PARAMS,
)

try:  # numba.cuda is part of numba up to its removal there, then the `numba-cuda` package ([gpu])
    from numba import cuda
except ImportError:  # no CUDA target installed: the module still imports, available() is False
    cuda = None  # type: ignore[assignment]

#: Threads per CUDA block: a multiple of the 32-thread warp; each thread holds ~27 kB of local
#: scratch, so small blocks keep several resident per SM.
THREADS_PER_BLOCK = 128

_TWO_PI = 2.0 * math.pi
_SECTIONS = 6
# Compile-time sizes of the per-thread scratch (cuda.local.array needs constants). The kernel
# also clamps the PARAMS values to these, so it never writes out of bounds whatever PARAMS holds.
_MAX_MINUTIAE = 255  # a template holds at most 255 minutiae (ISO/IEC 19794-2); checked on entry
_MAX_CANDIDATES = 2 * _MAX_MINUTIAE  # every row's and every column's best partner
_MAX_PAIRS = 40
#: |theta| beyond this is refused. Features hold [0, 2 pi); the angle wrap goes through an int64
#: ``floor`` that overflows (differently on CPU and GPU) for huge angles, and raises on NaN/inf
#: under the simulator.
MAX_ABS_THETA_RAD = 4.0 * math.pi

if PARAMS[_RELAXATION_PAIRS] > _MAX_PAIRS:
    raise ImportError(
        f"finger_cuda holds at most {_MAX_PAIRS} relaxation pairs per thread: raise _MAX_PAIRS "
        "with finger_params"
    )
if finger_cpu._SECTIONS != _SECTIONS:
    raise ImportError("finger_cuda is written for 6 angular sections (one word each)")

F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]


def _jit(fn):  # type: ignore[no-untyped-def]
    """``cuda.jit`` kernel (compiled lazily at the first launch), or the plain function.

    Kernels and device functions must call ``cuda.*`` through this module's global ``cuda``: the
    simulator swaps that global for its fake module while a kernel runs.
    """
    return cuda.jit(fn) if cuda is not None else fn


def _device(fn):  # type: ignore[no-untyped-def]
    """``cuda.jit(device=True)``, or the plain function without numba.cuda."""
    return cuda.jit(device=True)(fn) if cuda is not None else fn


def _grid(n: int) -> int:
    return (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK


# --------------------------------------------------------------------------------------------
# Device functions.
# --------------------------------------------------------------------------------------------


@_device
def _angle_diff(a, b):  # type: ignore[no-untyped-def]
    """a - b wrapped into [-pi, pi) (finger_cpu._angle_diff, the same floor formula)."""
    d = a - b
    return d - _TWO_PI * math.floor((d + math.pi) / _TWO_PI)


@_device
def _sigmoid(v, mu, tau):  # type: ignore[no-untyped-def]
    return 1.0 / (1.0 + math.exp(-tau * (v - mu)))


@_device
def _stable_order(key, n, order):  # type: ignore[no-untyped-def]
    """``order[:n]`` = the stable ascending argsort of ``key[:n]``.

    Insertion sort: n <= _MAX_PAIRS, so it beats anything cleverer on one thread.
    """
    for q in range(n):
        order[q] = q
    for q in range(1, n):
        v = order[q]
        pos = q
        while pos > 0 and key[order[pos - 1]] > key[v]:
            order[pos] = order[pos - 1]
            pos -= 1
        order[pos] = v


@_device
def _paired_share(px, py, pt, gx, gy, gt, lo, na, nb, pi, pj, order, n_p, prm):  # type: ignore[no-untyped-def]
    """``finger_cpu._paired_share`` on the device: the geometric check, same steps and order.

    B's transformed minutiae are recomputed where needed instead of stored (no scratch array of
    ``nb`` floats per thread); ``taken`` and ``near`` flags are bit sets in 4 x 64-bit words.
    """
    tol2 = prm[_GEOMETRIC_DISTANCE_PX] * prm[_GEOMETRIC_DISTANCE_PX]
    atol = prm[_GEOMETRIC_DIRECTION_RAD]
    r2 = prm[_GEOMETRIC_OVERLAP_PX] * prm[_GEOMETRIC_OVERLAP_PX]
    taken = cuda.local.array(4, np.uint64)
    near_b = cuda.local.array(4, np.uint64)
    best_n = -1.0
    best_a = 0.0
    best_b = 0.0
    n_h = int(prm[_GEOMETRIC_HYPOTHESES])
    if n_h > n_p:
        n_h = n_p
    for h in range(n_h):
        p = order[h]
        i0 = pi[p]
        j0 = lo + pj[p]
        rot = _angle_diff(pt[i0], gt[j0])
        c = math.cos(rot)
        s = math.sin(rot)
        tx = px[i0] - (c * gx[j0] - s * gy[j0])
        ty = py[i0] - (s * gx[j0] + c * gy[j0])
        for k in range(4):
            taken[k] = 0
            near_b[k] = 0
        n = 0.0
        n_a = 0.0
        for i in range(na):
            nearest = tol2
            pick = -1
            near = False
            for j in range(nb):
                xt = c * gx[lo + j] - s * gy[lo + j] + tx
                yt = s * gx[lo + j] + c * gy[lo + j] + ty
                dx = px[i] - xt
                dy = py[i] - yt
                d2 = dx * dx + dy * dy
                bit = np.uint64(1) << np.uint64(j & 63)
                if d2 < r2:
                    near = True
                    near_b[j >> 6] |= bit
                if (
                    d2 < nearest
                    and (taken[j >> 6] & bit) == 0
                    and abs(_angle_diff(pt[i], gt[lo + j] + rot)) < atol
                ):
                    nearest = d2
                    pick = j
            if pick >= 0:
                taken[pick >> 6] |= np.uint64(1) << np.uint64(pick & 63)
                n += 1.0
            if near:
                n_a += 1.0
        if n > best_n:
            n_b = 0.0
            for j in range(nb):
                if (near_b[j >> 6] >> np.uint64(j & 63)) & np.uint64(1):
                    n_b += 1.0
            best_n = n
            best_a = n_a
            best_b = n_b
    if best_n <= 0.0:
        return 0.0
    floor = prm[_GEOMETRIC_MIN_OVERLAP]
    da = best_a if best_a > floor else floor
    db = best_b if best_b > floor else floor
    g = best_n * best_n / (da * db)
    return g if g < 1.0 else 1.0


@_device
def _match(px, py, pt, pc, pm, gx, gy, gt, gc, gm, lo, nb, min_cells, prm):  # type: ignore[no-untyped-def]
    """finger_cpu._match of the probe and gallery minutiae ``lo:lo + nb``, in [0, 1]."""
    na = px.shape[0]
    if na == 0 or nb == 0:
        return 0.0
    # 1. Local similarities; candidates are each row's and each column's best entry (strictly
    # greater replaces, so equal maxima go to the lower index), as finger_cpu._best_partners.
    # (Conditionals, not min/max: numba's CUDA target does not type the two-argument builtins.)
    if na > _MAX_MINUTIAE or nb > _MAX_MINUTIAE:
        return 0.0  # refused by the wrapper; never reached
    cand_s = cuda.local.array(_MAX_CANDIDATES, np.float64)
    cand_k = cuda.local.array(_MAX_CANDIDATES, np.int64)
    row_arg = cuda.local.array(_MAX_MINUTIAE, np.int32)
    col_best = cuda.local.array(_MAX_MINUTIAE, np.float64)
    col_arg = cuda.local.array(_MAX_MINUTIAE, np.int32)
    for j in range(nb):
        col_best[j] = 0.0
        col_arg[j] = 0
    n_cand = 0
    max_dt = prm[_MAX_DIRECTION_DIFF_RAD]
    for i in range(na):
        ti = pt[i]
        mi = pm[i]
        c0, c1, c2, c3, c4, c5 = pc[0, i], pc[1, i], pc[2, i], pc[3, i], pc[4, i], pc[5, i]
        row_best = 0.0
        row_arg[i] = -1
        for j in range(nb):
            g = lo + j
            dt = ti - gt[g]
            dt -= _TWO_PI * math.floor((dt + math.pi) / _TWO_PI)  # into [-pi, pi), as the CPU
            if abs(dt) > max_dt:
                continue
            m = mi & gm[g]
            if cuda.popc(m) < min_cells:
                continue
            x0, y0 = c0 & m, gc[0, g] & m
            x1, y1 = c1 & m, gc[1, g] & m
            x2, y2 = c2 & m, gc[2, g] & m
            x3, y3 = c3 & m, gc[3, g] & m
            x4, y4 = c4 & m, gc[4, g] & m
            x5, y5 = c5 & m, gc[5, g] & m
            d = (
                cuda.popc(x0 ^ y0)
                + cuda.popc(x1 ^ y1)
                + cuda.popc(x2 ^ y2)
                + cuda.popc(x3 ^ y3)
                + cuda.popc(x4 ^ y4)
                + cuda.popc(x5 ^ y5)
            )
            sa = (
                cuda.popc(x0)
                + cuda.popc(x1)
                + cuda.popc(x2)
                + cuda.popc(x3)
                + cuda.popc(x4)
                + cuda.popc(x5)
            )
            sb = (
                cuda.popc(y0)
                + cuda.popc(y1)
                + cuda.popc(y2)
                + cuda.popc(y3)
                + cuda.popc(y4)
                + cuda.popc(y5)
            )
            if sa + sb == 0:
                continue
            den = math.sqrt(np.float64(sa)) + math.sqrt(np.float64(sb))
            s = 1.0 - math.sqrt(np.float64(d)) / den
            if s > row_best:
                row_best = s
                row_arg[i] = j
            if s > col_best[j]:
                col_best[j] = s
                col_arg[j] = i
        if row_arg[i] >= 0:
            cand_s[n_cand] = row_best
            cand_k[n_cand] = i * nb + row_arg[i]
            n_cand += 1
    for j in range(nb):
        i = col_arg[j]
        if col_best[j] > 0.0 and row_arg[i] != j:  # not already in as its row's best
            cand_s[n_cand] = col_best[j]
            cand_k[n_cand] = i * nb + j
            n_cand += 1
    # Value descending, equal values by key (insertion sort; a few dozen entries).
    for q in range(1, n_cand):
        v = cand_s[q]
        kv = cand_k[q]
        pos = q
        while pos > 0 and (cand_s[pos - 1] < v or (cand_s[pos - 1] == v and cand_k[pos - 1] > kv)):
            cand_s[pos] = cand_s[pos - 1]
            cand_k[pos] = cand_k[pos - 1]
            pos -= 1
        cand_s[pos] = v
        cand_k[pos] = kv
    # 2. One-to-one assignment: greedy over the sorted candidates ("used" = already in a pair).
    n_relax = int(prm[_RELAXATION_PAIRS])
    if n_relax > _MAX_PAIRS:
        n_relax = _MAX_PAIRS
    pi = cuda.local.array(_MAX_PAIRS, np.int32)
    pj = cuda.local.array(_MAX_PAIRS, np.int32)
    lam = cuda.local.array(_MAX_PAIRS, np.float64)
    n_p = 0
    for q in range(n_cand):
        if n_p == n_relax:
            break
        i = cand_k[q] // nb
        j = cand_k[q] % nb
        if cand_s[q] <= 0.0:
            continue
        used = False
        for p in range(n_p):
            if pi[p] == i or pj[p] == j:
                used = True
        if used:
            continue
        pi[n_p] = i
        pj[n_p] = j
        lam[n_p] = cand_s[q]
        n_p += 1
    if n_p == 0:
        return 0.0
    # 3. Relaxation (MCC's LSS-R): pairs supported by geometrically compatible pairs gain.
    # Distance and direction terms are symmetric, computed once per {p, q}; the radial term is
    # taken from each end (the CPU's order of operations, so the cut-offs see the same values).
    rho = cuda.local.array((_MAX_PAIRS, _MAX_PAIRS), np.float64)
    for p in range(n_p):
        for q in range(n_p):
            rho[p, q] = 0.0
    for p in range(n_p):
        for q in range(p + 1, n_p):
            ia, ib = pi[p], pi[q]
            ja, jb = lo + pj[p], lo + pj[q]
            ax, ay = px[ib] - px[ia], py[ib] - py[ia]
            bx, by = gx[jb] - gx[ja], gy[jb] - gy[ja]
            dd = abs(math.sqrt(ax * ax + ay * ay) - math.sqrt(bx * bx + by * by))
            dt = abs(_angle_diff(_angle_diff(pt[ia], pt[ib]), _angle_diff(gt[ja], gt[jb])))
            if dd > prm[_COMPAT_DISTANCE_CUT] or dt > prm[_COMPAT_DIRECTION_CUT]:
                continue
            r12 = _sigmoid(dd, prm[_COMPAT_DISTANCE_MU_PX], prm[_COMPAT_DISTANCE_TAU]) * _sigmoid(
                dt, prm[_COMPAT_DIRECTION_MU_RAD], prm[_COMPAT_DIRECTION_TAU]
            )
            # Radial terms: (theta_a - seg_a) - (theta_b - seg_b) from each end. Only the angle
            # of segment a relative to segment b is needed (one atan2), and from the other end
            # both segments turn by pi, which cancels.
            dseg = math.atan2(bx * ay - by * ax, ax * bx + ay * by)
            rho[p, q] = r12 * _sigmoid(
                abs(_angle_diff(pt[ia] - gt[ja], dseg)),
                prm[_COMPAT_RADIAL_MU_RAD],
                prm[_COMPAT_RADIAL_TAU],
            )
            rho[q, p] = r12 * _sigmoid(
                abs(_angle_diff(pt[ib] - gt[jb], dseg)),
                prm[_COMPAT_RADIAL_MU_RAD],
                prm[_COMPAT_RADIAL_TAU],
            )
    cur = cuda.local.array(_MAX_PAIRS, np.float64)
    nxt = cuda.local.array(_MAX_PAIRS, np.float64)
    for p in range(n_p):
        cur[p] = lam[p]
    w = prm[_RELAXATION_WEIGHT]
    n_others = n_p - 1 if n_p > 1 else 1
    for _ in range(int(prm[_RELAXATION_ITERATIONS])):
        for p in range(n_p):
            acc = 0.0
            for q in range(n_p):
                acc += rho[p, q] * cur[q]
            nxt[p] = w * cur[p] + (1.0 - w) * acc / n_others
        for p in range(n_p):
            cur[p] = nxt[p]
    # 4. Score: the pairs that relaxation kept best (stable order, as the CPU), averaged over n_P.
    n_min = na if na < nb else nb
    n_score = int(prm[_MIN_SCORED_PAIRS]) + int(
        round(
            _sigmoid(n_min, prm[_SCORED_PAIRS_SIGMOID_MU], prm[_SCORED_PAIRS_SIGMOID_TAU])
            * (prm[_MAX_SCORED_PAIRS] - prm[_MIN_SCORED_PAIRS])
        )
    )
    key = nxt  # free now: -efficiency, sorted ascending as the CPU's np.argsort(-eff)
    for p in range(n_p):
        key[p] = -(cur[p] / lam[p])
    order = cuda.local.array(_MAX_PAIRS, np.int32)
    _stable_order(key, n_p, order)
    total = 0.0
    for q in range(n_score if n_score < n_p else n_p):
        total += cur[order[q]]
    score = total / n_score
    if score < 0.0:
        score = 0.0
    if score > 1.0:
        score = 1.0
    # 5. Geometric check of the alignment the best pairs imply.
    g = _paired_share(px, py, pt, gx, gy, gt, lo, na, nb, pi, pj, order, n_p, prm)
    wg = prm[_GEOMETRIC_WEIGHT]
    return score * (1.0 + wg * g) / (1.0 + wg)


# --------------------------------------------------------------------------------------------
# Kernel and wrapper.
# --------------------------------------------------------------------------------------------


@_jit
def _scan_kernel(px, py, pt, pc, pm, offsets, gx, gy, gt, gc, gm, rows, min_cells, prm, out):  # type: ignore[no-untyped-def]
    r = cuda.grid(1)
    if r >= rows.shape[0]:
        return
    t = rows[r]
    lo = offsets[t]
    out[r] = _match(px, py, pt, pc, pm, gx, gy, gt, gc, gm, lo, offsets[t + 1] - lo, min_cells, prm)


def _check_features(arrays: object, what: str) -> int:
    """Minutiae count of ``(X, Y_up, theta, bits (6, n), mask (n,))``, or InvalidTemplate."""
    if not isinstance(arrays, Sequence) or len(arrays) != 5:
        raise InvalidTemplate(f"{what} must be (X, Y_up, theta, bits, mask)")
    if not all(isinstance(a, np.ndarray) for a in arrays):
        raise InvalidTemplate(f"{what} must hold numpy arrays")
    x, y, theta, bits, mask = arrays
    n = x.shape[0] if x.ndim == 1 else -1
    for name, a, dtype, shape in (
        ("X", x, np.float64, (n,)),
        ("Y", y, np.float64, (n,)),
        ("theta", theta, np.float64, (n,)),
        ("bits", bits, np.uint64, (_SECTIONS, n)),
        ("mask", mask, np.uint64, (n,)),
    ):
        if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
            raise InvalidTemplate(
                f"{what} {name} must be a C-contiguous {np.dtype(dtype).name} array of shape "
                f"{shape} (n = X's length), got {a.dtype} {a.shape}"
            )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidTemplate(f"{what} minutia positions must be finite")
    if not (np.abs(theta) <= MAX_ABS_THETA_RAD).all():  # also refuses NaN
        raise InvalidTemplate(f"{what} directions must be finite radians within +-4 pi")
    return n


def scan(
    probe: tuple[np.ndarray, ...],
    offsets: I64Array,
    gallery: tuple[np.ndarray, ...],
    rows: I64Array,
) -> F64Array:
    """Scores of one probe against the gallery templates ``rows`` (CSR layout), on the GPU.

    ``probe`` and ``gallery`` are ``(X, Y_up, theta, bits (6, n), mask (n,))``: float64 pixels at
    500 dpi with y up, float64 radians (ISO, within +-4 pi), uint64 section-major cylinder bits and
    validity masks, all C-contiguous (:meth:`FingerFeatures.kernel_args`, concatenated for the
    gallery). Template ``t`` owns gallery minutiae ``offsets[t]:offsets[t + 1]`` (``offsets``:
    int64, non-decreasing, within the gallery); ``rows``: int64 template numbers, any order,
    repeats allowed. Returns host float64 ``(len(rows),)`` in [0, 1], ``out[r]`` the score of
    ``rows[r]``: 0 = nothing in common, 1 = identical (as :func:`finger_cpu.scan`, to within 1e-9).

    Cost: O(total minutiae) host checks, the whole gallery copied to the device on every call
    (about 64 bytes per minutia), one launch of ``len(rows)`` threads. Thread-safe: every call has
    its own device buffers. Raises InvalidTemplate on bad input, DeviceUnavailable without a
    device (empty ``rows`` needs none).
    """
    _check_features(probe, "probe")
    n_total = _check_features(gallery, "gallery")
    for name, a in (("offsets", offsets), ("rows", rows)):
        if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != 1:
            raise InvalidTemplate(f"{name} must be a 1-D int64 array")
    if offsets.shape[0] == 0:
        raise InvalidTemplate("offsets must hold n_templates + 1 entries")
    if offsets[0] < 0 or offsets[-1] > n_total or (np.diff(offsets) < 0).any():
        raise InvalidTemplate(f"offsets must be non-decreasing within [0, {n_total}]")
    n_templates = offsets.shape[0] - 1
    if probe[0].shape[0] > _MAX_MINUTIAE or (
        n_templates and int(np.diff(offsets).max()) > _MAX_MINUTIAE
    ):
        raise InvalidTemplate(f"a template holds at most {_MAX_MINUTIAE} minutiae")
    if rows.size and (rows.min() < 0 or rows.max() >= n_templates):
        raise InvalidTemplate(f"rows must be template numbers in [0, {n_templates})")
    n = rows.shape[0]
    if n == 0:
        return np.empty(0, np.float64)
    _require_cuda()
    d_out = cuda.device_array(n, np.float64)
    _scan_kernel[_grid(n), THREADS_PER_BLOCK](
        *(cuda.to_device(a) for a in probe),
        cuda.to_device(np.ascontiguousarray(offsets)),
        *(cuda.to_device(a) for a in gallery),
        cuda.to_device(np.ascontiguousarray(rows)),
        finger_cpu.min_matchable_cells(),
        cuda.to_device(PARAMS),
        d_out,
    )
    return d_out.copy_to_host()

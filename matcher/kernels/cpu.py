"""Numba CPU kernels for iris matching.

Public wrappers check dtype, shape and contiguity and raise our errors; the ``_kernel`` functions
only do arithmetic on arrays, never raise, and release the GIL (``nogil``) so gRPC threads overlap.
Every kernel has a slow pure-numpy twin in ``tests/reference_iris.py`` that the tests compare it to.

Glossary inside kernels: ``g``/``gm`` gallery code/mask words, ``p``/``q`` probe code/mask words,
``d`` disagreeing valid bits, ``v`` valid bits, ``acc`` packs both as ``d + (v << 32)`` so one add
and one memory slot carry the pair, ``s`` index into the rotation order, ``j`` lane in a block.

Gallery layout (what :class:`matcher.gallery.IrisGallery` keeps): blocks of ``lanes`` templates,
``codes[block, word, lane]`` and ``masks[block, word, lane]``, uint64, C-contiguous. Consecutive
templates are consecutive lanes, so the innermost loop runs over lanes with the probe word
broadcast: no horizontal sums, one vector instruction per 8 templates. An empty or deleted lane has
an all-zero mask and can never reach ``min_bits``.

Probe rotations: ``pc[s, word]``/``pm[s, word]`` is the probe rolled by the ``s``-th shift of
:func:`matcher.iris.shift_order`, packed in the gallery's layout. Ties keep the lowest ``s``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from matcher.errors import InvalidTemplate

#: Templates per gallery block: 64 lanes x 8 bytes is 8 cache lines per word row, long enough to
#: amortise the loop overhead, short enough that four words of a block (4 KiB of codes and masks)
#: and the per-rotation accumulators (17 x 512 B) stay in L1 while every rotation runs over them.
#: Measured here (2,048-bit codes, 17 rotations): 64 lanes beat 128 by about 10 %.
BLOCK_LANES = 64

_HIGH = np.uint64(32)
_LOW = np.uint64(0xFFFFFFFF)
_INF = np.inf
#: "No rotation counted yet". Not inf: the kernels use fast-math flags that allow reassociation,
#: and a finite sentinel above every possible distance keeps comparisons well defined.
_NONE = 2.0
#: Fast-math flags that let LLVM reassociate integer and min/max reductions, without the
#: no-NaN/no-inf assumptions and without ``arcp``: ``d / v`` stays a correctly rounded division,
#: so distances are bit-identical to numpy's and to the CUDA kernels'.
_FASTMATH = {"nsz", "contract", "reassoc"}
#: How many survivors ahead the fast mode's exact pass prefetches.
_PREFETCH_ROWS = 4

U64Array = npt.NDArray[np.uint64]


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's ctpop: one POPCNT, or VPOPCNTQ per 8 lanes when the loop vectorises."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, i, j, k):  # type: ignore[no-untyped-def]
    """Hint that ``arr[i, j, k]`` will be read soon (LLVM's prefetch: read, keep in all levels)."""
    sig = types.void(arr, i, j, k)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, args[1:], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def _chunks(n_items: int, per_thread: int = 8) -> int:
    """Work chunks for a prange: a few per thread so uneven chunks balance out."""
    return max(1, min(n_items, get_num_threads() * per_thread))


# --------------------------------------------------------------------------------------------
# 1:1 pairs, packed with groups=1 (plain column-major), rotation done on packed words.
# --------------------------------------------------------------------------------------------


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _pairs_kernel(a, am, b, bm, stride, shifts, min_bits, n_chunks, out_hd, out_shift, out_bits):  # type: ignore[no-untyped-def]
    n, nw = a.shape
    n_bits_total = nw * 64
    n_off = 64 // stride if stride < 64 else 1
    for ch in prange(n_chunks):
        lo = ch * n // n_chunks
        hi = (ch + 1) * n // n_chunks
        # rc[o, j]: bits [64 j + o*stride, 64 j + o*stride + 64) of a's bit string read circularly.
        rc = np.empty((n_off, 2 * nw), np.uint64)
        rm = np.empty((n_off, 2 * nw), np.uint64)
        for i in range(lo, hi):
            for o in range(n_off):
                r = np.uint64(o * stride)
                for j in range(nw):
                    jn = j + 1 if j + 1 < nw else 0
                    if r == 0:
                        xc = a[i, j]
                        xm = am[i, j]
                    else:
                        xc = (a[i, j] >> r) | (a[i, jn] << (np.uint64(64) - r))
                        xm = (am[i, j] >> r) | (am[i, jn] << (np.uint64(64) - r))
                    rc[o, j] = xc
                    rc[o, j + nw] = xc
                    rm[o, j] = xm
                    rm[o, j + nw] = xm
            best = _NONE
            best_s = 0
            best_v = 0
            seen_v = 0
            for k in range(shifts.shape[0]):
                s = shifts[k]
                u = (-s * stride) % n_bits_total
                qw = u // 64
                o = (u % 64) // stride
                d = np.uint64(0)
                v = np.uint64(0)
                for w in range(nw):
                    m = rm[o, qw + w] & bm[i, w]
                    d += _popcount((rc[o, qw + w] ^ b[i, w]) & m)
                    v += _popcount(m)
                if v > seen_v:
                    seen_v = v
                if v >= min_bits and v > 0:
                    h = d / v
                    if h < best:
                        best = h
                        best_s = s
                        best_v = v
            if best >= _NONE:
                out_hd[i] = np.nan
                out_shift[i] = 0
                out_bits[i] = seen_v
            else:
                out_hd[i] = best
                out_shift[i] = best_s
                out_bits[i] = best_v


def _check_pairs_inputs(
    a: U64Array, am: U64Array, b: U64Array, bm: U64Array, stride_bits: int
) -> tuple[int, int]:
    """Shared by the CPU and CUDA ``iris_pairs``: four C-contiguous uint64 ``(n, W)`` arrays,
    ``W >= 1``, and a column stride the packed layout allows. Returns ``(n, W)``."""
    shape_error = "iris_pairs needs four C-contiguous uint64 arrays of one shape (n, W), W >= 1"
    if not all(isinstance(arr, np.ndarray) and arr.ndim == 2 for arr in (a, am, b, bm)):
        raise InvalidTemplate(shape_error)
    n, nw = a.shape
    for arr in (a, am, b, bm):
        if arr.dtype != np.uint64 or arr.shape != (n, nw) or not arr.flags.c_contiguous:
            raise InvalidTemplate(shape_error)
    if nw == 0:
        raise InvalidTemplate(shape_error)
    if stride_bits <= 0 or not (stride_bits in (1, 2, 4, 8, 16, 32) or stride_bits % 64 == 0):
        raise InvalidTemplate(
            f"column stride {stride_bits} bits is not a power of two below 64 or a multiple of 64"
        )
    return int(n), int(nw)


def iris_pairs(
    a: U64Array,
    am: U64Array,
    b: U64Array,
    bm: U64Array,
    stride_bits: int,
    max_shift: int,
    min_bits: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """1:1 distances for n pairs of codes packed with ``groups=1``; rotation applies to ``a``.

    ``a, am, b, bm``: uint64 ``(n, W)`` C-contiguous; ``stride_bits``: packed bits per column.
    Returns ``(hd, shift, n_bits)``; NaN hd where no rotation has ``min_bits`` bits in common.
    """
    n, _ = _check_pairs_inputs(a, am, b, bm, stride_bits)
    from matcher.iris import shift_order

    shifts = shift_order(max_shift).astype(np.int64)
    out_hd = np.empty(n, np.float64)
    out_shift = np.empty(n, np.int32)
    out_bits = np.empty(n, np.int32)
    if n:
        _pairs_kernel(
            a,
            am,
            b,
            bm,
            int(stride_bits),
            shifts,
            int(min_bits),
            _chunks(n),
            out_hd,
            out_shift,
            out_bits,
        )
    return out_hd, out_shift, out_bits


# --------------------------------------------------------------------------------------------
# Gallery scans over blocks of lanes.
# --------------------------------------------------------------------------------------------


@njit(nogil=True, inline="always", boundscheck=False, fastmath=_FASTMATH)
def _add4(gc, gm, p, q, w, acc):  # type: ignore[no-untyped-def]
    """acc[j] += d + (v << 32) of probe words p/q[w:w+4] against lane j's words w..w+3."""
    p0 = p[w]
    p1 = p[w + 1]
    p2 = p[w + 2]
    p3 = p[w + 3]
    q0 = q[w]
    q1 = q[w + 1]
    q2 = q[w + 2]
    q3 = q[w + 3]
    g0 = gc[w]
    g1 = gc[w + 1]
    g2 = gc[w + 2]
    g3 = gc[w + 3]
    m0 = gm[w]
    m1 = gm[w + 1]
    m2 = gm[w + 2]
    m3 = gm[w + 3]
    for j in range(acc.shape[0]):
        a0 = q0 & m0[j]
        a1 = q1 & m1[j]
        a2 = q2 & m2[j]
        a3 = q3 & m3[j]
        d = (
            _popcount((p0 ^ g0[j]) & a0)
            + _popcount((p1 ^ g1[j]) & a1)
            + _popcount((p2 ^ g2[j]) & a2)
            + _popcount((p3 ^ g3[j]) & a3)
        )
        v = _popcount(a0) + _popcount(a1) + _popcount(a2) + _popcount(a3)
        acc[j] += d + (v << _HIGH)


@njit(nogil=True, inline="always", boundscheck=False, fastmath=_FASTMATH)
def _add1(gc, gm, p, q, w, acc):  # type: ignore[no-untyped-def]
    pw = p[w]
    qw = q[w]
    gw = gc[w]
    mw = gm[w]
    for j in range(acc.shape[0]):
        a0 = qw & mw[j]
        acc[j] += _popcount((pw ^ gw[j]) & a0) + (_popcount(a0) << _HIGH)


@njit(nogil=True, inline="always", boundscheck=False, fastmath=_FASTMATH)
def _block_counts(gc, gm, pc, pm, n_words, acc):  # type: ignore[no-untyped-def]
    """acc[s, j] = d + (v << 32) of rotation s against lane j over words [0, n_words).

    Words outer, rotations inner: four words of the block (4 x lanes x 16 bytes) stay in L1
    while all rotations run over them, instead of the whole block streaming from L2 per rotation.
    """
    acc[:] = 0
    w = 0
    while w + 4 <= n_words:
        for s in range(pc.shape[0]):
            _add4(gc, gm, pc[s], pm[s], w, acc[s])
        w += 4
    while w < n_words:
        for s in range(pc.shape[0]):
            _add1(gc, gm, pc[s], pm[s], w, acc[s])
        w += 1


@njit(nogil=True, inline="always", boundscheck=False, fastmath=_FASTMATH)
def _block_best(gc, gm, pc, pm, min_bits, acc, best, best_s, best_v):  # type: ignore[no-untyped-def]
    """Exact minimum fractional HD over all rotations for every lane of one block."""
    lanes = acc.shape[1]
    _block_counts(gc, gm, pc, pm, gc.shape[0], acc)
    for j in range(lanes):
        best[j] = _NONE
        best_s[j] = 0
        best_v[j] = 0
    for s in range(pc.shape[0]):
        a = acc[s]
        for j in range(lanes):
            v = a[j] >> _HIGH
            d = a[j] & _LOW
            if v >= min_bits and v > 0:
                h = d / v
                if h < best[j]:
                    best[j] = h
                    best_s[j] = s
                    best_v[j] = v


@njit(nogil=True, inline="always", boundscheck=False, fastmath=_FASTMATH)
def _topk_insert(hd, row, s, v, buf_hd, buf_row, buf_s, buf_v):  # type: ignore[no-untyped-def]
    """Insert into an ascending buffer; the caller has checked hd < buf_hd[-1]."""
    k = buf_hd.shape[0]
    pos = k - 1
    while pos > 0 and buf_hd[pos - 1] > hd:
        buf_hd[pos] = buf_hd[pos - 1]
        buf_row[pos] = buf_row[pos - 1]
        buf_s[pos] = buf_s[pos - 1]
        buf_v[pos] = buf_v[pos - 1]
        pos -= 1
    buf_hd[pos] = hd
    buf_row[pos] = row
    buf_s[pos] = s
    buf_v[pos] = v


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _scan_topk_kernel(gc, gm, n_rows, pc, pm, min_bits, n_chunks, out_hd, out_row, out_s, out_v):  # type: ignore[no-untyped-def]
    n_blocks, _, lanes = gc.shape
    n_probes, n_rot, _ = pc.shape
    for ch in prange(n_chunks):
        b0 = ch * n_blocks // n_chunks
        b1 = (ch + 1) * n_blocks // n_chunks
        acc = np.empty((n_rot, lanes), np.uint64)
        best = np.empty(lanes, np.float64)
        best_s = np.empty(lanes, np.int32)
        best_v = np.empty(lanes, np.int32)
        for blk in range(b0, b1):
            # Probes inner: the block stays in cache while every probe of a batch runs over it.
            for pr in range(n_probes):
                _block_best(gc[blk], gm[blk], pc[pr], pm[pr], min_bits, acc, best, best_s, best_v)
                worst = out_hd[ch, pr, -1]
                for j in range(lanes):
                    row = blk * lanes + j
                    if best[j] < _NONE and best[j] < worst and row < n_rows:
                        _topk_insert(
                            best[j],
                            row,
                            best_s[j],
                            best_v[j],
                            out_hd[ch, pr],
                            out_row[ch, pr],
                            out_s[ch, pr],
                            out_v[ch, pr],
                        )
                        worst = out_hd[ch, pr, -1]


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _scan_all_kernel(gc, gm, pc, pm, min_bits, n_chunks, out_hd, out_s, out_v):  # type: ignore[no-untyped-def]
    n_blocks, _, lanes = gc.shape
    for ch in prange(n_chunks):
        b0 = ch * n_blocks // n_chunks
        b1 = (ch + 1) * n_blocks // n_chunks
        acc = np.empty((pc.shape[0], lanes), np.uint64)
        best = np.empty(lanes, np.float64)
        best_s = np.empty(lanes, np.int32)
        best_v = np.empty(lanes, np.int32)
        for blk in range(b0, b1):
            _block_best(gc[blk], gm[blk], pc, pm, min_bits, acc, best, best_s, best_v)
            for j in range(lanes):
                out_hd[blk * lanes + j] = best[j] if best[j] < _NONE else _INF
                out_s[blk * lanes + j] = best_s[j]
                out_v[blk * lanes + j] = best_v[j]


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _scan_coarse_kernel(gc, gm, pc, pm, n_words, threshold_q10, n_chunks, out):  # type: ignore[no-untyped-def]
    n_blocks, _, lanes = gc.shape
    t = np.int64(threshold_q10)
    for ch in prange(n_chunks):
        b0 = ch * n_blocks // n_chunks
        b1 = (ch + 1) * n_blocks // n_chunks
        acc = np.empty((pc.shape[0], lanes), np.uint64)
        low = np.empty(lanes, np.int64)
        for blk in range(b0, b1):
            _block_counts(gc[blk], gm[blk], pc, pm, n_words, acc)
            for j in range(lanes):
                low[j] = np.int64(1) << 40
            for s in range(pc.shape[0]):
                a = acc[s]
                for j in range(lanes):
                    # d/v < t/1024  <=>  1024 d - t v < 0: no division in the screening pass.
                    x = np.int64((a[j] & _LOW) << np.uint64(10)) - np.int64(a[j] >> _HIGH) * t
                    low[j] = min(low[j], x)
            for j in range(lanes):
                out[blk * lanes + j] = np.int32(max(min(low[j], 1 << 30), -(1 << 30)))


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _rows_exact_kernel(gc, gm, rows, pct, pmt, min_bits, out_hd, out_s, out_v):  # type: ignore[no-untyped-def]
    # pct/pmt: probe rotations transposed to (words, rotations), so the inner loop runs over
    # rotations with the gallery word broadcast: one gathered code, no horizontal sums.
    lanes = gc.shape[2]
    n_words = gc.shape[1]
    n_rot = pct.shape[1]
    n = rows.shape[0]
    n_chunks = min(n, 64)
    for ch in prange(n_chunks):
        lo = ch * n // n_chunks
        hi = (ch + 1) * n // n_chunks
        acc = np.empty(n_rot, np.uint64)
        for i in range(lo, hi):
            # A survivor's words lie one cache line apart per word (the block layout); ask for
            # those of a row a few ahead so their misses overlap with this row's arithmetic.
            ahead = i + _PREFETCH_ROWS
            if ahead < hi:
                pb = rows[ahead] // lanes
                pj = rows[ahead] % lanes
                for w in range(n_words):
                    _prefetch(gc, pb, w, pj)
                    _prefetch(gm, pb, w, pj)
            blk = rows[i] // lanes
            j = rows[i] % lanes
            acc[:] = 0
            for w in range(n_words):
                g = gc[blk, w, j]
                m = gm[blk, w, j]
                pw = pct[w]
                qw = pmt[w]
                for s in range(n_rot):
                    a = qw[s] & m
                    acc[s] += _popcount((pw[s] ^ g) & a) + (_popcount(a) << _HIGH)
            best = _NONE
            bs = 0
            bv = 0
            for s in range(n_rot):
                v = acc[s] >> _HIGH
                d = acc[s] & _LOW
                if v >= min_bits and v > 0:
                    h = d / v
                    if h < best:
                        best = h
                        bs = s
                        bv = v
            out_hd[i] = best if best < _NONE else _INF
            out_s[i] = bs
            out_v[i] = bv


def _check_scan_inputs(
    gc: U64Array, gm: U64Array, pc: U64Array, pm: U64Array, probe_ndim: int
) -> None:
    if gc.dtype != np.uint64 or gm.dtype != np.uint64 or gc.ndim != 3 or gc.shape != gm.shape:
        raise InvalidTemplate(
            "gallery codes and masks must be uint64 arrays of one shape (blocks, words, lanes)"
        )
    if not (gc.flags.c_contiguous and gm.flags.c_contiguous):
        raise InvalidTemplate("gallery arrays must be C-contiguous")
    if (
        pc.dtype != np.uint64
        or pm.dtype != np.uint64
        or pc.shape != pm.shape
        or pc.ndim != probe_ndim
    ):
        raise InvalidTemplate("probe rotations must be uint64 arrays of one shape")
    if pc.shape[-1] != gc.shape[1]:
        raise InvalidTemplate(f"probe has {pc.shape[-1]} words, gallery {gc.shape[1]}")


def iris_scan_topk(
    gc: U64Array, gm: U64Array, n_rows: int, pc: U64Array, pm: U64Array, k: int, min_bits: int
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]
]:
    """Exact top-k for a batch of probes over a block gallery.

    ``gc, gm``: ``(blocks, W, lanes)``; ``pc, pm``: ``(P, S, W)`` rotations per probe. Returns
    ``(hd, row, shift_index, n_bits)`` each ``(P, k)``, ascending by ``(hd, row)``, padded with
    ``inf`` / ``-1``. Rows at or past ``n_rows`` are never returned.
    """
    _check_scan_inputs(gc, gm, pc, pm, 3)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InvalidTemplate(f"k must be a non-negative integer, got {k!r}")
    k = int(k)
    n_rows = max(0, min(int(n_rows), gc.shape[0] * gc.shape[2]))
    n_probes = pc.shape[0]
    n_chunks = _chunks(gc.shape[0], 4)
    buf_hd = np.full((n_chunks, n_probes, k), np.inf)
    buf_row = np.full((n_chunks, n_probes, k), -1, np.int64)
    buf_s = np.zeros((n_chunks, n_probes, k), np.int32)
    buf_v = np.zeros((n_chunks, n_probes, k), np.int32)
    if gc.shape[0] and k:
        _scan_topk_kernel(
            gc,
            gm,
            int(n_rows),
            np.ascontiguousarray(pc),
            np.ascontiguousarray(pm),
            int(min_bits),
            n_chunks,
            buf_hd,
            buf_row,
            buf_s,
            buf_v,
        )
    # Merge the per-chunk lists: (hd, row) order, padding last.
    hd = buf_hd.transpose(1, 0, 2).reshape(n_probes, -1)
    row = buf_row.transpose(1, 0, 2).reshape(n_probes, -1)
    sh = buf_s.transpose(1, 0, 2).reshape(n_probes, -1)
    nb = buf_v.transpose(1, 0, 2).reshape(n_probes, -1)
    row_key = np.where(row < 0, np.iinfo(np.int64).max, row)
    order = np.lexsort((row_key, hd), axis=1)[:, :k]
    take = np.take_along_axis
    return take(hd, order, 1), take(row, order, 1), take(sh, order, 1), take(nb, order, 1)


def iris_scan_all(
    gc: U64Array, gm: U64Array, pc: U64Array, pm: U64Array, min_bits: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Exact distance of one probe (``pc, pm``: ``(S, W)``) to every lane.

    Returns ``(hd, shift_index, n_bits)``.

    Arrays of length ``blocks * lanes``; ``inf`` where no rotation reaches ``min_bits``.
    """
    _check_scan_inputs(gc, gm, pc, pm, 2)
    n = gc.shape[0] * gc.shape[2]
    out_hd = np.empty(n, np.float64)
    out_s = np.empty(n, np.int32)
    out_v = np.empty(n, np.int32)
    if n:
        _scan_all_kernel(
            gc,
            gm,
            np.ascontiguousarray(pc),
            np.ascontiguousarray(pm),
            int(min_bits),
            _chunks(gc.shape[0], 4),
            out_hd,
            out_s,
            out_v,
        )
    return out_hd, out_s, out_v


def iris_scan_coarse(
    gc: U64Array, gm: U64Array, pc: U64Array, pm: U64Array, n_words: int, threshold: float
) -> npt.NDArray[np.int32]:
    """Screening pass of the fast mode over the first ``n_words`` words of every lane.

    Returns ``min over rotations of (1024 d - round(1024 threshold) v)`` per lane, clipped to
    int32: negative exactly when some rotation's subset distance is below ``threshold``.
    """
    _check_scan_inputs(gc, gm, pc, pm, 2)
    if not 0 < n_words <= gc.shape[1]:
        raise InvalidTemplate(f"screening words {n_words} outside 1..{gc.shape[1]}")
    n = gc.shape[0] * gc.shape[2]
    out = np.empty(n, np.int32)
    if n:
        _scan_coarse_kernel(
            gc,
            gm,
            np.ascontiguousarray(pc),
            np.ascontiguousarray(pm),
            int(n_words),
            int(round(threshold * 1024)),
            _chunks(gc.shape[0], 4),
            out,
        )
    return out


def iris_rows_exact(
    gc: U64Array,
    gm: U64Array,
    rows: npt.NDArray[np.int64],
    pc: U64Array,
    pm: U64Array,
    min_bits: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Exact distances of one probe to the given rows only (the fast mode's second pass)."""
    _check_scan_inputs(gc, gm, pc, pm, 2)
    if (
        not isinstance(rows, np.ndarray)
        or rows.ndim != 1
        or (rows.size and rows.dtype.kind not in "iu")
    ):
        raise InvalidTemplate("rows must be a 1-D array of integer row indices")
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n = rows.shape[0]
    out_hd = np.empty(n, np.float64)
    out_s = np.empty(n, np.int32)
    out_v = np.empty(n, np.int32)
    if n:
        if rows.min() < 0 or rows.max() >= gc.shape[0] * gc.shape[2]:
            raise InvalidTemplate("row index outside the gallery")
        _rows_exact_kernel(
            gc,
            gm,
            rows,
            np.ascontiguousarray(pc.T),
            np.ascontiguousarray(pm.T),
            int(min_bits),
            out_hd,
            out_s,
            out_v,
        )
    return out_hd, out_s, out_v


# --------------------------------------------------------------------------------------------
# The straightforward kernel: the yardstick the benchmarks measure the engine against.
# --------------------------------------------------------------------------------------------


@njit(nogil=True, parallel=True, cache=True, boundscheck=False, fastmath=_FASTMATH)
def _reference_scan_kernel(codes, masks, pc, pm, min_bits, out_hd, out_s):  # type: ignore[no-untyped-def]
    n, n_words = codes.shape
    for i in prange(n):
        best = _NONE
        bs = 0
        for s in range(pc.shape[0]):
            d = np.uint64(0)
            v = np.uint64(0)
            for w in range(n_words):
                m = pm[s, w] & masks[i, w]
                d += _popcount((pc[s, w] ^ codes[i, w]) & m)
                v += _popcount(m)
            if v >= min_bits and v > 0:
                h = d / v
                if h < best:
                    best = h
                    bs = s
        out_hd[i] = best if best < _NONE else _INF
        out_s[i] = bs


def reference_scan(
    codes: U64Array, masks: U64Array, pc: U64Array, pm: U64Array, min_bits: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Straightforward 1:N: row-major ``(N, W)`` gallery, each template read once and compared
    word by word at every rotation. Parallel numba, no blocking, no screening: the yardstick.
    """
    if codes.dtype != np.uint64 or codes.shape != masks.shape or codes.ndim != 2:
        raise InvalidTemplate("reference_scan needs uint64 (N, W) codes and masks")
    _check_scan_inputs(codes[:, :, None], masks[:, :, None], pc, pm, 2)
    out_hd = np.empty(codes.shape[0], np.float64)
    out_s = np.empty(codes.shape[0], np.int32)
    _reference_scan_kernel(
        np.ascontiguousarray(codes),
        np.ascontiguousarray(masks),
        np.ascontiguousarray(pc),
        np.ascontiguousarray(pm),
        int(min_bits),
        out_hd,
        out_s,
    )
    return out_hd, out_s

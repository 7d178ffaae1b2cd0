"""Numba CUDA kernels for iris matching: the contracts of :mod:`matcher.kernels.cpu`, on a GPU.

Same layouts, same arguments, same results as the CPU functions of the same name (bit for bit:
every distance is the same ``d / v`` in float64, and ties keep the same rotation and row). Public
wrappers check dtype, shape and contiguity and raise our errors; the ``_kernel`` functions only do
arithmetic on arrays and never raise.

Install: a GPU host installs the ``[gpu]`` extra (``pip install 'amayesh[gpu]'``, i.e. the
``numba-cuda`` package, plus an NVIDIA driver). Importing this module never needs a GPU or CUDA:
without them :func:`available` is ``False`` and the wrappers raise
:class:`~matcher.errors.DeviceUnavailable` after checking their inputs. Tests run the kernels on
the CPU under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is first
imported).

Thread mapping, and why
-----------------------
``iris_scan_all`` / ``iris_scan_topk``: one thread per gallery row, ``row = block * lanes + lane``.
The gallery is stored ``codes[block, word, lane]``, so the 32 threads of a warp, holding 32
consecutive lanes, read word ``w`` of their rows from 32 consecutive uint64s: one coalesced 256-byte
load (two where ``lanes`` is not a multiple of 32 and a warp straddles two gallery blocks). Every
thread of a warp reads the same probe word at the same moment, which the hardware serves as one
broadcast load from L1, so the probe rotations stay in global memory (putting them in shared
memory would add a cooperative load and a barrier for no fewer transactions). Each
thread runs the rotations in shift order and keeps its own minimum with a strict ``<``, exactly as
the CPU kernel does per lane, so "ties keep the lowest shift index" needs no cross-thread reduction.
Top-k selection is done on the host with numpy over the per-row distances copied back, one kernel
launch per probe; the gallery is copied to the device once per call.

``iris_pairs``: one thread per pair. A rotation by ``s`` columns reads ``a``'s bit string from bit
offset ``u = (-s * stride) mod (W * 64)`` circularly; the thread builds each rotated word from two
word loads and two shifts (``a[j] >> r | a[j + 1] << (64 - r)``, word indices mod ``W``) instead of
the CPU kernel's scratch copies. Rows of ``a`` and ``b`` are ``W`` words apart, so these loads are
not coalesced; the 1:1 path verifies a handful of pairs and is latency-bound, which one thread per
pair does not change.

Glossary inside kernels: ``gc``/``gm`` gallery codes/masks, ``pc``/``pm`` probe rotations,
``x``/``xm`` a word of ``a``'s rotated code/mask, ``m`` bits valid on both sides, ``d`` disagreeing
valid bits, ``v`` valid bits, ``s`` shift (index), ``j`` lane or word of ``a``, ``r`` bit offset
within a word, ``qw`` word offset of a rotation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from matcher.errors import DeviceUnavailable, InvalidTemplate
from matcher.kernels.cpu import _check_pairs_inputs, _check_scan_inputs

try:  # numba.cuda is part of numba up to its removal there, then the `numba-cuda` package ([gpu])
    from numba import cuda
except ImportError:  # no CUDA target installed: the module still imports, available() is False
    cuda = None  # type: ignore[assignment]

#: Threads per CUDA block: a multiple of the 32-thread warp, small enough that several blocks stay
#: resident per SM to hide memory latency. Independent of the gallery's ``lanes``: a thread finds
#: its lane from its row number, and warps stay coalesced whenever ``lanes`` is a multiple of 32.
THREADS_PER_BLOCK = 128

_INF = np.inf

U64Array = npt.NDArray[np.uint64]
F64Array = npt.NDArray[np.float64]
I64Array = npt.NDArray[np.int64]
I32Array = npt.NDArray[np.int32]


def _jit(fn):  # type: ignore[no-untyped-def]
    """``cuda.jit`` (compiled lazily at the first launch), or the plain function without numba.cuda.

    Kernels must call ``cuda.*`` through this module's global ``cuda``: the simulator swaps that
    global for its fake module while a kernel runs.
    """
    return cuda.jit(fn) if cuda is not None else fn


def available() -> bool:
    """True when CUDA kernels can run here: a usable GPU, or numba's CUDA simulator."""
    return cuda is not None and bool(cuda.is_available())


def _require_cuda() -> None:
    if not available():
        raise DeviceUnavailable(
            "no CUDA device: install the [gpu] extra (numba-cuda) on a host with an NVIDIA GPU and "
            "driver, or set NUMBA_ENABLE_CUDASIM=1 before numba is imported to simulate one"
        )


def _grid(n: int) -> int:
    return (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK


# --------------------------------------------------------------------------------------------
# 1:1 pairs, packed with groups=1 (plain column-major), rotation done on packed words.
# --------------------------------------------------------------------------------------------


@_jit
def _pairs_kernel(a, am, b, bm, stride, shifts, min_bits, out_hd, out_shift, out_bits):  # type: ignore[no-untyped-def]
    i = cuda.grid(1)
    n, nw = a.shape
    if i >= n:
        return
    n_bits_total = nw * 64
    best = _INF
    best_s = 0
    best_v = np.uint64(0)
    seen_v = np.uint64(0)
    for k in range(shifts.shape[0]):
        s = shifts[k]
        u = (-s * stride) % n_bits_total  # Python (floor) modulo: u in [0, W * 64)
        qw = u // 64
        r = np.uint64(u % 64)
        rl = np.uint64(64) - r
        d = np.uint64(0)
        v = np.uint64(0)
        j = qw  # word of a holding bit u + 64 w, for w = 0, 1, ...
        for w in range(nw):
            jn = j + 1
            if jn == nw:
                jn = 0
            if r == 0:  # a shift by 64 is undefined on the GPU: no second word then
                x = a[i, j]
                xm = am[i, j]
            else:
                x = (a[i, j] >> r) | (a[i, jn] << rl)
                xm = (am[i, j] >> r) | (am[i, jn] << rl)
            m = xm & bm[i, w]
            d += cuda.popc((x ^ b[i, w]) & m)
            v += cuda.popc(m)
            j = jn
        if v > seen_v:
            seen_v = v
        if v >= min_bits and v > 0:
            h = d / v
            if h < best:
                best = h
                best_s = s
                best_v = v
    if best == _INF:
        out_hd[i] = np.nan
        out_shift[i] = 0
        out_bits[i] = seen_v
    else:
        out_hd[i] = best
        out_shift[i] = best_s
        out_bits[i] = best_v


def iris_pairs(
    a: U64Array,
    am: U64Array,
    b: U64Array,
    bm: U64Array,
    stride_bits: int,
    max_shift: int,
    min_bits: int,
) -> tuple[F64Array, I32Array, I32Array]:
    """1:1 distances for n pairs of codes packed with ``groups=1``; rotation applies to ``a``.

    ``a, am, b, bm``: uint64 ``(n, W)`` C-contiguous host arrays; ``stride_bits``: packed bits per
    column. Returns host arrays ``(hd, shift, n_bits)`` of length n; NaN hd (shift 0, ``n_bits`` the
    largest overlap seen) where no rotation has ``min_bits`` bits in common. Same contract and
    results as :func:`matcher.kernels.cpu.iris_pairs`. Cost: one host-device round trip of the four
    arrays plus one launch; thread-safe (every call has its own device buffers).
    """
    from matcher.iris import shift_order

    n, _ = _check_pairs_inputs(a, am, b, bm, stride_bits)
    shifts = shift_order(max_shift).astype(np.int64)
    out_hd = np.empty(n, np.float64)
    out_shift = np.empty(n, np.int32)
    out_bits = np.empty(n, np.int32)
    if n == 0:
        return out_hd, out_shift, out_bits
    _require_cuda()
    d_hd = cuda.device_array(n, np.float64)
    d_shift = cuda.device_array(n, np.int32)
    d_bits = cuda.device_array(n, np.int32)
    _pairs_kernel[_grid(n), THREADS_PER_BLOCK](
        cuda.to_device(a),
        cuda.to_device(am),
        cuda.to_device(b),
        cuda.to_device(bm),
        int(stride_bits),
        cuda.to_device(shifts),
        int(min_bits),
        d_hd,
        d_shift,
        d_bits,
    )
    return d_hd.copy_to_host(), d_shift.copy_to_host(), d_bits.copy_to_host()


# --------------------------------------------------------------------------------------------
# Gallery scans over blocks of lanes.
# --------------------------------------------------------------------------------------------


@_jit
def _scan_all_kernel(gc, gm, pc, pm, min_bits, out_hd, out_s, out_v):  # type: ignore[no-untyped-def]
    row = cuda.grid(1)
    n_blocks, n_words, lanes = gc.shape
    if row >= n_blocks * lanes:
        return
    blk = row // lanes
    j = row - blk * lanes
    best = _INF
    bs = 0
    bv = np.uint64(0)
    for s in range(pc.shape[0]):
        d = np.uint64(0)
        v = np.uint64(0)
        for w in range(n_words):
            m = pm[s, w] & gm[blk, w, j]
            d += cuda.popc((pc[s, w] ^ gc[blk, w, j]) & m)
            v += cuda.popc(m)
        if v >= min_bits and v > 0:
            h = d / v
            if h < best:
                best = h
                bs = s
                bv = v
    out_hd[row] = best
    out_s[row] = bs
    out_v[row] = bv


def iris_scan_all(
    gc: U64Array, gm: U64Array, pc: U64Array, pm: U64Array, min_bits: int
) -> tuple[F64Array, I32Array, I32Array]:
    """Exact distance of one probe (``pc, pm``: ``(S, W)``) to every lane.

    Returns host arrays ``(hd, shift_index, n_bits)`` of length ``blocks * lanes``; ``inf`` hd
    (shift index 0, 0 bits) where no rotation reaches ``min_bits``. Same contract and results as
    :func:`matcher.kernels.cpu.iris_scan_all`. Cost: the gallery is copied to the device on every
    call (``2 * blocks * W * lanes * 8`` bytes), then one launch of ``blocks * lanes`` threads.
    """
    _check_scan_inputs(gc, gm, pc, pm, 2)
    n = gc.shape[0] * gc.shape[2]
    if n == 0:
        return np.empty(0, np.float64), np.empty(0, np.int32), np.empty(0, np.int32)
    _require_cuda()
    return _scan_all_device(cuda.to_device(gc), cuda.to_device(gm), n, pc, pm, int(min_bits))


def _scan_all_device(  # type: ignore[no-untyped-def]
    d_gc, d_gm, n: int, pc: U64Array, pm: U64Array, min_bits: int
) -> tuple[F64Array, I32Array, I32Array]:
    """One probe over a gallery already on the device; host arrays of length ``n``."""
    d_hd = cuda.device_array(n, np.float64)
    d_s = cuda.device_array(n, np.int32)
    d_v = cuda.device_array(n, np.int32)
    _scan_all_kernel[_grid(n), THREADS_PER_BLOCK](
        d_gc,
        d_gm,
        cuda.to_device(np.ascontiguousarray(pc)),
        cuda.to_device(np.ascontiguousarray(pm)),
        min_bits,
        d_hd,
        d_s,
        d_v,
    )
    return d_hd.copy_to_host(), d_s.copy_to_host(), d_v.copy_to_host()


def _select_topk(hd: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Rows of the ``k`` smallest finite ``hd``, ascending by ``(hd, row)``; fewer if fewer exist.

    ``argpartition`` alone could keep a later row tied with the k-th distance; every row tied with
    it is kept until the ``lexsort``, which then prefers the earlier row, as the CPU kernel does.
    """
    rows = np.flatnonzero(np.isfinite(hd))
    if rows.size > k:
        h = hd[rows]
        kth = h[np.argpartition(h, k - 1)[k - 1]]
        rows = rows[h <= kth]
    order = np.lexsort((rows, hd[rows]))[:k]
    return rows[order].astype(np.int64)


def iris_scan_topk(
    gc: U64Array, gm: U64Array, n_rows: int, pc: U64Array, pm: U64Array, k: int, min_bits: int
) -> tuple[F64Array, I64Array, I32Array, I32Array]:
    """Exact top-k for a batch of probes over a block gallery.

    ``gc, gm``: ``(blocks, W, lanes)``; ``pc, pm``: ``(P, S, W)`` rotations per probe. Returns host
    arrays ``(hd, row, shift_index, n_bits)`` each ``(P, k)``, ascending by ``(hd, row)``, padded
    with ``inf`` / ``-1`` / ``0`` / ``0``. Rows at or past ``n_rows`` are never returned. Same
    contract and results as :func:`matcher.kernels.cpu.iris_scan_topk`. Cost: the gallery is copied
    to the device once per call; then per probe one launch, ``16 * blocks * lanes`` bytes copied
    back and an ``O(blocks * lanes)`` numpy selection on the host.
    """
    _check_scan_inputs(gc, gm, pc, pm, 3)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InvalidTemplate(f"k must be a non-negative integer, got {k!r}")
    k = int(k)
    n_probes = pc.shape[0]
    out_hd = np.full((n_probes, k), np.inf)
    out_row = np.full((n_probes, k), -1, np.int64)
    out_s = np.zeros((n_probes, k), np.int32)
    out_v = np.zeros((n_probes, k), np.int32)
    n = gc.shape[0] * gc.shape[2]
    live = max(0, min(int(n_rows), n))
    if not (live and k and n_probes):
        return out_hd, out_row, out_s, out_v
    _require_cuda()
    d_gc, d_gm = cuda.to_device(gc), cuda.to_device(gm)  # once for the whole batch
    for p in range(n_probes):
        hd, sidx, bits = _scan_all_device(d_gc, d_gm, n, pc[p], pm[p], int(min_bits))
        rows = _select_topk(hd[:live], k)
        m = rows.size
        out_hd[p, :m] = hd[rows]
        out_row[p, :m] = rows
        out_s[p, :m] = sidx[rows]
        out_v[p, :m] = bits[rows]
    return out_hd, out_row, out_s, out_v

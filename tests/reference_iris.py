"""Slow, obviously-correct iris matching in plain numpy on bool arrays: the kernels' yardstick."""

from __future__ import annotations

import numpy as np

from matcher.iris import shift_order


def hd_reference(code_a, mask_a, code_b, mask_b, max_shift, min_valid_bits):
    """(hd, shift, n_bits) straight from the definition; NaN hd when no rotation qualifies."""
    best = (np.inf, 0, 0)
    seen = 0
    for s in shift_order(max_shift):
        ca = np.roll(code_a, int(s), axis=1)
        ma = np.roll(mask_a, int(s), axis=1)
        valid = ma & mask_b
        v = int(valid.sum())
        seen = max(seen, v)
        if v >= min_valid_bits and v > 0:
            h = int(((ca ^ code_b) & valid).sum()) / v
            if h < best[0]:
                best = (h, int(s), v)
    if best[0] == np.inf:
        return float("nan"), 0, seen
    return best


def gallery_reference(probe_code, probe_mask, codes, masks, max_shift, min_valid_bits):
    """Distances of one probe to every gallery code: (hd, inf for no overlap; shift; bits)."""
    out = [
        hd_reference(probe_code, probe_mask, c, m, max_shift, min_valid_bits)
        for c, m in zip(codes, masks, strict=True)
    ]
    hd = np.array([o[0] for o in out], dtype=np.float64)
    hd[np.isnan(hd)] = np.inf
    return hd, np.array([o[1] for o in out]), np.array([o[2] for o in out])


def pack_reference(code, geometry, groups=1):
    """One bool code ``(rings, columns, bits)`` packed as the matcher.iris docstring spells it out.

    Column ``c`` goes to group ``c % groups`` at position ``c // groups``; inside a column, bit
    ``ring * bits + bit``; each column takes ``column_stride_bits``; bit ``i`` of a group's string
    is bit ``i % 64`` of its word ``i // 64``.
    """
    r, c, b = geometry.shape
    stride = geometry.column_stride_bits
    group_bits = (c // groups) * stride
    words = np.zeros(groups * group_bits // 64, dtype=np.uint64)
    ring, col, bit = np.nonzero(code)
    index = (col % groups) * group_bits + (col // groups) * stride + ring * b + bit
    np.bitwise_or.at(
        words, index // 64, np.left_shift(np.uint64(1), (index % 64).astype(np.uint64))
    )
    return words


def block_layout(rows, lanes):
    """Packed rows ``(n, W)`` in the kernels' block layout ``(blocks, W, lanes)``, zero-padded."""
    n, n_words = rows.shape
    n_blocks = -(-n // lanes)
    out = np.zeros((n_blocks * lanes, n_words), dtype=np.uint64)
    out[:n] = rows
    return np.ascontiguousarray(out.reshape(n_blocks, lanes, n_words).transpose(0, 2, 1))


def packed_counts(pc, pm, codes, masks, n_words):
    """``(d, v)`` each ``(S, N)``: disagreeing and valid bits of rotation s against packed row i,
    counted over the first ``n_words`` words only."""
    valid = pm[:, None, :n_words] & masks[None, :, :n_words]
    d = np.bitwise_count((pc[:, None, :n_words] ^ codes[None, :, :n_words]) & valid).sum(axis=2)
    v = np.bitwise_count(valid).sum(axis=2)
    return d.astype(np.int64), v.astype(np.int64)


def reference_topk(hd, shift, bits, n_rows, k):
    """Top-k of per-row results (inf = no result) by ``(hd, row)``, padded with inf / -1 / 0."""
    rows = np.flatnonzero(np.isfinite(hd[:n_rows]))
    rows = rows[np.lexsort((rows, hd[rows]))][:k]
    pad = k - rows.size
    return (
        np.concatenate([hd[rows], np.full(pad, np.inf)]),
        np.concatenate([rows, np.full(pad, -1)]).astype(np.int64),
        np.concatenate([shift[rows], np.zeros(pad, int)]),
        np.concatenate([bits[rows], np.zeros(pad, int)]),
    )

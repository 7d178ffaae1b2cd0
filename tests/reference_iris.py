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

"""matcher.kernels.cpu: every public wrapper against the numpy reference in tests/reference_iris.py.

Galleries are built here in the kernels' block layout straight from packed rows
(:func:`tests.reference_iris.block_layout`), independently of :class:`matcher.gallery.IrisGallery`,
with the adversarial rows the kernels must get right: an all-masked row, exact copies of the probe
(hd-0 ties, broken by row), the probe rotated by exactly +-max_shift, a row whose overlap with a
sparse probe reaches the minimum at one rotation only, and a partly filled last block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from matcher.errors import InvalidTemplate
from matcher.iris import IrisGeometry, pack_codes, probe_rotations, shift_order
from matcher.kernels import cpu
from tests.reference_iris import (
    block_layout,
    gallery_reference,
    hd_reference,
    packed_counts,
    reference_topk,
)

GEO = IrisGeometry(8, 128, 2)  # 32 words, 16-bit columns
MAX_SHIFT = 5
MIN_BITS = 256
LANES = cpu.BLOCK_LANES
N_ROWS = 2 * LANES + 22  # the last block is partly filled
ORDER = list(shift_order(MAX_SHIFT))

# Rows of the fixture gallery with a known meaning (see _gallery).
ROW_MASKED = 3
ROW_COPY, ROW_COPY2 = 5, 20
ROW_PLUS, ROW_MINUS = 9, 11
ROW_FLAT = 13
ROW_EXACT_OVERLAP = LANES + 1
ROW_LAST = N_ROWS - 1


def _rand(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.5) -> np.ndarray:
    return rng.random(shape) < p


def _column_mask(geometry: IrisGeometry, first: int, n_columns: int) -> np.ndarray:
    mask = np.zeros(geometry.shape, bool)
    mask[:, (first + np.arange(n_columns)) % geometry.columns, :] = True
    return mask


@dataclass
class Gallery:
    codes: np.ndarray  # bool (N_ROWS, r, c, b), what the reference reads
    masks: np.ndarray
    groups: int
    rows_c: np.ndarray  # packed (N_ROWS, W)
    rows_m: np.ndarray
    gc: np.ndarray  # block layout (blocks, W, lanes)
    gm: np.ndarray
    probes: list[tuple[np.ndarray, np.ndarray]]  # bool (code, mask)
    rotations: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (shifts, pc, pm)


def _gallery(groups: int, seed: int = 1) -> Gallery:
    """Probe 0 is random; probe 1 is valid on exactly MIN_BITS bits (16 columns); probe 2 is
    another random probe with a sparse mask."""
    rng = np.random.default_rng(seed)
    shape = GEO.shape
    codes = _rand(rng, (N_ROWS, *shape))
    masks = _rand(rng, (N_ROWS, *shape), 0.8)
    p0 = (_rand(rng, shape), _rand(rng, shape, 0.8))
    p1 = (_rand(rng, shape), _column_mask(GEO, 0, MIN_BITS // GEO.column_bits))
    p2 = (_rand(rng, shape), _rand(rng, shape, 0.4))
    for row, s in ((ROW_COPY, 0), (ROW_COPY2, 0), (ROW_PLUS, MAX_SHIFT), (ROW_MINUS, -MAX_SHIFT)):
        codes[row] = np.roll(p0[0], s, axis=1)
        masks[row] = np.roll(p0[1], s, axis=1)
    codes[ROW_LAST] = p0[0]  # a perfect match in the last, partly filled block
    masks[ROW_LAST] = p0[1]
    masks[ROW_MASKED] = False
    codes[ROW_FLAT], masks[ROW_FLAT] = False, True  # every rotation of it ties
    masks[ROW_EXACT_OVERLAP] = _column_mask(GEO, -2, MIN_BITS // GEO.column_bits)
    rows_c, rows_m = pack_codes(codes, GEO, groups), pack_codes(masks, GEO, groups)
    probes = [p0, p1, p2]
    rotations = [probe_rotations(c, m, GEO, MAX_SHIFT, groups) for c, m in probes]
    return Gallery(
        codes,
        masks,
        groups,
        rows_c,
        rows_m,
        block_layout(rows_c, LANES),
        block_layout(rows_m, LANES),
        probes,
        rotations,
    )


@pytest.fixture(scope="module", params=[1, 4], ids=["groups1", "groups4"])
def gallery(request: pytest.FixtureRequest) -> Gallery:
    return _gallery(request.param)


@pytest.fixture(scope="module")
def references(gallery: Gallery) -> dict[tuple[int, int], tuple]:
    """gallery_reference per (probe, min_bits): (hd with inf, shift, bits) per row."""
    out = {}
    for p, (code, mask) in enumerate(gallery.probes):
        for mb in (MIN_BITS, MIN_BITS + 1):
            out[p, mb] = gallery_reference(code, mask, gallery.codes, gallery.masks, MAX_SHIFT, mb)
    return out


# ------------------------------------------------------------------------------------------
# iris_pairs
# ------------------------------------------------------------------------------------------

PAIR_GEOMETRIES = [
    IrisGeometry(8, 128, 2),
    IrisGeometry(3, 64, 2),
    IrisGeometry(1, 64, 1),
    IrisGeometry(4, 32, 1),
    IrisGeometry(32, 16, 2),
    IrisGeometry(40, 16, 2),
]


@pytest.mark.parametrize("geometry", PAIR_GEOMETRIES, ids=str)
def test_iris_pairs_equals_reference(geometry: IrisGeometry) -> None:
    rng = np.random.default_rng(geometry.n_bits + geometry.columns)
    shape = geometry.shape
    max_shift = min(8, (geometry.columns - 1) // 2)
    n = 8
    a, b = _rand(rng, (n, *shape)), _rand(rng, (n, *shape))
    am, bm = _rand(rng, (n, *shape), 0.8), _rand(rng, (n, *shape), 0.8)
    # Row 0: b is a rotated by +max_shift; row 1: by -max_shift; row 2: a fully masked.
    b[0], bm[0] = np.roll(a[0], max_shift, axis=1), True
    b[1], bm[1] = np.roll(a[1], -max_shift, axis=1), True
    am[0] = am[1] = True
    am[2] = False
    # Row 3: a quarter of the columns each, meeting in full at s = -2 only.
    k = max(2, geometry.columns // 4)
    am[3], bm[3] = _column_mask(geometry, 0, k), _column_mask(geometry, -2, k)
    min_bits = k * geometry.column_bits
    packed = [pack_codes(x, geometry) for x in (a, am, b, bm)]
    for ms in (0, max_shift, geometry.columns - 1):
        for mb in (0, min_bits, min_bits + 1):
            hd, shift, bits = cpu.iris_pairs(*packed, geometry.column_stride_bits, ms, mb)
            assert hd.dtype == np.float64 and shift.dtype == bits.dtype == np.int32
            for i in range(n):
                want = hd_reference(a[i], am[i], b[i], bm[i], ms, mb)
                got = (float(hd[i]), int(shift[i]), int(bits[i]))
                assert got[1:] == want[1:], (geometry, ms, mb, i, got, want)
                assert got[0] == want[0] or (np.isnan(got[0]) and np.isnan(want[0]))
    hd, shift, bits = cpu.iris_pairs(*packed, geometry.column_stride_bits, max_shift, min_bits)
    assert (hd[0], shift[0]) == (0, max_shift) and (hd[1], shift[1]) == (0, -max_shift)
    assert np.isnan(hd[2]) and shift[2] == 0 and bits[2] == 0
    assert shift[3] == -2 and bits[3] == min_bits
    hd, shift, bits = cpu.iris_pairs(*packed, geometry.column_stride_bits, max_shift, min_bits + 1)
    assert np.isnan(hd[3]) and shift[3] == 0 and bits[3] == min_bits  # the best overlap seen


def test_iris_pairs_of_no_pairs() -> None:
    empty = np.zeros((0, 32), np.uint64)
    hd, shift, bits = cpu.iris_pairs(empty, empty, empty, empty, 16, 8, MIN_BITS)
    assert hd.shape == shift.shape == bits.shape == (0,)


def test_iris_pairs_rejects_bad_input() -> None:
    good = np.zeros((3, 32), np.uint64)
    bad = [
        (good.astype(np.int64), good, good, good),
        (good, good[:2], good, good),
        (good, good, good[:, :16], good),
        (good, good, good, np.asfortranarray(np.zeros((3, 32), np.uint64))),
        (good, good, good, np.zeros((3, 64), np.uint64)[:, ::2]),
    ]
    for args in bad:
        with pytest.raises(InvalidTemplate, match="iris_pairs needs four C-contiguous uint64"):
            cpu.iris_pairs(*args, 16, 8, MIN_BITS)
    for stride in (0, 3, 24, 96):
        with pytest.raises(InvalidTemplate, match=f"column stride {stride} bits"):
            cpu.iris_pairs(good, good, good, good, stride, 8, MIN_BITS)
    with pytest.raises(InvalidTemplate, match="max_shift"):
        cpu.iris_pairs(good, good, good, good, 16, -1, MIN_BITS)


def test_iris_pairs_rejects_one_dimensional_arrays() -> None:
    # The wrapper promises our error for a wrong shape; a 1-D code must not reach tuple unpacking.
    flat = np.zeros(32, np.uint64)
    with pytest.raises(InvalidTemplate):
        cpu.iris_pairs(flat, flat, flat, flat, 16, 8, MIN_BITS)


# ------------------------------------------------------------------------------------------
# iris_scan_all
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [0, 1, 2])
@pytest.mark.parametrize("min_bits", [MIN_BITS, MIN_BITS + 1])
def test_iris_scan_all_equals_reference(
    gallery: Gallery, references: dict, probe: int, min_bits: int
) -> None:
    shifts, pc, pm = gallery.rotations[probe]
    hd, sidx, bits = cpu.iris_scan_all(gallery.gc, gallery.gm, pc, pm, min_bits)
    n_lanes = gallery.gc.shape[0] * LANES
    assert hd.shape == sidx.shape == bits.shape == (n_lanes,)
    assert hd.dtype == np.float64 and sidx.dtype == bits.dtype == np.int32
    ref_hd, ref_shift, ref_bits = references[probe, min_bits]
    np.testing.assert_array_equal(hd[:N_ROWS], ref_hd)
    finite = np.isfinite(ref_hd)
    np.testing.assert_array_equal(shifts[sidx[:N_ROWS]][finite], ref_shift[finite])
    np.testing.assert_array_equal(bits[:N_ROWS][finite], ref_bits[finite])
    assert not sidx[:N_ROWS][~finite].any()
    # Lanes past the last row and the all-masked row: never a distance.
    assert np.isinf(hd[N_ROWS:]).all() and not sidx[N_ROWS:].any()
    assert np.isinf(hd[ROW_MASKED])


def test_iris_scan_all_adversarial_rows(gallery: Gallery) -> None:
    _, pc, pm = gallery.rotations[0]
    hd, sidx, bits = cpu.iris_scan_all(gallery.gc, gallery.gm, pc, pm, MIN_BITS)
    assert hd[ROW_COPY] == hd[ROW_COPY2] == hd[ROW_LAST] == 0 and sidx[ROW_COPY] == 0
    assert hd[ROW_PLUS] == 0 and sidx[ROW_PLUS] == ORDER.index(MAX_SHIFT)
    assert hd[ROW_MINUS] == 0 and sidx[ROW_MINUS] == ORDER.index(-MAX_SHIFT)
    assert np.isfinite(hd[ROW_FLAT]) and sidx[ROW_FLAT] == 0  # all rotations tie: the first
    _, pc, pm = gallery.rotations[1]
    hd, sidx, bits = cpu.iris_scan_all(gallery.gc, gallery.gm, pc, pm, MIN_BITS)
    assert sidx[ROW_EXACT_OVERLAP] == ORDER.index(-2) and bits[ROW_EXACT_OVERLAP] == MIN_BITS
    # Probe 1 has exactly MIN_BITS valid bits: only full-overlap rows can reach it.
    assert set(np.flatnonzero(np.isfinite(hd))) == {ROW_FLAT, ROW_EXACT_OVERLAP}
    hd, _, _ = cpu.iris_scan_all(gallery.gc, gallery.gm, pc, pm, MIN_BITS + 1)
    assert np.isinf(hd).all()


# ------------------------------------------------------------------------------------------
# iris_scan_topk
# ------------------------------------------------------------------------------------------


def _check_topk(got: tuple, refs: list[tuple], shifts: np.ndarray, n_rows: int, k: int) -> None:
    hd, rows, sidx, bits = got
    assert hd.shape == rows.shape == sidx.shape == bits.shape == (len(refs), k)
    assert hd.dtype == np.float64 and rows.dtype == np.int64
    for p, (ref_hd, ref_shift, ref_bits) in enumerate(refs):
        want = reference_topk(ref_hd, ref_shift, ref_bits, n_rows, k)
        found = rows[p] >= 0
        np.testing.assert_array_equal(hd[p], want[0], err_msg=f"probe {p} hd")
        np.testing.assert_array_equal(rows[p], want[1], err_msg=f"probe {p} rows")
        np.testing.assert_array_equal(shifts[sidx[p]][found], want[2][found])
        np.testing.assert_array_equal(bits[p][found], want[3][found])
        assert (rows[p] < n_rows).all()
        assert np.isinf(hd[p][~found]).all()


@pytest.mark.parametrize(
    ("n_rows", "k"),
    [(N_ROWS, 1), (N_ROWS, 4), (N_ROWS, 7), (LANES + 10, 6), (N_ROWS, N_ROWS + 50), (1, 3)],
)
def test_iris_scan_topk_equals_reference(
    gallery: Gallery, references: dict, n_rows: int, k: int
) -> None:
    """A batch of three probes; n_rows below the filled rows hides the rest (ROW_LAST too)."""
    shifts = gallery.rotations[0][0]
    pc = np.stack([r[1] for r in gallery.rotations])
    pm = np.stack([r[2] for r in gallery.rotations])
    refs = [references[p, MIN_BITS] for p in range(3)]
    got = cpu.iris_scan_topk(gallery.gc, gallery.gm, n_rows, pc, pm, k, MIN_BITS)
    _check_topk(got, refs, shifts, n_rows, k)
    # Each probe alone gives its row of the batch.
    for p in range(3):
        alone = cpu.iris_scan_topk(
            gallery.gc, gallery.gm, n_rows, pc[p : p + 1], pm[p : p + 1], k, MIN_BITS
        )
        for a, b in zip(alone, got, strict=True):
            np.testing.assert_array_equal(a[0], b[p])


def test_iris_scan_topk_ties_and_padding(gallery: Gallery) -> None:
    pc = np.stack([r[1] for r in gallery.rotations])
    pm = np.stack([r[2] for r in gallery.rotations])
    hd, rows, sidx, bits = cpu.iris_scan_topk(gallery.gc, gallery.gm, N_ROWS, pc, pm, 6, MIN_BITS)
    # Five distance-0 rows, by row: the copies, the rotations, the one in the last block.
    assert list(rows[0, :5]) == sorted([ROW_COPY, ROW_COPY2, ROW_PLUS, ROW_MINUS, ROW_LAST])
    assert not hd[0, :5].any() and hd[0, 5] > 0
    assert set(rows[1, :2]) == {ROW_FLAT, ROW_EXACT_OVERLAP}
    assert list(rows[1, 2:]) == [-1] * 4 and np.isinf(hd[1, 2:]).all()
    assert not sidx[1, 2:].any() and not bits[1, 2:].any()
    # No row reaches MIN_BITS + 1 with probe 1: all padding.
    hd, rows, _, _ = cpu.iris_scan_topk(
        gallery.gc, gallery.gm, N_ROWS, pc[1:2], pm[1:2], 3, MIN_BITS + 1
    )
    assert np.isinf(hd).all() and (rows == -1).all()


def test_iris_scan_topk_never_returns_lanes_past_n_rows() -> None:
    """Lanes at or past n_rows hold perfect matches here; they must still never come back."""
    rng = np.random.default_rng(21)
    code, mask = _rand(rng, GEO.shape), np.ones(GEO.shape, bool)
    n_filled = 2 * LANES
    codes = np.broadcast_to(code, (n_filled, *GEO.shape))
    masks = np.broadcast_to(mask, (n_filled, *GEO.shape))
    gc = block_layout(pack_codes(codes, GEO), LANES)
    gm = block_layout(pack_codes(masks, GEO), LANES)
    _, pc, pm = probe_rotations(code, mask, GEO, MAX_SHIFT)
    for n_rows in (0, 1, LANES - 3, LANES, LANES + 1):
        hd, rows, _, _ = cpu.iris_scan_topk(gc, gm, n_rows, pc[None], pm[None], 8, MIN_BITS)
        want = list(range(min(n_rows, 8))) + [-1] * (8 - min(n_rows, 8))
        assert list(rows[0]) == want, n_rows
        assert (hd[0][: min(n_rows, 8)] == 0).all()


def test_iris_scan_topk_gallery_of_one_row() -> None:
    rng = np.random.default_rng(22)
    code, mask = _rand(rng, GEO.shape), _rand(rng, GEO.shape, 0.8)
    other, other_mask = _rand(rng, GEO.shape), _rand(rng, GEO.shape, 0.8)
    gc = block_layout(pack_codes(other[None], GEO, 4), LANES)
    gm = block_layout(pack_codes(other_mask[None], GEO, 4), LANES)
    assert gc.shape == (1, 32, LANES)
    shifts, pc, pm = probe_rotations(code, mask, GEO, MAX_SHIFT, 4)
    hd, rows, sidx, bits = cpu.iris_scan_topk(gc, gm, 1, pc[None], pm[None], 5, MIN_BITS)
    want = hd_reference(code, mask, other, other_mask, MAX_SHIFT, MIN_BITS)
    assert list(rows[0]) == [0, -1, -1, -1, -1]
    assert (hd[0, 0], shifts[sidx[0, 0]], bits[0, 0]) == want
    assert np.isinf(hd[0, 1:]).all()
    # And an empty gallery: nothing but padding.
    empty = np.zeros((0, 32, LANES), np.uint64)
    hd, rows, _, _ = cpu.iris_scan_topk(empty, empty, 0, pc[None], pm[None], 2, MIN_BITS)
    assert (rows == -1).all() and np.isinf(hd).all()


# ------------------------------------------------------------------------------------------
# iris_scan_coarse
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.3, 0.4, 0.45])
def test_iris_scan_coarse_equals_numpy(gallery: Gallery, threshold: float) -> None:
    n_words_all = gallery.gc.shape[1]
    t = round(threshold * 1024)
    for probe in range(3):
        _, pc, pm = gallery.rotations[probe]
        screened = slice(None, None, 2)  # what the fast mode passes: every second rotation
        for n_words in sorted({1, 3, GEO.group_words(gallery.groups), n_words_all}):
            got = cpu.iris_scan_coarse(
                gallery.gc, gallery.gm, pc[screened], pm[screened], n_words, threshold
            )
            assert got.dtype == np.int32 and got.shape == (gallery.gc.shape[0] * LANES,)
            d, v = packed_counts(
                pc[screened], pm[screened], gallery.rows_c, gallery.rows_m, n_words
            )
            x = 1024 * d - t * v  # (S, N)
            # Sign: negative exactly when some rotation's subset distance d/v is below t/1024.
            np.testing.assert_array_equal(got[:N_ROWS] < 0, (x < 0).any(axis=0))
            np.testing.assert_array_equal(
                got[:N_ROWS] < 0, ((v > 0) & (d / np.maximum(v, 1) < t / 1024)).any(axis=0)
            )
            # Value: the documented minimum over rotations.
            np.testing.assert_array_equal(got[:N_ROWS], np.clip(x.min(axis=0), -(2**31), 2**31 - 1))
            # An all-masked row and the empty lanes never screen in.
            assert got[ROW_MASKED] >= 0 and (got[N_ROWS:] >= 0).all()


def test_iris_scan_coarse_screens_in_copies_and_rejects_bad_word_counts(gallery: Gallery) -> None:
    _, pc, pm = gallery.rotations[0]
    got = cpu.iris_scan_coarse(gallery.gc, gallery.gm, pc, pm, 4, 0.01)
    for row in (ROW_COPY, ROW_COPY2, ROW_PLUS, ROW_MINUS, ROW_LAST):
        assert got[row] < 0
    for n_words in (0, -1, gallery.gc.shape[1] + 1):
        with pytest.raises(InvalidTemplate, match=f"screening words {n_words} outside 1..32"):
            cpu.iris_scan_coarse(gallery.gc, gallery.gm, pc, pm, n_words, 0.4)


# ------------------------------------------------------------------------------------------
# iris_rows_exact
# ------------------------------------------------------------------------------------------


def test_iris_rows_exact_equals_scan_all_and_reference(gallery: Gallery, references: dict) -> None:
    rng = np.random.default_rng(23)
    n_lanes = gallery.gc.shape[0] * LANES
    rows = np.concatenate(
        [
            rng.permutation(N_ROWS)[:40],
            [ROW_MASKED, ROW_COPY, ROW_PLUS, ROW_MINUS, ROW_COPY, ROW_LAST, N_ROWS, n_lanes - 1],
        ]
    ).astype(np.int64)
    for probe in range(3):
        shifts, pc, pm = gallery.rotations[probe]
        for min_bits in (MIN_BITS, MIN_BITS + 1):
            hd, sidx, bits = cpu.iris_rows_exact(gallery.gc, gallery.gm, rows, pc, pm, min_bits)
            assert hd.shape == sidx.shape == bits.shape == rows.shape
            all_hd, all_s, all_v = cpu.iris_scan_all(gallery.gc, gallery.gm, pc, pm, min_bits)
            np.testing.assert_array_equal(hd, all_hd[rows])
            np.testing.assert_array_equal(sidx, all_s[rows])
            np.testing.assert_array_equal(bits, all_v[rows])
            ref_hd, ref_shift, ref_bits = references[probe, min_bits]
            inside = rows < N_ROWS
            np.testing.assert_array_equal(hd[inside], ref_hd[rows[inside]])
            finite = np.isfinite(hd)
            np.testing.assert_array_equal(shifts[sidx[finite]], ref_shift[rows[finite]])
            np.testing.assert_array_equal(bits[finite], ref_bits[rows[finite]])
            assert np.isinf(hd[~inside]).all()  # empty lanes
    _, pc, pm = gallery.rotations[0]
    hd, sidx, bits = cpu.iris_rows_exact(gallery.gc, gallery.gm, np.zeros(0, np.int64), pc, pm, 1)
    assert hd.shape == (0,)
    for bad in ([-1], [n_lanes], [0, n_lanes + 5]):
        with pytest.raises(InvalidTemplate, match="row index outside the gallery"):
            cpu.iris_rows_exact(gallery.gc, gallery.gm, np.array(bad), pc, pm, MIN_BITS)


# ------------------------------------------------------------------------------------------
# reference_scan
# ------------------------------------------------------------------------------------------


def test_reference_scan_equals_reference(gallery: Gallery, references: dict) -> None:
    for probe in range(3):
        shifts, pc, pm = gallery.rotations[probe]
        for min_bits in (MIN_BITS, MIN_BITS + 1):
            hd, sidx = cpu.reference_scan(gallery.rows_c, gallery.rows_m, pc, pm, min_bits)
            assert hd.shape == sidx.shape == (N_ROWS,)
            ref_hd, ref_shift, _ = references[probe, min_bits]
            np.testing.assert_array_equal(hd, ref_hd)
            finite = np.isfinite(ref_hd)
            np.testing.assert_array_equal(shifts[sidx[finite]], ref_shift[finite])
    with pytest.raises(InvalidTemplate, match="reference_scan needs uint64"):
        cpu.reference_scan(gallery.rows_c.astype(np.int64), gallery.rows_m, pc, pm, MIN_BITS)
    with pytest.raises(InvalidTemplate, match="reference_scan needs uint64"):
        cpu.reference_scan(gallery.rows_c, gallery.rows_m[:-1], pc, pm, MIN_BITS)
    with pytest.raises(InvalidTemplate, match="probe has 31 words"):
        cpu.reference_scan(gallery.rows_c, gallery.rows_m, pc[:, :31], pm[:, :31], MIN_BITS)


# ------------------------------------------------------------------------------------------
# Scan wrappers: input validation
# ------------------------------------------------------------------------------------------


def _scan_calls(gc: np.ndarray, gm: np.ndarray, pc: np.ndarray, pm: np.ndarray) -> dict:
    """Each scan wrapper, called with a gallery and one probe's rotations (S, W)."""
    rows = np.arange(3, dtype=np.int64)
    return {
        "topk": lambda: cpu.iris_scan_topk(gc, gm, 10, pc[None], pm[None], 3, MIN_BITS),
        "all": lambda: cpu.iris_scan_all(gc, gm, pc, pm, MIN_BITS),
        "coarse": lambda: cpu.iris_scan_coarse(gc, gm, pc, pm, 4, 0.4),
        "rows": lambda: cpu.iris_rows_exact(gc, gm, rows, pc, pm, MIN_BITS),
    }


def _bad_scan_inputs() -> list[tuple[str, str]]:
    return [
        ("int64 gallery", "gallery codes and masks must be uint64"),
        ("gallery shapes differ", "gallery codes and masks must be uint64 arrays of one shape"),
        ("2-D gallery", "gallery codes and masks must be uint64"),
        ("non-contiguous gallery", "gallery arrays must be C-contiguous"),
        ("int64 probe", "probe rotations must be uint64"),
        ("probe shapes differ", "probe rotations must be uint64 arrays of one shape"),
        ("probe word count", "probe has 16 words, gallery 32"),
    ]


@pytest.mark.parametrize("wrapper", ["topk", "all", "coarse", "rows"])
@pytest.mark.parametrize(("case", "message"), _bad_scan_inputs())
def test_scan_wrappers_reject_bad_input(wrapper: str, case: str, message: str) -> None:
    gc = np.zeros((2, 32, LANES), np.uint64)
    gm = np.zeros((2, 32, LANES), np.uint64)
    pc = np.zeros((3, 32), np.uint64)
    pm = np.zeros((3, 32), np.uint64)
    if case == "int64 gallery":
        gc = gc.astype(np.int64)
    elif case == "gallery shapes differ":
        gm = gm[:1]
    elif case == "2-D gallery":
        gc, gm = gc[0], gm[0]
    elif case == "non-contiguous gallery":
        gc = np.zeros((2, 32, 2 * LANES), np.uint64)[:, :, ::2]
    elif case == "int64 probe":
        pc = pc.astype(np.int64)
    elif case == "probe shapes differ":
        pm = pm[:2]
    elif case == "probe word count":
        pc, pm = pc[:, :16], pm[:, :16]
    with pytest.raises(InvalidTemplate, match=message):
        _scan_calls(gc, gm, pc, pm)[wrapper]()


def test_scan_wrappers_reject_probes_of_the_wrong_rank() -> None:
    gc = np.zeros((1, 32, LANES), np.uint64)
    one = np.zeros((3, 32), np.uint64)
    batch = one[None]
    with pytest.raises(InvalidTemplate, match="probe rotations"):
        cpu.iris_scan_topk(gc, gc, 1, one, one, 3, MIN_BITS)
    for call in (cpu.iris_scan_all, cpu.iris_rows_exact):
        args = (np.arange(1),) if call is cpu.iris_rows_exact else ()
        with pytest.raises(InvalidTemplate, match="probe rotations"):
            call(gc, gc, *args, batch, batch, MIN_BITS)  # type: ignore[operator]
    with pytest.raises(InvalidTemplate, match="probe rotations"):
        cpu.iris_scan_coarse(gc, gc, batch, batch, 4, 0.4)


@pytest.mark.parametrize("k", [-1])
def test_iris_scan_topk_rejects_a_bad_k(k: object) -> None:
    gc = np.zeros((1, 32, LANES), np.uint64)
    pc = np.zeros((1, 3, 32), np.uint64)
    with pytest.raises(InvalidTemplate, match="k"):
        cpu.iris_scan_topk(gc, gc, 1, pc, pc, k, MIN_BITS)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "rows", [np.zeros((2, 2), np.int64), np.array([1.7])], ids=["2-D", "float"]
)
def test_iris_rows_exact_rejects_rows_that_are_not_a_1d_integer_array(rows: np.ndarray) -> None:
    # A 2-D index array reaches numba's typing; 1.7 is silently truncated to row 1.
    gc = np.zeros((1, 32, LANES), np.uint64)
    pc = np.zeros((3, 32), np.uint64)
    with pytest.raises(InvalidTemplate, match="row"):
        cpu.iris_rows_exact(gc, gc, rows, pc, pc, MIN_BITS)

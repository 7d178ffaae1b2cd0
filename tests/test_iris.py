"""matcher.iris: geometry, bit packing, and the 1:1 distance against the numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.errors import InvalidTemplate, MatcherError
from matcher.iris import (
    IrisGeometry,
    IrisTemplate,
    hamming_distance,
    hamming_distance_packed,
    normalize_hd,
    pack_codes,
    probe_rotations,
    shift_order,
    unpack_codes,
)
from matcher.iris_params import DAUGMAN_REFERENCE_BITS, DEFAULT_MIN_VALID_BITS
from tests.reference_iris import hd_reference, pack_reference

GEO = IrisGeometry(8, 128, 2)
MIN_BITS = 256

#: Every kind of column stride: padded, sub-word, whole words, several words; and a one-word code.
GEOMETRIES = [
    IrisGeometry(8, 128, 2),  # stride 16, 32 words
    IrisGeometry(16, 256, 2),  # stride 32, 128 words
    IrisGeometry(16, 256, 4),  # stride 64, 256 words
    IrisGeometry(3, 64, 2),  # 6 bits padded to 8
    IrisGeometry(40, 16, 2),  # 80 bits padded to 128
    IrisGeometry(1, 64, 1),  # stride 1, one word: every rotation wraps inside it
    IrisGeometry(4, 32, 1),  # stride 4, 2 words
]

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _rand(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.5) -> np.ndarray:
    return rng.random(shape) < p


def _column_mask(geometry: IrisGeometry, first: int, n_columns: int) -> np.ndarray:
    """Valid on ``n_columns`` whole columns from ``first`` on (circularly), nothing else."""
    mask = np.zeros(geometry.shape, bool)
    mask[:, (first + np.arange(n_columns)) % geometry.columns, :] = True
    return mask


def _periodic_code(rng: np.random.Generator, geometry: IrisGeometry, period: int) -> np.ndarray:
    r, c, b = geometry.shape
    assert c % period == 0
    return np.tile(_rand(rng, (r, period, b)), (1, c // period, 1))


def _assert_same(got: tuple, want: tuple) -> None:
    """(hd, shift, n_bits) identical, NaN equal to NaN."""
    hd, shift, bits = got
    w_hd, w_shift, w_bits = want
    assert (shift, bits) == (w_shift, w_bits), (got, want)
    assert hd == w_hd or (math.isnan(hd) and math.isnan(w_hd)), (got, want)


def _valid_groups(geometry: IrisGeometry, groups: int) -> bool:
    c, stride = geometry.columns, _stride(geometry.column_bits)
    return c % groups == 0 and ((c // groups) * stride) % 64 == 0


# ------------------------------------------------------------------------------------------
# IrisGeometry
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["rings", "columns", "bits"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "8", None])
def test_geometry_rejects_non_positive_integers(field: str, value: object) -> None:
    kwargs = {"rings": 8, "columns": 128, "bits": 2, field: value}
    with pytest.raises(InvalidTemplate, match=f"{field} must be a positive integer"):
        IrisGeometry(**kwargs)


@pytest.mark.parametrize("shape", [(3, 5, 1), (1, 32, 1), (3, 20, 1), (5, 3, 2), (1, 1, 1)])
def test_geometry_must_fill_whole_words(shape: tuple[int, int, int]) -> None:
    with pytest.raises(InvalidTemplate, match="whole 64-bit words"):
        IrisGeometry(*shape)


@pytest.mark.parametrize(
    ("shape", "stride", "words"),
    [
        ((8, 128, 2), 16, 32),
        ((16, 256, 2), 32, 128),
        ((16, 256, 4), 64, 256),
        ((3, 64, 2), 8, 8),
        ((40, 16, 2), 128, 32),
        ((1, 64, 1), 1, 1),
        ((33, 2, 1), 64, 2),
    ],
)
def test_geometry_accepts_word_filling_shapes(
    shape: tuple[int, int, int], stride: int, words: int
) -> None:
    geometry = IrisGeometry(*shape)
    assert geometry.shape == shape
    assert geometry.n_bits == shape[0] * shape[1] * shape[2]
    assert geometry.column_bits == shape[0] * shape[2]
    assert geometry.column_stride_bits == stride
    assert geometry.words() == words


def test_geometry_accepts_numpy_integers() -> None:
    # __post_init__ admits np.integer values (a shape read from an array); they must then work.
    geometry = IrisGeometry(np.int64(8), np.int64(128), np.int32(2))
    assert geometry == IrisGeometry(8, 128, 2)
    assert geometry.column_stride_bits == 16 and geometry.words(4) == 32


def test_default_geometry_is_daugmans() -> None:
    assert IrisGeometry() == IrisGeometry(8, 128, 2)
    assert IrisGeometry().n_bits == 2048


@pytest.mark.parametrize("groups", [0, -1, 3, 64, 256])
def test_check_groups_rejects_groups_that_split_words(groups: int) -> None:
    # 8x128x2: 16-bit columns; 64 groups of 2 columns would be 32-bit groups, not whole words.
    with pytest.raises(InvalidTemplate, match="column groups"):
        GEO.check_groups(groups)
    with pytest.raises(InvalidTemplate):
        pack_codes(np.zeros(GEO.shape, bool), GEO, groups)


def test_coarse_groups() -> None:
    assert GEO.coarse_groups(8) == 4 and GEO.group_words(4) == 8
    assert GEO.coarse_groups(1) == 32 and GEO.group_words(32) == 1
    assert GEO.coarse_groups(64) == 1  # more words than the whole code has: no split
    assert IrisGeometry(1, 64, 1).coarse_groups(8) == 1


# ------------------------------------------------------------------------------------------
# Packing
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_pack_layout_and_round_trip(geometry: IrisGeometry, groups: int) -> None:
    rng = np.random.default_rng(11)
    codes = _rand(rng, (3, *geometry.shape))
    if not _valid_groups(geometry, groups):
        with pytest.raises(InvalidTemplate, match="column groups"):
            pack_codes(codes, geometry, groups)
        return
    packed = pack_codes(codes, geometry, groups)
    assert packed.dtype == np.uint64 and packed.shape == (3, geometry.words(groups))
    for i in range(3):
        np.testing.assert_array_equal(packed[i], pack_reference(codes[i], geometry, groups))
    np.testing.assert_array_equal(unpack_codes(packed, geometry, groups), codes)
    # Padding bits are zero: an all-valid mask packs to exactly n_bits set bits.
    ones = pack_codes(np.ones(geometry.shape, bool), geometry, groups)
    assert ones.shape == (geometry.words(groups),)
    assert int(np.bitwise_count(ones).sum()) == geometry.n_bits


def _stride(column_bits: int) -> int:
    """Padded column width as the module docstring defines it, computed independently."""
    if column_bits <= 64:
        return next(p for p in (1, 2, 4, 8, 16, 32, 64) if p >= column_bits)
    return -(-column_bits // 64) * 64


@st.composite
def _geometry_and_groups(draw: st.DrawFn) -> tuple[IrisGeometry, int]:
    rings = draw(st.integers(1, 40))
    bits = draw(st.integers(1, 4))
    columns = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 12, 24, 48, 96]))
    if (columns * _stride(rings * bits)) % 64:
        columns = 64  # every stride fills whole words over 64 columns
    groups = draw(st.sampled_from([1, 2, 4, 8]))
    return IrisGeometry(rings, columns, bits), groups


@FAST
@given(gg=_geometry_and_groups(), seed=st.integers(0, 2**32 - 1), lead=st.integers(1, 3))
def test_pack_round_trip_property(gg: tuple[IrisGeometry, int], seed: int, lead: int) -> None:
    geometry, groups = gg
    codes = _rand(np.random.default_rng(seed), (lead, *geometry.shape))
    if not _valid_groups(geometry, groups):
        with pytest.raises(InvalidTemplate):
            pack_codes(codes, geometry, groups)
        return
    packed = pack_codes(codes, geometry, groups)
    assert packed.shape == (lead, geometry.words(groups))
    np.testing.assert_array_equal(packed[0], pack_reference(codes[0], geometry, groups))
    np.testing.assert_array_equal(unpack_codes(packed, geometry, groups), codes)


def test_pack_keeps_leading_dimensions() -> None:
    codes = _rand(np.random.default_rng(2), (2, 3, *GEO.shape))
    packed = pack_codes(codes, GEO, 4)
    assert packed.shape == (2, 3, 32)
    np.testing.assert_array_equal(packed[1, 2], pack_codes(codes[1, 2], GEO, 4))
    np.testing.assert_array_equal(unpack_codes(packed, GEO, 4), codes)


def test_pack_of_an_empty_batch_is_empty() -> None:
    # The shapes say "(..., rings, columns, bits) -> (..., words)": a batch of none is (0, words).
    packed = pack_codes(np.zeros((0, *GEO.shape), bool), GEO, 4)
    assert packed.shape == (0, 32) and packed.dtype == np.uint64
    assert unpack_codes(packed, GEO, 4).shape == (0, *GEO.shape)


def test_pack_and_unpack_reject_wrong_shapes() -> None:
    with pytest.raises(InvalidTemplate, match="does not end in"):
        pack_codes(np.zeros((8, 64, 2), bool), GEO)
    with pytest.raises(InvalidTemplate, match="uint64 with 32 words"):
        unpack_codes(np.zeros((2, 31), np.uint64), GEO)
    with pytest.raises(InvalidTemplate, match="uint64"):
        unpack_codes(np.zeros((2, 32), np.int64), GEO)


def test_groups_one_rotation_is_a_bit_string_rotation() -> None:
    # The 1:1 kernel relies on it: rolling s columns rolls the packed string by s * stride bits.
    rng = np.random.default_rng(3)
    code = _rand(rng, GEO.shape)
    bits = np.unpackbits(pack_codes(code, GEO).view(np.uint8), bitorder="little")
    for s in (-8, -1, 1, 5):
        rolled = np.unpackbits(
            pack_codes(np.roll(code, s, axis=1), GEO).view(np.uint8), bitorder="little"
        )
        np.testing.assert_array_equal(rolled, np.roll(bits, s * GEO.column_stride_bits))


def test_shift_order_and_probe_rotations() -> None:
    assert list(shift_order(0)) == [0]
    assert list(shift_order(3)) == [0, -1, 1, -2, 2, -3, 3]
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(InvalidTemplate, match="max_shift"):
            shift_order(bad)  # type: ignore[arg-type]
    rng = np.random.default_rng(4)
    code, mask = _rand(rng, GEO.shape), _rand(rng, GEO.shape, 0.8)
    shifts, pc, pm = probe_rotations(code, mask, GEO, 4, 4)
    assert list(shifts) == list(shift_order(4)) and pc.shape == pm.shape == (9, 32)
    for i, s in enumerate(shifts):
        np.testing.assert_array_equal(pc[i], pack_codes(np.roll(code, s, axis=1), GEO, 4))
        np.testing.assert_array_equal(pm[i], pack_codes(np.roll(mask, s, axis=1), GEO, 4))
    with pytest.raises(InvalidTemplate, match="below the 128 columns"):
        probe_rotations(code, mask, GEO, 128)


# ------------------------------------------------------------------------------------------
# hamming_distance against hd_reference
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_hamming_distance_equals_reference_on_random_pairs(geometry: IrisGeometry) -> None:
    rng = np.random.default_rng(geometry.n_bits)
    n = 12
    a, b = _rand(rng, (n, *geometry.shape)), _rand(rng, (n, *geometry.shape))
    # Mask densities from sparse to full; low-bit geometries give many tied distances.
    density = np.linspace(0.35, 1.0, n)[:, None, None, None]
    am = rng.random(a.shape) < density
    bm = rng.random(b.shape) < density[::-1]
    min_bits = geometry.n_bits // 10
    for max_shift in sorted({0, 1, min(8, geometry.columns - 1), geometry.columns - 1}):
        hd, shift, bits = hamming_distance(a, am, b, bm, max_shift, min_valid_bits=min_bits)
        assert hd.dtype == np.float64 and shift.dtype == np.int32 and bits.dtype == np.int32
        for i in range(n):
            want = hd_reference(a[i], am[i], b[i], bm[i], max_shift, min_bits)
            _assert_same((float(hd[i]), int(shift[i]), int(bits[i])), want)
            single = hamming_distance(a[i], am[i], b[i], bm[i], max_shift, min_valid_bits=min_bits)
            assert type(single[0]) is float and type(single[1]) is int and type(single[2]) is int
            _assert_same(single, want)


@FAST
@given(
    geometry=st.sampled_from(GEOMETRIES[3:]),
    seed=st.integers(0, 2**32 - 1),
    max_shift=st.integers(0, 15),
    p_mask=st.floats(0.2, 1.0),
    min_frac=st.floats(0.0, 0.5),
)
def test_hamming_distance_property(
    geometry: IrisGeometry, seed: int, max_shift: int, p_mask: float, min_frac: float
) -> None:
    rng = np.random.default_rng(seed)
    max_shift = min(max_shift, geometry.columns - 1)
    a, b = _rand(rng, geometry.shape), _rand(rng, geometry.shape)
    am, bm = _rand(rng, geometry.shape, p_mask), _rand(rng, geometry.shape, p_mask)
    min_bits = min(int(min_frac * geometry.n_bits), int(am.sum()), int(bm.sum()))
    got = hamming_distance(a, am, b, bm, max_shift, min_valid_bits=min_bits)
    _assert_same(got, hd_reference(a, am, b, bm, max_shift, min_bits))


def test_identical_codes_have_distance_zero_at_shift_zero() -> None:
    rng = np.random.default_rng(5)
    code, mask = _rand(rng, GEO.shape), _rand(rng, GEO.shape, 0.7)
    other_mask = _rand(rng, GEO.shape, 0.7)
    assert hamming_distance(code, mask, code, other_mask) == (
        0.0,
        0,
        int((mask & other_mask).sum()),
    )


def test_complementary_codes_have_distance_one() -> None:
    rng = np.random.default_rng(6)
    code, full = _rand(rng, GEO.shape), np.ones(GEO.shape, bool)
    assert hamming_distance(code, full, ~code, full, 0) == (1.0, 0, 2048)
    # A code constant along the angle complements itself at every rotation: every one ties at 1.
    flat = np.repeat(_rand(rng, (8, 1, 2)), 128, axis=1)
    assert hamming_distance(flat, full, ~flat, full, 8) == (1.0, 0, 2048)
    _assert_same(
        hamming_distance(flat, full, ~flat, full, 8),
        hd_reference(flat, full, ~flat, full, 8, MIN_BITS),
    )


def test_one_valid_region() -> None:
    rng = np.random.default_rng(7)
    a, b = _rand(rng, GEO.shape), _rand(rng, GEO.shape)
    am = _column_mask(GEO, 10, 30)  # 480 bits, all in one arc
    bm = np.ones(GEO.shape, bool)
    got = hamming_distance(a, am, b, bm, 8)
    _assert_same(got, hd_reference(a, am, b, bm, 8, MIN_BITS))
    assert got[2] == 480
    # A copy of a's valid arc in b, moved 3 columns, is found there whatever the rest holds.
    b2 = b.copy()
    b2[:, 13:43, :] = a[:, 10:40, :]
    assert hamming_distance(a, am, b2, bm, 8) == (0.0, 3, 480)


def test_overlap_reaches_min_valid_bits_at_exactly_one_shift() -> None:
    rng = np.random.default_rng(8)
    a, b = _rand(rng, GEO.shape), _rand(rng, GEO.shape)
    # Main arcs: a on columns 0..15, b on 126..13, so they overlap on 16 - |s + 2| columns: 256
    # bits at s = -2 only. Extra arcs (64..69 in a, 96..101 in b) never meet anything within
    # +-8; they give each mask 352 valid bits so a minimum above 256 is still accepted.
    am = _column_mask(GEO, 0, 16) | _column_mask(GEO, 64, 6)
    bm = _column_mask(GEO, -2, 16) | _column_mask(GEO, 96, 6)
    hd, shift, bits = hamming_distance(a, am, b, bm, 8, min_valid_bits=256)
    assert shift == -2 and bits == 256 and not math.isnan(hd)
    _assert_same((hd, shift, bits), hd_reference(a, am, b, bm, 8, 256))
    # Even a perfect match elsewhere does not count where the overlap is short.
    b2 = np.roll(a, 1, axis=1)
    hd, shift, bits = hamming_distance(a, am, b2, bm, 8, min_valid_bits=256)
    assert shift == -2 and bits == 256 and hd > 0
    assert hamming_distance(a, am, b2, bm, 8, min_valid_bits=208)[:2] == (0.0, 1)  # 13 columns
    # One more bit needed: no rotation qualifies; NaN, shift 0, n_bits the best overlap seen.
    for min_bits in (257, 352):
        hd, shift, bits = hamming_distance(a, am, b, bm, 8, min_valid_bits=min_bits)
        assert math.isnan(hd) and shift == 0 and bits == 256
        _assert_same((hd, shift, bits), hd_reference(a, am, b, bm, 8, min_bits))


def test_no_rotation_reaches_min_valid_bits_gives_nan() -> None:
    rng = np.random.default_rng(9)
    a, b = _rand(rng, GEO.shape), _rand(rng, GEO.shape)
    am = _column_mask(GEO, 0, 20)
    # Disjoint arcs: no overlap at any rotation within +-8.
    bm = _column_mask(GEO, 64, 20)
    hd, shift, bits = hamming_distance(a, am, b, bm, 8)
    assert math.isnan(hd) and shift == 0 and bits == 0
    # Arcs 20 columns apart: the best overlap (s = 8) is 8 columns = 128 bits < 256.
    bm = _column_mask(GEO, 20, 20)
    hd, shift, bits = hamming_distance(a, am, b, bm, 8)
    assert math.isnan(hd) and shift == 0 and bits == 128
    _assert_same((hd, shift, bits), hd_reference(a, am, b, bm, 8, MIN_BITS))
    # Batch form: NaN in the array too.
    hd_b, shift_b, bits_b = hamming_distance(a[None], am[None], b[None], bm[None], 8)
    assert np.isnan(hd_b).all() and list(shift_b) == [0] and list(bits_b) == [128]


@pytest.mark.parametrize("max_shift", [1, 3, 8, 20])
@pytest.mark.parametrize("sign", [-1, 1])
def test_rotation_at_the_boundary_is_found(max_shift: int, sign: int) -> None:
    rng = np.random.default_rng(max_shift)
    a, full = _rand(rng, GEO.shape), np.ones(GEO.shape, bool)
    s = sign * max_shift
    # hamming_distance reports the s with np.roll(a, s) aligned to b.
    b = np.roll(a, s, axis=1)
    assert hamming_distance(a, full, b, full, max_shift) == (0.0, s, 2048)
    # One column further is out of reach: some other rotation, with a non-zero distance.
    b_out = np.roll(a, s + sign, axis=1)
    hd, shift, _ = hamming_distance(a, full, b_out, full, max_shift)
    assert hd > 0 and abs(shift) <= max_shift
    # With noise and different masks, still found at s, as the reference finds it.
    am, bm = _rand(rng, GEO.shape, 0.8), np.roll(_rand(rng, GEO.shape, 0.8), s, axis=1)
    noisy = b ^ _rand(rng, GEO.shape, 0.1)
    got = hamming_distance(a, am, noisy, bm, max_shift)
    assert got[1] == s
    _assert_same(got, hd_reference(a, am, noisy, bm, max_shift, MIN_BITS))


def test_max_shift_zero_compares_unrotated_only() -> None:
    rng = np.random.default_rng(10)
    a, full = _rand(rng, GEO.shape), np.ones(GEO.shape, bool)
    b = np.roll(a, 1, axis=1)
    hd, shift, bits = hamming_distance(a, full, b, full, 0)
    assert shift == 0 and bits == 2048
    assert hd == float(np.mean(a ^ b))
    assert hamming_distance(a, full, b, full, 1) == (0.0, 1, 2048)


@pytest.mark.parametrize(
    ("period", "offset", "want"),
    [
        (4, 2, -2),  # minima at -6, -2, 2, 6: equal |s| -> the negative one
        (4, 1, 1),  # minima at -7, -3, 1, 5: smallest |s| first, even when positive
        (4, 3, -1),  # minima at -5, -1, 3, 7
        (8, 4, -4),  # minima at -4, 4 only
        (16, 8, -8),  # minima at the boundary, -8 and 8
    ],
)
def test_ties_go_to_smallest_abs_shift_then_negative(period: int, offset: int, want: int) -> None:
    rng = np.random.default_rng(period * 10 + offset)
    a, full = _periodic_code(rng, GEO, period), np.ones(GEO.shape, bool)
    b = np.roll(a, offset, axis=1)
    got = hamming_distance(a, full, b, full, 8)
    assert got == (0.0, want, 2048)
    _assert_same(got, hd_reference(a, full, b, full, 8, MIN_BITS))
    # The same with noise (the tie survives: the two rotations see the same bits of b).
    noisy = b ^ _rand(rng, GEO.shape, 0.2)
    got = hamming_distance(a, full, noisy, full, 8)
    assert got[1] == want and got[0] > 0
    _assert_same(got, hd_reference(a, full, noisy, full, 8, MIN_BITS))


def test_batch_and_broadcast() -> None:
    rng = np.random.default_rng(12)
    n = 5
    a, b = _rand(rng, (n, *GEO.shape)), _rand(rng, (n, *GEO.shape))
    am, bm = _rand(rng, a.shape, 0.8), _rand(rng, b.shape, 0.8)
    b[2] = np.roll(a[2], -3, axis=1)
    bm[2] = np.roll(am[2], -3, axis=1)
    hd, shift, bits = hamming_distance(a, am, b, bm, 8)
    assert hd.shape == shift.shape == bits.shape == (n,)
    for i in range(n):
        _assert_same(
            (float(hd[i]), int(shift[i]), int(bits[i])),
            hd_reference(a[i], am[i], b[i], bm[i], 8, MIN_BITS),
        )
    assert (hd[2], shift[2]) == (0.0, -3)
    # One a against a batch of b, and a batch of a against one b.
    one_a = hamming_distance(a[0], am[0], b, bm, 8)
    one_b = hamming_distance(a, am, b[1], bm[1], 8)
    for i in range(n):
        _assert_same(
            (float(one_a[0][i]), int(one_a[1][i]), int(one_a[2][i])),
            hd_reference(a[0], am[0], b[i], bm[i], 8, MIN_BITS),
        )
        _assert_same(
            (float(one_b[0][i]), int(one_b[1][i]), int(one_b[2][i])),
            hd_reference(a[i], am[i], b[1], bm[1], 8, MIN_BITS),
        )
    # A batch of one stays a batch.
    got = hamming_distance(a[:1], am[:1], b[:1], bm[:1], 8)
    assert isinstance(got[0], np.ndarray) and got[0].shape == (1,)


def test_layout_of_the_input_does_not_matter() -> None:
    rng = np.random.default_rng(13)
    big = _rand(rng, (8, 256, 2))
    a = big[:, ::2, :]  # a strided view
    am = np.asfortranarray(_rand(rng, GEO.shape, 0.8))
    b, bm = _rand(rng, GEO.shape), _rand(rng, GEO.shape, 0.8)
    want = hd_reference(np.ascontiguousarray(a), am, b, bm, 8, MIN_BITS)
    _assert_same(hamming_distance(a, am, b, bm, 8), want)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=str)
def test_hamming_distance_packed_equals_bool_api(geometry: IrisGeometry) -> None:
    rng = np.random.default_rng(14)
    n = 6
    a, b = _rand(rng, (n, *geometry.shape)), _rand(rng, (n, *geometry.shape))
    am, bm = _rand(rng, a.shape, 0.7), _rand(rng, b.shape, 0.7)
    packed = [pack_codes(x, geometry) for x in (a, am, b, bm)]
    for max_shift, min_bits in ((0, 1), (5, DEFAULT_MIN_VALID_BITS), (8, geometry.n_bits // 2)):
        got = hamming_distance_packed(*packed, geometry, max_shift, min_bits)
        want = hamming_distance(a, am, b, bm, max_shift, min_valid_bits=min_bits)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype


def test_hamming_distance_packed_rejects_bad_input() -> None:
    w = GEO.words()
    good = np.zeros((2, w), np.uint64)
    cases = [
        ((good.astype(np.int64), good, good, good), "codes_a must be uint64"),
        ((good, good[:, :-1], good, good), "masks_a must be uint64"),
        ((good, good, good[0], good), "codes_b must be uint64"),
        ((good, good, good, [[0] * w] * 2), "masks_b must be uint64"),
        ((good, good, good[:1], good[:1]), "batch sizes differ"),
    ]
    for args, message in cases:
        with pytest.raises(InvalidTemplate, match=message):
            hamming_distance_packed(*args, GEO, 8)  # type: ignore[arg-type]
    for shift in (-1, 128, 1.0):
        with pytest.raises(InvalidTemplate, match="max_shift"):
            hamming_distance_packed(good, good, good, good, GEO, shift)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# normalize_hd
# ------------------------------------------------------------------------------------------


def test_normalize_hd() -> None:
    hd = np.array([0.0, 0.2, 0.5, 0.7, np.nan])
    bits = np.array([911, 400, 1500, 2048, 1000])
    got = normalize_hd(hd, bits)
    want = [0.5 - (0.5 - h) * math.sqrt(n / 911) for h, n in zip(hd, bits, strict=True)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    assert got[0] == 0.0 and got[2] == 0.5 and np.isnan(got[4])
    assert DAUGMAN_REFERENCE_BITS == 911
    # Fewer bits pull towards 0.5, more push away.
    assert 0.2 < got[1] < 0.5 and got[3] > 0.7
    # Scalars and broadcasting; another reference size.
    assert float(normalize_hd(0.3, 911)) == pytest.approx(0.3, abs=1e-15)
    assert float(normalize_hd(0.3, 400, reference_bits=100)) == pytest.approx(0.5 - 0.2 * 2)
    np.testing.assert_allclose(normalize_hd(0.25, np.array([911, 3644])), [0.25, 0.0], atol=1e-15)
    assert np.isnan(normalize_hd(float("nan"), 0))
    for bad in (0, -911):
        with pytest.raises(ValueError, match="reference_bits must be positive"):
            normalize_hd(0.3, 911, reference_bits=bad)


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


def _good(rng: np.random.Generator) -> list[np.ndarray]:
    return [_rand(rng, GEO.shape), np.ones(GEO.shape, bool)] * 2


def _bad_inputs() -> list[tuple[str, dict[int, object], str]]:
    """(case, {argument index: replacement}, text the error message must contain)."""
    rng = np.random.default_rng(15)
    sparse = np.zeros(GEO.shape, bool)
    sparse[0, :100, 0] = True  # 100 valid bits < 256
    one_bad = np.ones((3, *GEO.shape), bool)
    one_bad[1] = sparse
    return [
        ("float code", {0: rng.random(GEO.shape)}, "dtype bool"),
        ("int mask", {1: np.ones(GEO.shape, np.int8)}, "dtype bool"),
        ("uint8 code b", {2: np.zeros(GEO.shape, np.uint8)}, "dtype bool"),
        ("list", {0: _rand(rng, GEO.shape).tolist()}, "numpy bool arrays"),
        ("2-D", {0: np.zeros((8, 256), bool)}, "numpy bool arrays of shape"),
        ("5-D", {3: np.ones((1, 1, *GEO.shape), bool)}, "numpy bool arrays of shape"),
        ("geometry of b", {2: np.zeros((8, 64, 2), bool)}, "geometries differ"),
        ("bits of b", {2: np.zeros((8, 128, 1), bool)}, "geometries differ"),
        ("mask shape of a", {1: np.ones((8, 64, 2), bool)}, r"a mask has shape \(1, 8, 64, 2\)"),
        ("non-word geometry", {0: np.zeros((3, 5, 1), bool)}, "whole 64-bit words"),
        ("sparse mask a", {1: sparse}, "a mask has only 100 valid bits"),
        ("sparse mask b", {3: sparse}, "at least 256 are needed"),
        (
            "one sparse mask in a batch",
            {2: np.zeros((3, *GEO.shape), bool), 3: one_bad},
            r"only 100 valid bits \(item 1\)",
        ),
        ("code batch, single mask", {0: np.zeros((2, *GEO.shape), bool)}, "differs from mask"),
    ]


@pytest.mark.parametrize(("case", "replace", "message"), _bad_inputs())
def test_hamming_distance_rejects_bad_input(
    case: str, replace: dict[int, object], message: str
) -> None:
    args: list[object] = _good(np.random.default_rng(16))
    for which, value in replace.items():
        args[which] = value
    with pytest.raises(InvalidTemplate, match=message) as info:
        hamming_distance(*args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, MatcherError)


def test_hamming_distance_rejects_unequal_batches_and_bad_shifts() -> None:
    rng = np.random.default_rng(17)
    a = _rand(rng, (2, *GEO.shape))
    b = _rand(rng, (3, *GEO.shape))
    with pytest.raises(InvalidTemplate, match="batch sizes differ"):
        hamming_distance(a, np.ones_like(a), b, np.ones_like(b))
    code, full = a[0], np.ones(GEO.shape, bool)
    for shift, message in ((-1, "non-negative"), (128, "below the 128 columns"), (2.0, "integer")):
        with pytest.raises(InvalidTemplate, match=message):
            hamming_distance(code, full, code, full, shift)  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate, match="non-negative"):
        hamming_distance(code, full, code, full, True)  # type: ignore[arg-type]
    # The minimum is configurable: a mask that is too sparse for the default passes a lower one.
    sparse = _column_mask(GEO, 0, 4)  # 64 bits
    with pytest.raises(InvalidTemplate, match="only 64 valid bits"):
        hamming_distance(code, sparse, code, full)
    assert hamming_distance(code, sparse, code, full, min_valid_bits=64) == (0.0, 0, 64)


def test_iris_template_validate() -> None:
    rng = np.random.default_rng(18)
    code, mask = _rand(rng, GEO.shape), np.ones(GEO.shape, bool)
    template = IrisTemplate(code, mask, "R")
    template.validate()
    assert template.geometry() == GEO
    with pytest.raises(InvalidTemplate, match="eye must be 'L' or 'R'"):
        IrisTemplate(code, mask, "X").validate()
    with pytest.raises(InvalidTemplate, match="valid bits"):
        IrisTemplate(code, np.zeros(GEO.shape, bool)).validate()
    with pytest.raises(InvalidTemplate, match="dtype bool"):
        IrisTemplate(code.astype(np.float32), mask).validate()

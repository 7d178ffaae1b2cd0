"""matcher.gallery.IrisGallery: search against the numpy reference, mutation, files, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import DuplicateId, InvalidTemplate, UnknownId
from matcher.gallery import IrisGallery
from matcher.iris import IrisGeometry, IrisTemplate, pack_codes
from matcher.synthetic.iris import genuine_probes, random_codes, random_masks
from tests.reference_iris import gallery_reference, reference_topk

GEO = IrisGeometry(8, 128, 2)
MAX_SHIFT = 8
MIN_BITS = 256
N = 150  # not a multiple of the gallery's block lanes


class Data:
    """N synthetic codes under shuffled ids, with planted rows, and a few probes.

    Rows 10, 40 and 70 hold probe 0 exactly (hd-0 ties) under ids enrolled out of id order; row 90
    holds probe 0 rotated by +MAX_SHIFT, row 100 by -MAX_SHIFT; row 120 is a genuine (noisy,
    rotated) capture of probe 1.
    """

    def __init__(self, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.codes = random_codes(N, GEO, rng)
        self.masks = random_masks(N, GEO, rng)
        self.ids = rng.permutation(np.arange(1000, 1000 + 10 * N, 10)).astype(np.int64)
        pc, pm = random_codes(3, GEO, rng), random_masks(3, GEO, rng)
        self.probes = [(pc[i], pm[i]) for i in range(3)]
        self.tie_rows = [10, 40, 70]
        self.ids[self.tie_rows] = [5000, 3000, 4000]  # enrolment order is not id order
        for row in self.tie_rows:
            self.codes[row], self.masks[row] = self.probes[0]
        for row, s in ((90, MAX_SHIFT), (100, -MAX_SHIFT)):
            self.codes[row] = np.roll(self.probes[0][0], s, axis=1)
            self.masks[row] = np.roll(self.probes[0][1], s, axis=1)
        gp = genuine_probes(pc[1:2], rng, max_shift=MAX_SHIFT)
        self.codes[120], self.masks[120] = gp.codes[0], gp.masks[0]
        self._refs: dict[tuple[int, int], tuple] = {}

    def gallery(self, **kwargs: object) -> IrisGallery:
        g = IrisGallery(GEO, MAX_SHIFT, min_valid_bits=MIN_BITS, **kwargs)  # type: ignore[arg-type]
        g.add(self.ids, self.codes, self.masks)
        return g

    def reference(self, probe: int, max_shift: int = MAX_SHIFT) -> tuple:
        """Per-row (hd with inf, shift, bits) of probe against every row."""
        if (probe, max_shift) not in self._refs:
            code, mask = self.probes[probe]
            self._refs[probe, max_shift] = gallery_reference(
                code, mask, self.codes, self.masks, max_shift, MIN_BITS
            )
        return self._refs[probe, max_shift]


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def _state(g: IrisGallery, data: Data) -> tuple:
    """Everything a refused call must leave as it was."""
    code, mask = data.probes[0]
    exact = g.search(code, mask, k=8, with_bits=True)
    fast = g.search(code, mask, k=8, exact=False)
    return len(g), g.ids().tolist(), g.n_deleted, [a.tolist() for a in (*exact, *fast)]


def _expect_exact(data: Data, probe: int, k: int, alive: np.ndarray | None = None) -> tuple:
    hd, shift, bits = data.reference(probe)
    if alive is not None:
        hd = np.where(alive, hd, np.inf)
    want_hd, rows, want_shift, want_bits = reference_topk(hd, shift, bits, N, k)
    ids = np.where(rows >= 0, data.ids[np.maximum(rows, 0)], -1)
    return want_hd, ids, want_shift, want_bits


# ------------------------------------------------------------------------------------------
# Exact search
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 10, N + 20])
def test_exact_search_equals_reference_top_k(data: Data, probe: int, k: int) -> None:
    g = data.gallery()
    code, mask = data.probes[probe]
    hd, ids, shifts, bits = g.search(code, mask, k=k, with_bits=True)
    assert hd.shape == ids.shape == shifts.shape == bits.shape == (k,)
    assert hd.dtype == np.float64 and ids.dtype == np.int64 and shifts.dtype == np.int32
    want_hd, want_ids, want_shift, want_bits = _expect_exact(data, probe, k)
    np.testing.assert_array_equal(hd, want_hd)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(shifts, want_shift)
    np.testing.assert_array_equal(bits, want_bits)
    three = g.search(code, mask, k=k)
    assert len(three) == 3
    for a, b in zip(three, (hd, ids, shifts), strict=True):
        np.testing.assert_array_equal(a, b)


def test_exact_search_planted_rows_and_ties_by_enrolment_order(data: Data) -> None:
    g = data.gallery()
    hd, ids, shifts = g.search(*data.probes[0], k=6)
    # The three copies tie at 0 and come back in enrolment order (5000, 3000, 4000), not by id.
    assert list(ids[:3]) == [5000, 3000, 4000] and not hd[:3].any() and not shifts[:3].any()
    # The rotated copies: distance 0 at the boundary rotations, reported as np.roll's shift.
    # Row 90 holds np.roll(probe, +MAX_SHIFT): found at s = +MAX_SHIFT, row 100 at -MAX_SHIFT.
    assert list(ids[3:5]) == [data.ids[90], data.ids[100]]
    assert list(shifts[3:5]) == [MAX_SHIFT, -MAX_SHIFT]
    assert not hd[3:5].any() and hd[5] > 0.2
    # A narrower rotation search per call no longer reaches them.
    hd, ids, _ = g.search(*data.probes[0], k=4, max_shift=MAX_SHIFT - 1)
    assert list(ids[:3]) == [5000, 3000, 4000] and hd[3] > 0
    # The genuine capture of probe 1 is its top match.
    hd, ids, shifts = g.search(*data.probes[1], k=2)
    assert ids[0] == data.ids[120] and hd[0] < hd[1]


def test_search_with_a_per_call_max_shift_equals_reference(data: Data) -> None:
    g = data.gallery()
    for max_shift in (0, 3):
        hd, shift, bits = data.reference(2, max_shift)
        want = reference_topk(hd, shift, bits, N, 7)
        got = g.search(*data.probes[2], k=7, max_shift=max_shift, with_bits=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], data.ids[want[1]])
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(got[3], want[3])


def test_search_batch_equals_single_searches(data: Data) -> None:
    g = data.gallery()
    codes = np.stack([p[0] for p in data.probes])
    masks = np.stack([p[1] for p in data.probes])
    for exact in (True, False):
        hd, ids, shifts = g.search_batch(codes, masks, k=6, exact=exact)
        assert hd.shape == ids.shape == shifts.shape == (3, 6)
        for p in range(3):
            one = g.search(codes[p], masks[p], k=6, exact=exact)
            for a, b in zip((hd[p], ids[p], shifts[p]), one, strict=True):
                np.testing.assert_array_equal(a, b)


def test_search_batch_of_no_probes(data: Data) -> None:
    # search_batch has a branch for an empty batch; validation must let one reach it.
    g = data.gallery()
    hd, ids, shifts = g.search_batch(
        np.zeros((0, *GEO.shape), bool), np.zeros((0, *GEO.shape), bool), k=4
    )
    assert hd.shape == ids.shape == shifts.shape == (0, 4)


# ------------------------------------------------------------------------------------------
# Fast search
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", [0, 1, 2])
def test_fast_search_returns_only_exact_distances(data: Data, probe: int) -> None:
    g = data.gallery()
    code, mask = data.probes[probe]
    hd, ids, shifts, bits = g.search(code, mask, k=10, exact=False, with_bits=True)
    ref_hd, ref_shift, ref_bits = data.reference(probe)
    row_of = {int(i): r for r, i in enumerate(data.ids)}
    found = ids >= 0
    assert (np.diff(hd[found]) >= 0).all() and np.isinf(hd[~found]).all()
    assert (found[:-1] >= found[1:]).all()  # padding only at the end
    for h, i, s, b in zip(hd[found], ids[found], shifts[found], bits[found], strict=True):
        r = row_of[int(i)]
        assert (h, s, b) == (ref_hd[r], ref_shift[r], ref_bits[r])
    # What it finds is the exact top-k of the rows it found.
    exact = g.search(code, mask, k=N)
    keep = np.isin(exact[1], ids[found])
    np.testing.assert_array_equal(exact[1][keep][: found.sum()], ids[found])
    assert not (shifts[~found].any() or bits[~found].any()) and (ids[~found] == -1).all()


def test_fast_search_finds_exact_copies_with_a_tiny_threshold(data: Data) -> None:
    g = data.gallery()
    hd, ids, _ = g.search(*data.probes[0], k=8, exact=False, coarse_threshold=0.01)
    assert set(ids[:5]) == {5000, 3000, 4000, data.ids[90], data.ids[100]}
    assert list(ids[:3]) == [5000, 3000, 4000] and not hd[:5].any()
    assert (ids[5:] == -1).all() and np.isinf(hd[5:]).all()
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(InvalidTemplate, match="coarse_threshold must be in"):
            g.search(*data.probes[0], exact=False, coarse_threshold=bad)


def test_fast_top1_equals_exact_top1_for_genuine_probes() -> None:
    rng = np.random.default_rng(31)
    n = 2000
    codes, masks = random_codes(n, GEO, rng), random_masks(n, GEO, rng)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    g = IrisGallery(GEO, MAX_SHIFT)
    g.add(ids, codes, masks)
    pick = rng.choice(n, 80, replace=False)
    gp = genuine_probes(codes[pick], rng, max_shift=MAX_SHIFT)
    hd_e, ids_e, sh_e = g.search_batch(gp.codes, gp.masks, k=3)
    hd_f, ids_f, sh_f = g.search_batch(gp.codes, gp.masks, k=3, exact=False)
    np.testing.assert_array_equal(ids_e[:, 0], ids[pick])  # every mate is the exact top-1
    np.testing.assert_array_equal(ids_f[:, 0], ids_e[:, 0])
    np.testing.assert_array_equal(hd_f[:, 0], hd_e[:, 0])
    np.testing.assert_array_equal(sh_f[:, 0], sh_e[:, 0])


# ------------------------------------------------------------------------------------------
# search_range
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.35, 0.45, 1.0])
def test_search_range_returns_exactly_the_rows_within_threshold(
    data: Data, threshold: float
) -> None:
    g = data.gallery()
    for probe in range(3):
        hd, ids, shifts = g.search_range(*data.probes[probe], threshold)
        ref_hd, ref_shift, _ = data.reference(probe)
        rows = np.flatnonzero(ref_hd <= threshold)
        rows = rows[np.lexsort((rows, ref_hd[rows]))]
        np.testing.assert_array_equal(hd, ref_hd[rows])
        np.testing.assert_array_equal(ids, data.ids[rows])
        np.testing.assert_array_equal(shifts, ref_shift[rows])
    hd, ids, shifts = g.search_range(*data.probes[0], 0)
    assert list(ids) == [5000, 3000, 4000, data.ids[90], data.ids[100]] and not hd.any()
    assert list(shifts) == [0, 0, 0, MAX_SHIFT, -MAX_SHIFT]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.3", None])
def test_search_range_rejects_bad_thresholds(data: Data, threshold: object) -> None:
    g = data.gallery()
    with pytest.raises(InvalidTemplate, match="threshold must be a number in"):
        g.search_range(*data.probes[0], threshold)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# remove, compact, save/load
# ------------------------------------------------------------------------------------------


def _all_results(g: IrisGallery, data: Data) -> list:
    out = []
    for code, mask in data.probes:
        out.append(g.search(code, mask, k=N + 5, with_bits=True))
        out.append(g.search(code, mask, k=20, exact=False, with_bits=True))
        out.append(g.search_range(code, mask, 0.47))
    codes = np.stack([p[0] for p in data.probes])
    masks = np.stack([p[1] for p in data.probes])
    out.append(g.search_batch(codes, masks, k=12))
    out.append(g.search_batch(codes, masks, k=12, exact=False))
    return [np.asarray(a).tolist() for r in out for a in r]


def _returned_ids(g: IrisGallery, data: Data) -> set[int]:
    seen: set[int] = set()
    for code, mask in data.probes:
        seen |= set(g.search(code, mask, k=N + 5)[1].tolist())
        seen |= set(g.search(code, mask, k=N + 5, exact=False, coarse_threshold=0.99)[1].tolist())
        seen |= set(g.search_range(code, mask, 1.0)[1].tolist())
    codes = np.stack([p[0] for p in data.probes])
    masks = np.stack([p[1] for p in data.probes])
    seen |= set(g.search_batch(codes, masks, k=N + 5)[1].ravel().tolist())
    return seen - {-1}


def test_remove(data: Data, tmp_path: Path) -> None:
    g = data.gallery()
    gone = np.array([3000, data.ids[90], data.ids[0], data.ids[N - 1]])
    g.remove(gone)
    assert len(g) == N - 4 and g.n_deleted == 4
    assert not set(g.ids().tolist()) & set(gone.tolist())
    assert all(int(i) not in g for i in gone)
    alive = ~np.isin(data.ids, gone)
    assert _returned_ids(g, data) == set(data.ids[alive].tolist())
    # Exact search over the rest equals the reference with the removed rows taken out.
    for probe in range(3):
        got = g.search(*data.probes[probe], k=12, with_bits=True)
        want = _expect_exact(data, probe, 12, alive)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    assert list(g.search(*data.probes[0], k=2)[1]) == [5000, 4000]
    # Still gone after save/load and after compact.
    g.save(tmp_path / "g.iris")
    loaded = IrisGallery.load(tmp_path / "g.iris")
    assert _all_results(loaded, data) == _all_results(g, data)
    assert loaded.ids().tolist() == g.ids().tolist() and loaded.n_deleted == 4
    assert g.compact() == 4 and g.n_deleted == 0 and len(g) == N - 4
    assert _returned_ids(g, data) == set(data.ids[alive].tolist())
    assert _all_results(loaded, data) == _all_results(g, data)
    assert loaded.compact() == 4 and _all_results(loaded, data) == _all_results(g, data)


def test_remove_then_add_the_same_id_again(data: Data) -> None:
    g = data.gallery()
    g.remove([5000])
    rng = np.random.default_rng(41)
    code, mask = random_codes(1, GEO, rng), random_masks(1, GEO, rng)
    g.add([5000], code, mask)
    assert 5000 in g and len(g) == N
    hd, ids, _ = g.search(code[0], mask[0], k=1)
    assert (hd[0], ids[0]) == (0.0, 5000)
    # The old code under that id is gone: probe 0 finds only the two other copies at 0.
    hd, ids, _ = g.search(*data.probes[0], k=3)
    assert list(ids[:2]) == [3000, 4000] and ids[2] != 5000


def test_compact_keeps_results_and_order(data: Data) -> None:
    g = data.gallery()
    assert g.compact() == 0
    g.remove(data.ids[[0, 1, 2, 11, 64, 65, 149]])
    before = _all_results(g, data)
    nbytes = g.nbytes
    assert g.compact() == 7
    assert _all_results(g, data) == before
    assert g.compact() == 0 and g.nbytes <= nbytes
    g.remove(g.ids())
    assert len(g) == 0 and g.compact() == N - 7 and g.n_deleted == 0


def test_save_load_round_trip(data: Data, tmp_path: Path) -> None:
    g = data.gallery(eye="R", coarse_threshold=0.42, coarse_shift_step=1)
    path = tmp_path / "gallery.iris"
    g.save(path)
    loaded = IrisGallery.load(str(path))
    assert len(loaded) == N and loaded.ids().tolist() == g.ids().tolist()
    assert (loaded.max_shift, loaded.min_valid_bits, loaded.eye) == (MAX_SHIFT, MIN_BITS, "R")
    assert (loaded.coarse_threshold, loaded.coarse_shift_step) == (0.42, 1)
    assert loaded.geometry == GEO and loaded.groups == g.groups
    assert _all_results(loaded, data) == _all_results(g, data)
    # A loaded gallery takes more codes like any other.
    rng = np.random.default_rng(42)
    loaded.add([1], random_codes(1, GEO, rng), random_masks(1, GEO, rng))
    assert len(loaded) == N + 1
    # An empty gallery round-trips too.
    IrisGallery(GEO, eye="L").save(tmp_path / "empty.iris")
    again = IrisGallery.load(tmp_path / "empty.iris")
    assert len(again) == 0 and again.eye == "L" and again.n_deleted == 0


def _damaged(raw: bytes) -> dict[str, bytes]:
    head_len = int.from_bytes(raw[24:32], "little")
    return {
        "empty file": b"",
        "bad magic": b"X" + raw[1:],
        "other magic": b"AMAYESH-FINGER-GALLERY\x00\x00" + raw[24:],
        "cut in the magic": raw[:10],
        "cut in the header length": raw[:28],
        "cut in the header": raw[: 32 + head_len // 2],
        "cut after the header": raw[: 32 + head_len],
        "cut in the codes": raw[: len(raw) // 2],
        "cut in the last array": raw[:-64],
        "header not JSON": raw[:32] + b"\xff" * head_len + raw[32 + head_len :],
        "implausible header length": raw[:24] + (1 << 40).to_bytes(8, "little") + raw[32:],
        "short header length": raw[:24] + (5).to_bytes(8, "little") + raw[32:],
        "version 2": raw.replace(b'"version": 1', b'"version": 2', 1),
        "more rows than stored": raw.replace(b'"n_rows": 150', b'"n_rows": 950', 1),
        "other geometry": raw.replace(b'"geometry": [8, 128, 2]', b'"geometry": [8, 128, 1]', 1),
        "lanes": raw.replace(b'"lanes": ', b'"lanes":1', 1),
    }


def _damaged_header(raw: bytes) -> dict[str, bytes]:
    """Same-length edits of the JSON header: the file still parses, its content is wrong."""
    head_len = int.from_bytes(raw[24:32], "little")
    return {
        "key renamed": raw.replace(b'"geometry"', b'"geometrx"', 1),
        "array missing": raw.replace(b'"alive"', b'"alivf"', 1),
        "unknown dtype": raw.replace(b'"<u8"', b'"<u9"', 1),
        "codes stored as float": raw.replace(b'"<u8"', b'"<f8"', 1),
        "header is a list": raw[:32] + b"[" + b" " * (head_len - 2) + b"]" + raw[32 + head_len :],
    }


DAMAGES = [
    "empty file",
    "bad magic",
    "other magic",
    "cut in the magic",
    "cut in the header length",
    "cut in the header",
    "cut after the header",
    "cut in the codes",
    "cut in the last array",
    "header not JSON",
    "implausible header length",
    "short header length",
    "version 2",
    "more rows than stored",
    "other geometry",
    "lanes",
]
HEADER_DAMAGES = [
    "key renamed",
    "array missing",
    "unknown dtype",
    "codes stored as float",
    "header is a list",
]


@pytest.mark.parametrize("damage", DAMAGES)
def test_load_rejects_damaged_files(data: Data, tmp_path: Path, damage: str) -> None:
    path = tmp_path / "g.iris"
    data.gallery().save(path)
    damaged = _damaged(path.read_bytes())
    assert set(damaged) == set(DAMAGES)
    bad = damaged[damage]
    assert bad != path.read_bytes()
    path.write_bytes(bad)
    with pytest.raises(ValueError):
        IrisGallery.load(path)


@pytest.mark.parametrize("damage", HEADER_DAMAGES)
def test_load_rejects_parsable_but_wrong_headers(data: Data, tmp_path: Path, damage: str) -> None:
    # load() promises ValueError for a damaged file; these reach KeyError, TypeError,
    # AttributeError, or load float codes that only fail at the first search.
    path = tmp_path / "g.iris"
    data.gallery().save(path)
    damaged = _damaged_header(path.read_bytes())
    assert set(damaged) == set(HEADER_DAMAGES)
    bad = damaged[damage]
    assert bad != path.read_bytes() and len(bad) == path.stat().st_size
    path.write_bytes(bad)
    with pytest.raises(ValueError):
        IrisGallery.load(path)


def test_load_of_a_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        IrisGallery.load("/nonexistent/gallery.iris")


# ------------------------------------------------------------------------------------------
# packed, len, contains, ids
# ------------------------------------------------------------------------------------------


def test_packed_len_contains_ids(data: Data) -> None:
    g = IrisGallery(GEO, MAX_SHIFT)
    assert len(g) == 0 and g.ids().tolist() == [] and 1000 not in g
    g.add(data.ids, data.codes, data.masks)
    assert len(g) == N
    assert g.ids().tolist() == sorted(data.ids.tolist())
    g.ids()[0] = -5  # a copy
    assert -5 not in g
    assert int(data.ids[7]) in g and data.ids[7] in g and np.int32(data.ids[7]) in g
    assert 1 not in g and "x" not in g and None not in g
    want = [17, 3, 120]
    codes, masks = g.packed(data.ids[want])
    np.testing.assert_array_equal(codes, pack_codes(data.codes[want], GEO, g.groups))
    np.testing.assert_array_equal(masks, pack_codes(data.masks[want], GEO, g.groups))
    assert codes.shape == (3, g.words) and codes.dtype == np.uint64
    single, _ = g.packed(data.ids[5])
    assert single.shape == (1, g.words)
    with pytest.raises(UnknownId, match="ids not in the gallery: 7"):
        g.packed([data.ids[0], 7])
    with pytest.raises(KeyError):
        g.packed([7])


def test_contains_is_false_for_non_integers(data: Data) -> None:
    # int(1000.5) == 1000, but 1000.5 is not an id; nor is "1000".
    g = data.gallery()
    some = int(data.ids[0])
    assert some in g
    assert float(some) + 0.5 not in g
    assert str(some) not in g


def test_reserve_then_add(data: Data) -> None:
    g = IrisGallery(GEO, MAX_SHIFT)
    g.reserve(500)
    for start in range(0, N, 37):  # odd-sized adds across block boundaries
        stop = min(start + 37, N)
        g.add(data.ids[start:stop], data.codes[start:stop], data.masks[start:stop])
    assert _all_results(g, data) == _all_results(data.gallery(), data)


def test_add_of_nothing_is_a_no_op(data: Data) -> None:
    g = data.gallery()
    before = _state(g, data)
    g.add(np.zeros(0, np.int64), data.codes[:0], data.masks[:0])
    assert _state(g, data) == before


def test_ids_outside_int64_are_refused(data: Data) -> None:
    # uint64 ids above 2**63 - 1 would wrap to negative ids silently.
    g = IrisGallery(GEO, MAX_SHIFT)
    with pytest.raises(InvalidTemplate):
        g.add(np.array([2**63], np.uint64), data.codes[:1], data.masks[:1])
    assert len(g) == 0


# ------------------------------------------------------------------------------------------
# Refused calls leave the gallery unchanged
# ------------------------------------------------------------------------------------------


def _refused_adds(data: Data) -> dict[str, tuple[Callable, type, str]]:
    rng = np.random.default_rng(51)
    n = 4
    codes, masks = random_codes(n, GEO, rng), random_masks(n, GEO, rng)
    fresh = np.arange(90_000, 90_000 + n)
    sparse = masks.copy()
    sparse[2] = False
    sparse[2, 0, :100, 0] = True  # 100 valid bits in the third of four masks
    return {
        "duplicate id in the call": (
            lambda g: g.add([90_000, 90_001, 90_000, 90_003], codes, masks),
            DuplicateId,
            "repeated within the call: 90000",
        ),
        "id already present": (
            lambda g: g.add([90_000, int(data.ids[3]), 90_002, 90_003], codes, masks),
            DuplicateId,
            f"already in the gallery: {data.ids[3]}",
        ),
        "wrong shape": (
            lambda g: g.add(fresh, codes[:, :, :64], masks[:, :, :64]),
            InvalidTemplate,
            r"shape \(4, 8, 64, 2\)",
        ),
        "other geometry": (
            lambda g: g.add(fresh, codes[..., :1], masks[..., :1]),
            InvalidTemplate,
            "expected",
        ),
        "single code, not a batch": (
            lambda g: g.add(fresh[:1], codes[0], masks[0]),
            InvalidTemplate,
            r"expected \(n, 8, 128, 2\)",
        ),
        "float codes": (
            lambda g: g.add(fresh, codes.astype(np.float32), masks),
            InvalidTemplate,
            "dtype bool, got float32",
        ),
        "int masks": (
            lambda g: g.add(fresh, codes, masks.astype(np.uint8)),
            InvalidTemplate,
            "dtype bool, got uint8",
        ),
        "mask shape differs": (
            lambda g: g.add(fresh, codes, masks[:3]),
            InvalidTemplate,
            "differs from mask shape",
        ),
        "too few valid bits in one mask": (
            lambda g: g.add(fresh, codes, sparse),
            InvalidTemplate,
            r"only 100 valid bits \(item 2\)",
        ),
        "fewer ids than codes": (
            lambda g: g.add(fresh[:3], codes, masks),
            InvalidTemplate,
            "3 ids for 4 codes",
        ),
        "float ids": (
            lambda g: g.add(fresh + 0.5, codes, masks),
            InvalidTemplate,
            "ids must be a 1-D array of integers",
        ),
        "2-D ids": (
            lambda g: g.add(fresh.reshape(2, 2), codes, masks),
            InvalidTemplate,
            "1-D array of integers",
        ),
        "unknown id on remove": (
            lambda g: g.remove([int(data.ids[0]), 77]),
            UnknownId,
            "ids not in the gallery: 77",
        ),
        "float ids on remove": (
            lambda g: g.remove([1000.0]),
            InvalidTemplate,
            "1-D array of integers",
        ),
    }


REFUSED_MUTATIONS = [
    "duplicate id in the call",
    "id already present",
    "wrong shape",
    "other geometry",
    "single code, not a batch",
    "float codes",
    "int masks",
    "mask shape differs",
    "too few valid bits in one mask",
    "fewer ids than codes",
    "float ids",
    "2-D ids",
    "unknown id on remove",
    "float ids on remove",
]


@pytest.mark.parametrize("case", REFUSED_MUTATIONS)
def test_refused_mutations_leave_the_gallery_unchanged(data: Data, case: str) -> None:
    g = data.gallery()
    g.remove([data.ids[1]])  # a tombstone too, so n_deleted is part of the state
    before = _state(g, data)
    cases = _refused_adds(data)
    assert set(cases) == set(REFUSED_MUTATIONS)
    call, error, message = cases[case]
    with pytest.raises(error, match=message) as info:
        call(g)
    assert isinstance(info.value, KeyError if error is UnknownId else ValueError)
    assert _state(g, data) == before
    assert int(data.ids[0]) in g and 90_000 not in g


def _refused_searches(data: Data) -> dict[str, tuple[Callable, str]]:
    code, mask = data.probes[0]
    sparse = np.zeros(GEO.shape, bool)
    sparse[:, :10, :] = True  # 160 bits
    return {
        "probe shape": (lambda g: g.search(code[:, :64], mask[:, :64]), "shape"),
        "probe dtype": (lambda g: g.search(code.astype(np.int8), mask), "dtype bool"),
        "probe mask too sparse": (lambda g: g.search(code, sparse), "only 160 valid bits"),
        "k zero": (lambda g: g.search(code, mask, k=0), "k must be a positive integer"),
        "k negative": (lambda g: g.search(code, mask, k=-3), "k must be a positive integer"),
        "k float": (lambda g: g.search(code, mask, k=2.0), "k must be a positive integer"),
        "k bool": (lambda g: g.search(code, mask, k=True), "k must be a positive integer"),
        "max_shift negative": (lambda g: g.search(code, mask, max_shift=-1), "non-negative"),
        "max_shift too big": (lambda g: g.search(code, mask, max_shift=128), "below the 128"),
        "batch probe shape": (
            lambda g: g.search_batch(code[None, :, :64], mask[None, :, :64]),
            "shape",
        ),
        "batch one sparse": (
            lambda g: g.search_batch(np.stack([code, code]), np.stack([mask, sparse])),
            r"\(item 1\)",
        ),
        "range probe dtype": (
            lambda g: g.search_range(code.astype(float), mask, 0.3),
            "dtype bool",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "probe shape",
        "probe dtype",
        "probe mask too sparse",
        "k zero",
        "k negative",
        "k float",
        "k bool",
        "max_shift negative",
        "max_shift too big",
        "batch probe shape",
        "batch one sparse",
        "range probe dtype",
    ],
)
def test_refused_searches(data: Data, case: str) -> None:
    g = data.gallery()
    before = _state(g, data)
    call, message = _refused_searches(data)[case]
    with pytest.raises(InvalidTemplate, match=message):
        call(g)
    assert _state(g, data) == before


def test_min_valid_bits_is_configurable(data: Data) -> None:
    sparse = np.zeros(GEO.shape, bool)
    sparse[:, :10, :] = True  # 160 bits
    strict = IrisGallery(GEO, MAX_SHIFT, min_valid_bits=200)
    with pytest.raises(InvalidTemplate, match="at least 200"):
        strict.add([1], data.codes[:1], sparse[None])
    lenient = IrisGallery(GEO, MAX_SHIFT, min_valid_bits=100)
    lenient.add([1], data.codes[:1], sparse[None])
    hd, ids, _ = lenient.search(data.codes[0], sparse, k=1)
    assert (hd[0], ids[0]) == (0.0, 1)


# ------------------------------------------------------------------------------------------
# Eyes, construction, other geometries
# ------------------------------------------------------------------------------------------


def test_search_template_refuses_the_other_eye(data: Data) -> None:
    left = data.gallery(eye="L")
    code, mask = data.probes[0]
    with pytest.raises(InvalidTemplate, match="probe is a R eye; this gallery holds L eyes"):
        left.search_template(IrisTemplate(code, mask, "R"))
    got = left.search_template(IrisTemplate(code, mask, "L"), k=4)
    want = left.search(code, mask, k=4)
    assert len(got) == 3
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    fast = left.search_template(IrisTemplate(code, mask, "L"), k=4, exact=False)
    assert list(fast[1][:3]) == [5000, 3000, 4000]
    either = data.gallery()
    for eye in ("L", "R"):
        assert list(either.search_template(IrisTemplate(code, mask, eye), k=1)[1]) == [5000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"geometry": (8, 128, 2)}, "geometry must be an IrisGeometry"),
        ({"max_shift": -1}, "max_shift must be a non-negative integer"),
        ({"max_shift": 128}, "below the 128 columns"),
        ({"max_shift": 2.5}, "max_shift must be a non-negative integer"),
        ({"eye": "left"}, "eye must be 'L', 'R' or None"),
        ({"coarse_threshold": 0.0}, "coarse_threshold must be in"),
        ({"coarse_threshold": 1.0}, "coarse_threshold must be in"),
        ({"coarse_shift_step": 0}, "coarse_shift_step must be a positive integer"),
        ({"coarse_shift_step": True}, "coarse_shift_step must be a positive integer"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidTemplate, match=message):
        IrisGallery(**kwargs)


@pytest.mark.parametrize(
    ("geometry", "min_bits"),
    [(IrisGeometry(16, 256, 4), 1024), (IrisGeometry(1, 64, 1), 16), (IrisGeometry(3, 64, 2), 64)],
    ids=str,
)
def test_other_geometries_end_to_end(geometry: IrisGeometry, min_bits: int) -> None:
    rng = np.random.default_rng(geometry.n_bits)
    n = 70
    codes, masks = random_codes(n, geometry, rng), random_masks(n, geometry, rng)
    max_shift = min(8, geometry.columns // 4)
    codes[33] = np.roll(codes[5], -max_shift, axis=1)
    masks[33] = np.roll(masks[5], -max_shift, axis=1)
    ids = np.arange(n, dtype=np.int64) * 3
    g = IrisGallery(geometry, max_shift, min_valid_bits=min_bits)
    g.add(ids, codes, masks)
    g.remove([ids[40]])
    alive = np.ones(n, bool)
    alive[40] = False
    for probe in (5, 12):
        ref_hd, ref_shift, ref_bits = gallery_reference(
            codes[probe], masks[probe], codes, masks, max_shift, min_bits
        )
        ref_hd = np.where(alive, ref_hd, np.inf)
        want = reference_topk(ref_hd, ref_shift, ref_bits, n, 6)
        got = g.search(codes[probe], masks[probe], k=6, with_bits=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], np.where(want[1] >= 0, ids[want[1]], -1))
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(got[3], want[3])
        # Fast mode: the code itself is screened in (distance 0), so its top-1 is the exact one.
        fast = g.search(codes[probe], masks[probe], k=1, exact=False, with_bits=True)
        assert fast[0][0] == 0.0
        for a, b in zip(fast, got, strict=True):
            assert a[0] == b[0]
    # Row 33 holds np.roll(row 5, -max_shift): found there at distance 0.
    hd, found, shifts = g.search_range(codes[5], masks[5], 0.0)
    where = {int(i): int(s) for i, s in zip(found, shifts, strict=True)}
    assert where[int(ids[5])] == 0 and where[int(ids[33])] == -max_shift


def _empty_galleries(data: Data, tmp_path: Path) -> dict[str, IrisGallery]:
    new = IrisGallery(GEO, MAX_SHIFT)
    emptied = data.gallery()
    emptied.remove(data.ids)
    compacted = data.gallery()
    compacted.remove(data.ids)
    compacted.compact()
    IrisGallery(GEO, MAX_SHIFT).save(tmp_path / "empty.iris")
    loaded = IrisGallery.load(tmp_path / "empty.iris")
    return {"new": new, "emptied": emptied, "compacted": compacted, "loaded": loaded}


@pytest.mark.parametrize("which", ["new", "emptied", "compacted", "loaded"])
def test_empty_gallery_answers_with_padding(data: Data, tmp_path: Path, which: str) -> None:
    g = _empty_galleries(data, tmp_path)[which]
    assert len(g) == 0
    code, mask = data.probes[0]
    for exact in (True, False):
        hd, ids, shifts = g.search(code, mask, k=3, exact=exact)
        assert (ids == -1).all() and np.isinf(hd).all() and not shifts.any()
    hd, ids, shifts = g.search_batch(code[None], mask[None], k=2)
    assert (ids == -1).all() and np.isinf(hd).all()
    hd, ids, shifts = g.search_range(code, mask, 1.0)
    assert hd.size == ids.size == shifts.size == 0
    with pytest.raises(UnknownId):
        g.remove([1])


@pytest.mark.parametrize("probe", [0, 2])
def test_score_by_id_equals_the_reference(data: Data, probe: int) -> None:
    g = data.gallery()
    code, mask = data.probes[probe]
    want_hd, want_shift, want_bits = data.reference(probe)
    rows = np.array([7, 0, N - 1, 7])
    hd, shifts, bits = g.score(code, mask, data.ids[rows])
    np.testing.assert_array_equal(hd, want_hd[rows])
    np.testing.assert_array_equal(bits, want_bits[rows])
    finite = np.isfinite(hd)
    np.testing.assert_array_equal(shifts[finite], want_shift[rows][finite])
    with pytest.raises(UnknownId):
        g.score(code, mask, [int(data.ids.max()) + 1])

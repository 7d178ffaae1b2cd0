"""The indexed 1:N finger search: candidate index votes, the matcher reranks.

Mates planted with the synthetic generator (``take=0`` enrolled, ``take=1`` probe, same finger);
the exhaustive search is the yardstick.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from matcher import finger_index
from matcher.errors import InvalidTemplate
from matcher.finger import FingerFeatures, features
from matcher.finger_index import FingerIndex, cylinder_codes
from matcher.gallery import FingerGallery
from matcher.synthetic.finger import finger_chunks

N_FINGERS = 300
N_PROBES = 40
CANDIDATES = 15  # 5 % of the gallery: the index has to choose


@pytest.fixture(scope="module")
def fingers() -> tuple[list[FingerFeatures], list[FingerFeatures]]:
    enrolled = [features(t) for c in finger_chunks(N_FINGERS, 11, take=0) for t in c]
    probes = [features(t) for c in finger_chunks(N_PROBES, 11, take=1) for t in c]
    return enrolled, probes


def _gallery(enrolled: list[FingerFeatures]) -> FingerGallery:
    g = FingerGallery()
    half = len(enrolled) // 2
    g.add(np.arange(half), enrolled[:half])  # two bulk adds
    g.add(np.arange(half, len(enrolled)), enrolled[half:])
    return g


@pytest.fixture(params=["flat", "ivf"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the exact index and, with its size limit lowered, with the IVF one."""
    if request.param == "ivf":
        monkeypatch.setattr(finger_index, "IVF_MIN_CYLINDERS", 4000)
    return str(request.param)


def _exhaustive_scores(g: FingerGallery, probe: FingerFeatures) -> dict[int, float]:
    scores, ids = g.search(probe, k=len(g), exhaustive=True)
    return dict(zip(ids.tolist(), scores.tolist(), strict=True))


def test_indexed_search_finds_planted_mates(fingers, kind) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled)
    assert g._index.kind == kind  # the second add crossed the lowered limit for "ivf"
    scores_i, ids_i = g.search_batch(probes, k=5, candidates=CANDIDATES)
    scores_e, ids_e = g.search_batch(probes, k=5, exhaustive=True)
    mates = np.arange(N_PROBES)
    assert np.mean(ids_e[:, 0] == mates) == 1.0
    # Measured: 40 of 40 (flat) and 39 of 40 (ivf) at 5 % penetration.
    assert np.sum(ids_i[:, 0] == mates) >= 38
    assert np.all(np.diff(scores_i, axis=1) <= 0)
    # One probe at a time gives what the batch gives.
    s1, i1 = g.search(probes[3], k=5, candidates=CANDIDATES)
    assert np.array_equal(i1, ids_i[3]) and np.array_equal(s1, scores_i[3])


def test_indexed_scores_are_the_matchers(fingers, kind) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled)
    for probe in probes[:5]:
        truth = _exhaustive_scores(g, probe)
        scores, ids = g.search(probe, k=CANDIDATES, candidates=CANDIDATES)
        assert np.all(ids >= 0)
        assert [truth[int(i)] for i in ids] == scores.tolist()  # bit for bit: the same matcher


def test_small_gallery_is_scanned_whole(fingers) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = FingerGallery()
    g.add(np.arange(200), enrolled[:200])
    # Default candidates (at least 256) or any number >= the live gallery: exact.
    for kwargs in ({}, {"candidates": 200}):
        got = g.search_batch(probes[:4], k=8, **kwargs)
        want = g.search_batch(probes[:4], k=8, exhaustive=True)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    g.remove(np.arange(150, 200))
    got = g.search_batch(probes[:4], k=8, candidates=150)
    want = g.search_batch(probes[:4], k=8, exhaustive=True)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_removed_ids_are_never_returned(fingers, kind, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled)
    # Remove every probe's mate and its best impostors: exactly what the index votes for most.
    top = g.search_batch(probes[:10], k=3, exhaustive=True)[1]
    gone = np.unique(np.concatenate([np.arange(10), top.ravel()]))
    g.remove(gone)
    k = CANDIDATES

    def check(gallery: FingerGallery) -> None:
        for probe in probes[:10]:
            for cands in (k, 2 * k, None):
                scores, ids = gallery.search(probe, k=k, candidates=cands)
                assert not np.isin(ids, gone).any()
                assert np.all(ids >= 0) and len(set(ids.tolist())) == k  # filled, distinct

    check(g)
    g.save(str(tmp_path / "tombstoned.npz"))
    loaded = FingerGallery.load(str(tmp_path / "tombstoned.npz"))
    assert loaded._index.kind == kind and loaded._index.ntotal == g._index.ntotal
    check(loaded)
    ntotal = g._index.ntotal
    assert g.compact() == gone.size
    assert g._index.ntotal < ntotal  # the index gave their cylinders back too
    check(g)
    g.save(str(tmp_path / "compacted.npz"))
    check(FingerGallery.load(str(tmp_path / "compacted.npz")))
    # Adding after compaction: new templates get new serials and are found.
    g.add([1000], [enrolled[0]])
    assert g.search(probes[0], k=1, candidates=k)[1][0] == 1000


def test_save_load_round_trips_results(fingers, kind, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled)
    g.save(str(tmp_path / "g.npz"))
    loaded = FingerGallery.load(str(tmp_path / "g.npz"))
    a = g.search_batch(probes[:8], k=5, candidates=CANDIDATES)
    b = loaded.search_batch(probes[:8], k=5, candidates=CANDIDATES)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_version_1_file_rebuilds_the_index(fingers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled[:50])

    def as_version_1(gallery: FingerGallery) -> FingerGallery:
        gallery.save(str(tmp_path / "v2.npz"))
        with np.load(str(tmp_path / "v2.npz")) as z:
            arrays = {k: z[k] for k in z.files if k not in ("serials", "next_serial", "index")}
        arrays["version"] = np.int64(1)
        np.savez(str(tmp_path / "v1.npz"), **arrays)
        return FingerGallery.load(str(tmp_path / "v1.npz"))

    a = g.search_batch(probes[:5], k=5, candidates=10)
    b = as_version_1(g).search_batch(probes[:5], k=5, candidates=10)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # Tombstones: indexed until compact(), as in the live gallery, and never returned.
    g.remove([3])
    loaded = as_version_1(g)
    assert loaded._index.ntotal == g._index.ntotal
    assert 3 not in loaded.search(probes[3], k=5, candidates=10)[1]
    loaded.save(str(tmp_path / "again.npz"))
    again = FingerGallery.load(str(tmp_path / "again.npz"))
    assert again._index.serialize().tobytes() == loaded._index.serialize().tobytes()


def test_damaged_index_in_file_is_refused(fingers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    enrolled, _ = fingers
    g = _gallery(enrolled[:20])
    g.save(str(tmp_path / "g.npz"))
    with np.load(str(tmp_path / "g.npz")) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["index"] = np.frombuffer(b"definitely not faiss", np.uint8)
    np.savez(str(tmp_path / "bad.npz"), **arrays)
    with pytest.raises(InvalidTemplate):
        FingerGallery.load(str(tmp_path / "bad.npz"))
    with zipfile.ZipFile(tmp_path / "g.npz") as z:
        assert "index.npy" in z.namelist()


def test_candidates_knob_is_validated(fingers) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled[:30])
    for bad in (0, -1, 4, True, 2.5, "10"):
        with pytest.raises(InvalidTemplate):
            g.search(probes[0], k=5, candidates=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidTemplate):
            g.search_batch(probes[:2], k=5, candidates=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate):
        g.search(probes[0], k=5, exhaustive=True, candidates=10)
    with pytest.raises(InvalidTemplate):
        g.search_batch(probes[:2], k=5, exhaustive=True, candidates=10)
    with pytest.raises(InvalidTemplate):
        g.search_batch(probes[:2], k=0)
    with pytest.raises(InvalidTemplate):
        g.search_batch([probes[0], "not a template"], k=3)  # type: ignore[list-item]
    assert g.search(probes[0], k=5, candidates=np.int64(5))[1].shape == (5,)


def test_empty_gallery_and_empty_probe(fingers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = FingerGallery()
    for kwargs in ({}, {"candidates": 3}, {"exhaustive": True}):
        scores, ids = g.search(probes[0], k=3, **kwargs)
        assert np.all(ids == -1) and np.all(scores == -np.inf)
    assert g.search_batch([], k=4)[0].shape == (0, 4)
    g.save(str(tmp_path / "empty.npz"))
    assert len(FingerGallery.load(str(tmp_path / "empty.npz"))) == 0
    # A probe with no usable cylinder still gets k answers (score 0), as exhaustively.
    g = _gallery(enrolled)
    blank = FingerFeatures(
        x=np.zeros(0),
        y=np.zeros(0),
        theta=np.zeros(0),
        quality=np.zeros(0, np.uint8),
        bits=np.zeros((6, 0), np.uint64),
        mask=np.zeros(0, np.uint64),
    )
    got = g.search(blank, k=4, candidates=10)
    want = g.search(blank, k=4, exhaustive=True)
    assert np.array_equal(got[1], want[1]) and np.all(got[0] == 0.0)


def test_searches_run_while_templates_are_added(fingers) -> None:  # type: ignore[no-untyped-def]
    enrolled, probes = fingers
    g = _gallery(enrolled[:100])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for probe in probes[:10]:
                scores, ids = g.search(probe, k=3, candidates=5)
                assert ids[0] >= 0
        except BaseException as exc:  # noqa: BLE001  (reported to the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for lo in range(100, N_FINGERS, 50):
        g.add(np.arange(lo, lo + 50), enrolled[lo : lo + 50])
    for t in threads:
        t.join()
    assert not errors and len(g) == N_FINGERS


# ------------------------------------------------------------------------- FingerIndex alone
def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def test_flat_index_is_exact_and_names_templates_by_serial() -> None:
    rng = np.random.default_rng(5)
    counts = np.array([3, 0, 5, 4], np.int64)
    bits = rng.integers(0, 2**63, (6, int(counts.sum())), dtype=np.uint64)
    bits[:, 1] = 0  # too sparse to index
    index = FingerIndex()
    index.add(bits, counts, np.array([7, 8, 9, 12], np.int64))
    assert index.kind == "flat" and index.ntotal == counts.sum() - 1
    queries = rng.integers(0, 2**63, (6, 4), dtype=np.uint64)
    dist, ids = index.search(queries, neighbours=20)
    assert dist.shape == ids.shape == (4, 20)
    codes = cylinder_codes(bits)
    want = _hamming(cylinder_codes(queries), codes)
    serial_of = np.repeat([7, 8, 9, 12], counts)
    place = np.concatenate([np.arange(c) for c in counts])
    for q in range(4):
        got = ids[q][ids[q] >= 0]
        assert got.size == index.ntotal  # 20 asked, 11 indexed
        pos = [int(np.flatnonzero((serial_of == i >> 8) & (place == (i & 255)))[0]) for i in got]
        assert list(dist[q, : got.size]) == list(want[q, pos])
        assert list(dist[q, : got.size]) == sorted(want[q, np.arange(12) != 1])
    index.remove(np.array([9], np.int64), np.array([5], np.int64))
    assert index.ntotal == counts.sum() - 1 - 5
    again = FingerIndex.deserialize(index.serialize())
    assert np.array_equal(again.search(queries, 20)[1], index.search(queries, 20)[1])
    with pytest.raises(InvalidTemplate):
        FingerIndex.deserialize(np.zeros(10, np.uint8))
    with pytest.raises(InvalidTemplate):
        index.add(bits, counts[:2], np.array([1, 2], np.int64))


def test_ivf_index_keeps_ids_through_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finger_index, "IVF_MIN_CYLINDERS", 3000)
    rng = np.random.default_rng(6)
    index = FingerIndex()
    counts = np.full(100, 20, np.int64)
    for lo in range(0, 300, 100):
        bits = rng.integers(0, 2**63, (6, 2000), dtype=np.uint64)
        index.add(bits, counts, np.arange(lo, lo + 100, dtype=np.int64))
    # Built when the second add crossed the limit: one list per 128 cylinders it held then.
    assert index.kind == "ivf" and index.ntotal == 6000 and index.nlist == 4000 // 128
    # A query equal to an indexed cylinder finds it at distance 0 (its own list is probed).
    dist, ids = index.search(bits[:, 25:26], neighbours=1)
    assert dist[0, 0] == 0 and ids[0, 0] == (201 << 8) | 5


def test_votes_rank_by_geometric_support() -> None:
    # Template A (serial 10) gets three votes whose minutiae lie as in the probe, shifted;
    # template B (serial 20) four closer votes whose geometry disagrees; C (serial 30) is dead;
    # serial 99 is not in the gallery (added after the snapshot).
    ax, ay = [0.0, 50.0, 0.0, 300.0], [0.0, 0.0, 50.0, 300.0]
    bx, by = [0.0, 0.0, 90.0, 0.0], [0.0, 120.0, 0.0, -300.0]
    view = finger_index.GalleryView(
        serials=np.array([10, 20, 30], np.int64),
        offsets=np.array([0, 4, 8, 9], np.int64),
        x=np.array(ax + bx + [0.0]),
        y=np.array(ay + by + [0.0]),
        theta=np.array([0.0] * 8 + [0.0]),
        alive=np.array([True, True, False]),
    )
    probe = (
        np.array([10.0, 60.0, 10.0, 200.0, 5.0]),
        np.array([10.0, 10.0, 60.0, 30.0, 5.0]),
        np.array([0.0, 0.0, 0.0, 0.0, np.pi]),  # the last faces the other way: no votes
    )

    def vid(serial: int, j: int) -> int:
        return (serial << 8) | j

    ids = np.array(
        [
            [vid(20, 0), vid(10, 0), vid(30, 0), vid(99, 0)],
            [vid(20, 1), vid(10, 1), vid(10, 3), -1],  # two votes for A: one counts
            [vid(20, 2), vid(10, 2), -1, -1],
            [vid(20, 3), -1, -1, -1],
            [vid(10, 0), vid(20, 0), -1, -1],
        ],
        np.int64,
    )
    dist = np.where(ids >= 0, 30, 384).astype(np.int32)
    dist[:4, 0] = 10  # B's votes are the closest
    dist[1, 2] = 40  # A's second cylinder for probe minutia 1 is farther: the first one votes
    ranked = finger_index.rank_candidates(dist, ids, probe, view, candidates=3)
    assert ranked.tolist() == [0, 1]  # A before B; dead C never, even to fill
    alive_all = view._replace(alive=np.ones(3, bool))
    assert finger_index.rank_candidates(dist, ids, probe, alive_all, 3).tolist() == [0, 1, 2]
    # Without geometry B would win on votes (4 to 3): the support is what ranks A first.
    flat = view._replace(x=np.zeros(9), y=np.arange(9.0) * 1000.0)
    assert finger_index.rank_candidates(dist, ids, probe, flat, 1).tolist() == [1]

"""FingerGallery: exhaustive search equals the matcher pair by pair; the faiss-shaped contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.errors import DuplicateId, InvalidTemplate, UnknownId
from matcher.finger import match
from matcher.gallery import FingerGallery
from tests.test_finger import moved, random_template


@pytest.fixture(scope="module")
def enrolled():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(20)
    templates = [random_template(rng, int(rng.integers(25, 50))) for _ in range(30)]
    ids = np.arange(100, 130, dtype=np.int64)
    probes = [moved(templates[i], rng, 0.2, 10, -10) for i in (0, 7, 19)]
    return ids, templates, probes


def _gallery(ids, templates) -> FingerGallery:  # type: ignore[no-untyped-def]
    g = FingerGallery()
    g.add(ids[:10], templates[:10])
    g.add(ids[10:], templates[10:])
    return g


def test_exhaustive_search_equals_pairwise_match(enrolled) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    g = _gallery(ids, templates)
    assert len(g) == 30
    for p in probes:
        scores, got = g.search(p, k=5)
        want = np.array([match(p, t) for t in templates])
        order = np.lexsort((np.arange(30), -want))[:5]
        assert np.allclose(scores, want[order], atol=1e-12)
        assert np.array_equal(got, ids[order])


def test_mates_come_first(enrolled) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    g = _gallery(ids, templates)
    scores, got = g.search_batch(probes, k=3)
    assert list(got[:, 0]) == [100, 107, 119]
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_min_score_keeps_only_scores_at_least_it(enrolled) -> None:  # type: ignore[no-untyped-def]
    """Exhaustive and indexed, one probe and a batch: the same answer as dropping every
    score below the floor from the search without one, padded."""
    ids, templates, probes = enrolled
    g = _gallery(ids, templates)
    for exhaustive in (True, False):
        plain_s, plain_i = g.search_batch(probes, k=5, exhaustive=exhaustive)
        floor = float(np.median(plain_s[:, 1]))
        got_s, got_i = g.search_batch(probes, k=5, exhaustive=exhaustive, min_score=floor)
        want_s = np.where(plain_s >= floor, plain_s, -np.inf)
        want_i = np.where(plain_s >= floor, plain_i, -1)
        assert np.array_equal(got_s, want_s) and np.array_equal(got_i, want_i)
        one_s, one_i = g.search(probes[0], k=5, exhaustive=exhaustive, min_score=floor)
        assert np.array_equal(one_s, want_s[0]) and np.array_equal(one_i, want_i[0])
    with pytest.raises(InvalidTemplate):
        g.search(probes[0], k=5, exhaustive=True, min_score="high")  # type: ignore[arg-type]


def test_search_range_is_every_score_at_least_the_threshold(enrolled) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    g = _gallery(ids, templates)
    g.remove([107])
    for p in probes:
        want = np.array([match(p, t) for t in templates])
        want[7] = -np.inf  # removed
        for threshold in (0.0, float(np.sort(want)[-3]), 1.0):
            scores, got = g.search_range(p, threshold)
            keep = np.flatnonzero(want >= threshold)
            keep = keep[np.lexsort((keep, -want[keep]))]
            assert np.array_equal(got, ids[keep])
            assert np.allclose(scores, want[keep], atol=1e-12)
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(InvalidTemplate):
            g.search_range(probes[0], bad)  # type: ignore[arg-type]
    assert FingerGallery().search_range(probes[0], 0.5)[0].size == 0


def test_padding_removal_and_compaction(enrolled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    g = _gallery(ids[:4], templates[:4])
    scores, got = g.search(probes[0], k=6)
    assert got[4] == -1 and scores[4] == -np.inf
    g.remove([100])
    assert 100 not in g.search(probes[0], k=6)[1]
    g.save(str(tmp_path / "g.npz"))
    loaded = FingerGallery.load(str(tmp_path / "g.npz"))
    assert g.compact() == 1 and len(g) == 3
    for other in (g, loaded):
        s, i = other.search(probes[0], k=3)
        assert 100 not in i and set(i) == {101, 102, 103}


def test_refused_calls_change_nothing(enrolled) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    g = _gallery(ids[:5], templates[:5])
    before = g.search(probes[0], k=5)
    with pytest.raises(DuplicateId):
        g.add([200, 200], templates[5:7])
    with pytest.raises(DuplicateId):
        g.add([201, 101], templates[5:7])
    with pytest.raises(InvalidTemplate):
        g.add([202, 203], [templates[5], "not a template"])  # type: ignore[list-item]
    with pytest.raises(InvalidTemplate):
        g.add([1.5], templates[5:6])
    with pytest.raises(UnknownId):
        g.remove([100, 999])
    after = g.search(probes[0], k=5)
    assert len(g) == 5
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[0], after[0])


def test_bad_files_and_arguments(enrolled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, templates, probes = enrolled
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a gallery")
    with pytest.raises(ValueError):
        FingerGallery.load(str(bad))
    g = _gallery(ids[:3], templates[:3])
    with pytest.raises(InvalidTemplate):
        g.search(probes[0], k=0)
    # The indexed search is real now; a gallery smaller than its candidates is scanned whole.
    indexed, exhaustive = g.search(probes[0], k=3), g.search(probes[0], k=3, exhaustive=True)
    assert np.array_equal(indexed[0], exhaustive[0]) and np.array_equal(indexed[1], exhaustive[1])

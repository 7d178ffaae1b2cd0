"""Person-level search over up to ten fingers: fusion, candidates, 1:1, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.errors import DuplicateId, InvalidTemplate, UnknownId
from matcher.finger import match
from matcher.fusion import fuse_fingers
from matcher.person_gallery import PersonFingerGallery
from matcher.synthetic.finger import finger_chunks

PERSONS = 40
FINGERS = 10


@pytest.fixture(scope="module")
def hands() -> tuple[list, list]:
    """Enrolment and probe impressions: person p owns synthetic fingers 10 p .. 10 p + 9."""
    enrol = next(finger_chunks(PERSONS * FINGERS, seed=3, chunk=PERSONS * FINGERS, take=0))
    probe = next(finger_chunks(PERSONS * FINGERS, seed=3, chunk=PERSONS * FINGERS, take=1))
    return enrol, probe


def person(templates: list, p: int, positions: range | list[int] = range(1, 11)) -> dict:
    return {pos: templates[p * FINGERS + pos - 1] for pos in positions}


@pytest.fixture(scope="module")
def gallery(hands: tuple[list, list]) -> PersonFingerGallery:
    enrol, _ = hands
    g = PersonFingerGallery()
    # Person 0 has only the thumbs and index fingers enrolled (amputation, injury).
    persons = [person(enrol, p, [1, 2, 6, 7] if p == 0 else range(1, 11)) for p in range(PERSONS)]
    g.add(np.arange(100, 100 + PERSONS), persons)
    return g


def test_fuse_is_the_mean_with_missing_fingers_as_zero() -> None:
    s = np.array([[0.5, 0.25, np.nan], [0.0, 0.0, 0.0]])
    assert fuse_fingers(s).tolist() == [0.25, 0.0]
    with pytest.raises(InvalidTemplate):
        fuse_fingers([[1.5]])
    with pytest.raises(InvalidTemplate):
        fuse_fingers([0.5, 0.2])


def test_search_finds_the_person_with_per_finger_scores(
    hands: tuple[list, list], gallery: PersonFingerGallery
) -> None:
    enrol, probe = hands
    for p in (1, 7, 23):
        fingers = person(probe, p, [2, 3, 7])
        answer = gallery.search(fingers, k=5)
        assert answer[0].id == 100 + p
        # Per-finger scores are exactly the 1:1 matcher's; the fused one is their mean.
        want = {pos: match(fingers[pos], enrol[p * FINGERS + pos - 1]) for pos in fingers}
        assert answer[0].finger_scores == pytest.approx(want, abs=1e-12)
        assert answer[0].score == pytest.approx(np.mean(list(want.values())), abs=1e-12)
        assert [c.score for c in answer] == sorted((c.score for c in answer), reverse=True)


def test_indexed_equals_exhaustive_on_a_small_gallery(
    hands: tuple[list, list], gallery: PersonFingerGallery
) -> None:
    _, probe = hands
    fingers = person(probe, 11, [1, 6])
    fast = gallery.search(fingers, k=3)
    full = gallery.search(fingers, k=3, exhaustive=True)
    assert [c.id for c in fast] == [c.id for c in full]
    assert [c.score for c in fast] == pytest.approx([c.score for c in full], abs=1e-12)


def test_a_missing_enrolled_finger_scores_zero(
    hands: tuple[list, list], gallery: PersonFingerGallery
) -> None:
    _, probe = hands
    got = gallery.verify(100, person(probe, 0, [1, 3]))  # person 0 has no finger 3
    assert got.finger_scores[3] == 0.0
    assert got.score == pytest.approx(got.finger_scores[1] / 2)


def test_ten_fingers_separate_mates_from_impostors(
    hands: tuple[list, list], gallery: PersonFingerGallery
) -> None:
    _, probe = hands
    mates = [gallery.verify(100 + p, person(probe, p)).score for p in range(1, 6)]
    impostors = [gallery.verify(100 + p + 1, person(probe, p)).score for p in range(1, 6)]
    assert min(mates) > 3 * max(impostors)


def test_threshold_keeps_only_candidates_at_or_above_it(
    hands: tuple[list, list], gallery: PersonFingerGallery
) -> None:
    _, probe = hands
    fingers = person(probe, 5, [1, 2])
    everyone = gallery.search(fingers, k=PERSONS, exhaustive=True)
    cut = everyone[2].score
    kept = gallery.search(fingers, k=PERSONS, threshold=cut, exhaustive=True)
    assert [c.id for c in kept] == [c.id for c in everyone if c.score >= cut]


def test_refusals_change_nothing(hands: tuple[list, list], gallery: PersonFingerGallery) -> None:
    enrol, probe = hands
    before = gallery.fingers_enrolled()
    with pytest.raises(DuplicateId):
        gallery.add([999, 100], [person(enrol, 0), person(enrol, 1)])
    with pytest.raises(InvalidTemplate):
        gallery.add([999], [{11: enrol[0]}])
    with pytest.raises(InvalidTemplate):
        gallery.add([999], [{}])
    with pytest.raises(InvalidTemplate):  # the template says it is another finger
        gallery.add([999], [{1: _at_position(enrol[0], 4)}])
    with pytest.raises(UnknownId):
        gallery.remove([100, 12345])
    with pytest.raises(UnknownId):
        gallery.verify(12345, person(probe, 0, [1]))
    with pytest.raises(InvalidTemplate):
        gallery.search(person(probe, 0, [1]), k=0)
    assert gallery.fingers_enrolled() == before
    assert 999 not in gallery and len(gallery) == PERSONS


def test_remove_takes_every_finger(hands: tuple[list, list]) -> None:
    enrol, probe = hands
    g = PersonFingerGallery()
    g.add([1, 2], [person(enrol, 0), person(enrol, 1)])
    g.remove(1)
    assert len(g) == 1 and 1 not in g
    assert sum(g.fingers_enrolled().values()) == FINGERS
    assert all(c.id == 2 for c in g.search(person(probe, 0, [2, 3]), k=5, exhaustive=True))


def _at_position(t, position: int):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(t, position=position)


def test_score_of_given_persons_equals_verify() -> None:
    enrolled = next(finger_chunks(60, seed=4, chunk=60, take=0))
    probes = next(finger_chunks(60, seed=4, chunk=60, take=1))
    g = PersonFingerGallery()
    g.add(np.arange(6), [{p: enrolled[10 * k + p - 1] for p in range(1, 11)} for k in range(6)])
    fingers = {3: probes[22], 8: probes[27]}  # person 2: enrolled[10 * 2 + pos - 1]
    got = g.score(fingers, [4, 2, 0])
    assert [c.id for c in got][0] == 2
    for c in got:
        v = g.verify(c.id, fingers)
        assert c.score == v.score and c.finger_scores == v.finger_scores
    with pytest.raises(UnknownId):
        g.score(fingers, [99])

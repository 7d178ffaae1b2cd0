"""finger_cpu.scan_top (exhaustive top-k with branch and bound) against sorting finger_cpu.scan,
and the soundness of the bound against the numpy reference matcher."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from matcher.errors import InvalidTemplate
from matcher.finger import features
from matcher.kernels import finger_cpu
from tests.reference_finger import match_reference
from tests.test_finger import moved, random_template


def _csr(feats):  # type: ignore[no-untyped-def]
    """Kernel arguments of a gallery of features: ``(offsets, (X, Y_up, theta, bits, mask))``."""
    offsets = np.zeros(len(feats) + 1, np.int64)
    offsets[1:] = np.cumsum([f.n for f in feats])
    cols = [f.kernel_args() for f in feats]
    gallery = (
        *(np.concatenate([c[k] for c in cols]) for k in range(3)),
        np.ascontiguousarray(np.concatenate([c[3] for c in cols], axis=1)),
        np.concatenate([c[4] for c in cols]),
    )
    return offsets, gallery


@pytest.fixture(scope="module")
def population():  # type: ignore[no-untyped-def]
    """Fingers with two impressions each, plus exact copies (equal scores) and an empty one."""
    rng = np.random.default_rng(31)
    fingers = [random_template(rng, int(rng.integers(15, 55))) for _ in range(24)]
    impressions = [moved(f, rng, rng.normal(0, 0.3), *rng.normal(0, 15, 2)) for f in fingers]
    gallery = fingers + impressions + fingers[:4] + impressions[:3]
    feats = [features(t) for t in gallery]
    empty = random_template(rng, 1)  # one minutia: no valid cylinder, matches nothing
    feats.append(features(empty))
    probes = [features(t) for t in (impressions[0], fingers[5], impressions[11], fingers[20])]
    probes.append(features(random_template(rng, 45)))  # an impostor to every template
    return feats, probes


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 100])
def test_scan_top_equals_sorting_the_scan(population, k: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    feats, probes = population
    offsets, gallery = _csr(feats)
    rng = np.random.default_rng(k)
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    try:
        for rows in (np.arange(len(feats)), rng.permutation(len(feats))[: len(feats) // 2]):
            for p in probes:
                scores = finger_cpu.scan(p.kernel_args(), offsets, gallery, rows)
                order = np.lexsort((rows, -scores))[:k]
                top = finger_cpu.scan_top(p.kernel_args(), offsets, gallery, rows, k)
                assert top.templates.tolist() == rows[order].tolist()
                assert top.scores.tolist() == scores[order].tolist()  # the same doubles
                assert top.scores.size <= top.scored <= rows.size
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_scan_top_with_a_floor_equals_filtering_the_scan(population, k: int) -> None:  # type: ignore[no-untyped-def]
    """With ``min_score``: the k best of the scores at least that high, nothing below it,
    the same doubles; a floor equal to a score keeps that template (ties included)."""
    feats, probes = population
    offsets, gallery = _csr(feats + [probes[0]] * 3)  # three equal scores, exactly the floor
    rows = np.arange(len(feats) + 3)[::-1].copy()
    for p in probes:
        scores = finger_cpu.scan(p.kernel_args(), offsets, gallery, rows)
        for floor in (0.0, float(np.median(scores)), float(np.sort(scores)[-2]), 2.0):
            keep = scores >= floor
            order = np.lexsort((rows[keep], -scores[keep]))[:k]
            top = finger_cpu.scan_top(p.kernel_args(), offsets, gallery, rows, k, floor)
            assert top.templates.tolist() == rows[keep][order].tolist()
            assert top.scores.tolist() == scores[keep][order].tolist()
    # The copies (and the probe's own template, enrolled twice) all score exactly the floor.
    scores = finger_cpu.scan(probes[0].kernel_args(), offsets, gallery, rows)
    floor = float(scores[0])
    assert (scores == floor).sum() >= 3
    top = finger_cpu.scan_top(probes[0].kernel_args(), offsets, gallery, rows, 2, floor)
    assert top.templates.tolist() == sorted(rows[scores == floor].tolist())[:2]
    for bad in ("0.5", float("nan"), True):
        with pytest.raises(InvalidTemplate):
            finger_cpu.scan_top(probes[0].kernel_args(), offsets, gallery, rows, 2, bad)  # type: ignore[arg-type]


def test_scan_with_a_floor_is_exact_at_or_above_it(population) -> None:  # type: ignore[no-untyped-def]
    """``scan(min_score=)``: every score at or above the floor is the plain scan's double;
    below it, either that score or -inf (proven below and skipped)."""
    feats, probes = population
    offsets, gallery = _csr(feats)
    rows = np.arange(len(feats))
    skipped = 0
    for p in probes:
        plain = finger_cpu.scan(p.kernel_args(), offsets, gallery, rows)
        for floor in (0.0, float(np.median(plain)), float(plain.max())):
            got = finger_cpu.scan(p.kernel_args(), offsets, gallery, rows, floor)
            above = plain >= floor
            assert got[above].tolist() == plain[above].tolist()
            below = got[~above]
            assert np.all((below == -np.inf) | (below == plain[~above]))
            skipped += int(np.sum(below == -np.inf))
    assert skipped > 0
    with pytest.raises(InvalidTemplate):
        finger_cpu.scan(probes[0].kernel_args(), offsets, gallery, rows, float("nan"))


def test_scan_top_with_a_floor_skips_impostors(population) -> None:  # type: ignore[no-untyped-def]
    """A floor above every impostor's bound: the impostor probe is matched in full against
    almost nothing (its k-th best never rises above the floor, so only the floor prunes)."""
    feats, probes = population
    offsets, gallery = _csr(feats)
    rows = np.arange(len(feats))
    impostor = probes[4].kernel_args()
    scores = finger_cpu.scan(impostor, offsets, gallery, rows)
    floor = 3.0 * float(scores.max())
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        none = finger_cpu.scan_top(impostor, offsets, gallery, rows, 10)
        floored = finger_cpu.scan_top(impostor, offsets, gallery, rows, 10, floor)
    finally:
        numba.set_num_threads(before)
    assert floored.scores.size == 0
    assert floored.scored < none.scored // 4


def test_scan_top_prunes_and_keeps_ties(population) -> None:  # type: ignore[no-untyped-def]
    feats, probes = population
    # Copies of the probe (equal scores) fill the top; ties go to the lower template index,
    # whatever order the rows come in.
    copies = [probes[4]] * 6
    offsets, gallery = _csr(feats + copies)
    rows = np.arange(len(feats) + len(copies))[::-1].copy()
    top = finger_cpu.scan_top(probes[4].kernel_args(), offsets, gallery, rows, 4)
    assert top.templates.tolist() == list(range(len(feats), len(feats) + 4))
    assert np.unique(top.scores).size == 1
    # Rows visited after the copies are mostly bounded out rather than matched in full (one
    # thread: with two, the other half of the rows could start before the copies are found).
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        top = finger_cpu.scan_top(probes[4].kernel_args(), offsets, gallery, rows, 4)
    finally:
        numba.set_num_threads(before)
    assert top.scored < rows.size // 2


def test_scan_top_edge_cases(population) -> None:  # type: ignore[no-untyped-def]
    feats, probes = population
    offsets, gallery = _csr(feats)
    p = probes[1].kernel_args()
    none = finger_cpu.scan_top(p, offsets, gallery, np.zeros(0, np.int64), 5)
    assert none.scores.size == 0 and none.templates.size == 0 and none.scored == 0
    last = np.array([len(feats) - 1])  # the empty template: scored 0, still a result
    one = finger_cpu.scan_top(p, offsets, gallery, last, 5)
    assert one.scores.tolist() == [0.0] and one.templates.tolist() == last.tolist()
    for bad_k in (0, -1, True, 2.5):
        with pytest.raises(InvalidTemplate):
            finger_cpu.scan_top(p, offsets, gallery, last, bad_k)  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate):
        finger_cpu.scan_top(p, offsets, gallery, np.array([len(feats)]), 1)


def test_bound_never_prunes_a_score_at_or_above_the_threshold(population) -> None:  # type: ignore[no-untyped-def]
    """Where the kernel prunes, the reference score is below the threshold; where it does not,
    it returns the same double as without a threshold."""
    feats, probes = population
    min_cells = finger_cpu.min_matchable_cells()
    pruned = 0
    for p in probes:
        a = p.kernel_args()
        s = finger_cpu._new_scratch(p.n, max(f.n for f in feats), finger_cpu.fp.RELAXATION_PAIRS)
        finger_cpu._probe_pairs(*a, s)
        for f in feats[::3]:
            b = f.kernel_args()
            want = match_reference(a, b, min_cells)
            exact = finger_cpu._match_into(*a, *b, min_cells, finger_cpu.PARAMS, -np.inf, s)  # type: ignore[call-arg]
            assert exact == pytest.approx(want, abs=1e-9)
            for thr in (want * 0.5, want, want + 1e-7, want * 1.5 + 0.01, 0.2, 0.6, 1.0):
                got = finger_cpu._match_into(*a, *b, min_cells, finger_cpu.PARAMS, thr, s)  # type: ignore[call-arg]
                if got == finger_cpu._PRUNED:
                    assert want < thr
                    pruned += 1
                else:
                    assert got == exact
    assert pruned > 0  # the bound is not vacuous

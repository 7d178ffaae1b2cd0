"""Known-answer tests for benchmarks.metrics (EER, FVC EER bracket, FNMR at FMR, DET curve)."""

import numpy as np
import pytest

from benchmarks.metrics import det_curve, eer, eer_interval, fnmr_at_fmr


def test_perfect_separation_gives_zero():
    gen = [10, 11, 12.5, 30]
    imp = [0, 1, 2, 9.99]
    assert eer(gen, imp) == 0.0
    assert eer_interval(gen, imp) == (0.0, 0.0)
    assert fnmr_at_fmr(gen, imp, 0.5) == 0.0


def test_fully_inverted_gives_one():
    assert eer([0, 1], [5, 6]) == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100])
def test_identical_distributions_give_half(n):
    s = np.arange(n, dtype=float)
    assert eer(s, s) == pytest.approx(0.5)


def test_identical_random_distributions_near_half():
    rng = np.random.default_rng(0)
    gen = rng.normal(size=20000)
    imp = rng.normal(size=20000)
    assert eer(gen, imp) == pytest.approx(0.5, abs=0.01)


def test_gaussian_shift_matches_theory():
    # N(d, 1) vs N(0, 1): the curves cross at d/2, EER = Phi(-d/2) = 0.30854 for d = 1.
    rng = np.random.default_rng(1)
    gen = rng.normal(1.0, 1.0, 200000)
    imp = rng.normal(0.0, 1.0, 200000)
    assert eer(gen, imp) == pytest.approx(0.30854, abs=0.004)


def test_hand_worked_exact_crossing():
    # thresholds 1..8, inf; FNMR = 0 0 0 .25 .25 .5 .75 .75 1; FMR = 1 .75 .5 .5 .25 .25 .25 0 0.
    # At t = 5 both are 0.25.
    gen = [3, 5, 6, 8]
    imp = [1, 2, 4, 7]
    c = det_curve(gen, imp)
    np.testing.assert_array_equal(c.thresholds, [1, 2, 3, 4, 5, 6, 7, 8, np.inf])
    np.testing.assert_allclose(c.fnmr, [0, 0, 0, 0.25, 0.25, 0.5, 0.75, 0.75, 1])
    np.testing.assert_allclose(c.fmr, [1, 0.75, 0.5, 0.5, 0.25, 0.25, 0.25, 0, 0])
    assert eer(gen, imp) == 0.25
    assert eer_interval(gen, imp) == (0.25, 0.25)


def test_hand_worked_interpolated_crossing():
    # t = 4: FMR 1/3, FNMR 1/5; t = 5: FMR 1/3, FNMR 2/5. FMR is flat across the step, so
    # the interpolated crossing is at 1/3. FVC: t1 = 4 (sum 8/15) <= t2 = 5 (sum 11/15), so
    # the bracket is [FNMR(4), FMR(4)] = [1/5, 1/3].
    gen = [2, 4, 6, 8, 10]
    imp = [1, 3, 5]
    assert eer(gen, imp) == pytest.approx(1 / 3)
    lo, hi = eer_interval(gen, imp)
    assert (lo, hi) == (pytest.approx(0.2), pytest.approx(1 / 3))


def test_interpolation_between_points_that_both_move():
    # t = 1: FMR 2/3, FNMR 0; t = 2: FMR 0, FNMR 2/3; the line between crosses at 1/3.
    # The two genuine and two impostor scores tied at 1 are accepted or rejected together.
    gen = [1, 1, 2]
    imp = [1, 1, 0]
    assert eer(gen, imp) == pytest.approx(1 / 3)
    assert eer_interval(gen, imp) == (0.0, pytest.approx(2 / 3))


def test_ties_do_not_depend_on_order_or_label():
    gen = [5, 5, 5, 7]
    imp = [5, 5, 3, 1]
    ref = eer(gen, imp)
    assert eer(gen[::-1], imp[::-1]) == ref
    assert eer(np.array(gen, dtype=np.int32), np.array(imp, dtype=np.int64)) == ref
    # Everything tied: one accept-all and one reject-all point; the crossing is at 0.5.
    assert eer([4, 4], [4, 4, 4]) == 0.5


def test_integer_scores_like_bozorth3():
    gen = np.array([0, 12, 40, 55, 90, 120], dtype=np.int64)
    imp = np.array([0, 0, 3, 7, 12, 14], dtype=np.int64)
    # t = 12: FNMR 1/6, FMR 2/6; t = 14: FNMR 2/6, FMR 1/6 -> crossing at 1/4.
    assert eer(gen, imp) == pytest.approx(0.25)


def test_fnmr_at_fmr_picks_lowest_threshold_within_bound():
    imp = np.arange(100)  # at most one impostor in at FMR 1e-2: threshold 99
    gen = np.array([50, 98, 99, 150])
    assert fnmr_at_fmr(gen, imp, 1e-2) == 0.5
    assert fnmr_at_fmr(gen, imp, 2e-2) == 0.25  # threshold 98
    assert fnmr_at_fmr(gen, imp, 1.0) == 0.0


def test_fnmr_at_fmr_unresolvable_is_none():
    imp = np.arange(45)
    gen = np.arange(100, 110)
    assert fnmr_at_fmr(gen, imp, 1e-2) is None
    assert fnmr_at_fmr(gen, imp, 1e-2, require_resolvable=False) == 0.0
    assert fnmr_at_fmr(gen, np.arange(2880), 1e-3) is not None


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        eer([], [1])
    with pytest.raises(ValueError):
        eer([1], [np.nan])
    with pytest.raises(ValueError):
        fnmr_at_fmr([1], [0], 0.0)

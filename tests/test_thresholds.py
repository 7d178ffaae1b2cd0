"""Thresholds from impostor distributions: empirical where measured, extrapolated beyond."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from matcher.thresholds import Calibration, Thresholds


def _exp_impostors(n: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).exponential(scale, n)


@pytest.mark.parametrize("rate", [1e-2, 1e-3])
def test_empirical_region_accepts_at_most_the_allowed_impostors(rate: float) -> None:
    imp = _exp_impostors(200_000, 0.05)
    c = Calibration.fit("finger", imp, True, "test")
    t = c.threshold(rate)
    accepted = int(np.count_nonzero(imp >= t))
    assert accepted <= rate * imp.size
    assert accepted >= rate * imp.size - 1  # and no stricter than needed
    assert c.fmr(t) == pytest.approx(accepted / imp.size)


@pytest.mark.parametrize("rate", [1e-6, 1e-8])
def test_extrapolated_tail_matches_a_known_exponential(rate: float) -> None:
    scale = 0.05
    c = Calibration.fit("finger", _exp_impostors(100_000, scale), True, "test")
    exact = -scale * math.log(rate)  # P(X >= t) = exp(-t / scale)
    assert c.threshold(rate) == pytest.approx(exact, rel=0.05)
    assert c.fmr(c.threshold(rate)) == pytest.approx(rate, rel=1e-6)


def test_lower_is_better_mirrors_higher_is_better() -> None:
    imp = _exp_impostors(50_000, 0.02, seed=3)
    up = Calibration.fit("finger", imp, True, "test")
    down = Calibration.fit("iris", 0.5 - imp, False, "test")
    for r in (1e-2, 1e-4, 1e-7):
        assert down.threshold(r) == pytest.approx(0.5 - up.threshold(r), abs=1e-9)
        assert down.accepts(down.threshold(r) - 1e-9, down.threshold(r))
        assert not down.accepts(down.threshold(r) + 1e-3, down.threshold(r))


def test_thresholds_are_monotonic_in_the_rate() -> None:
    c = Calibration.fit("finger", np.random.default_rng(1).beta(2, 20, 30_000), True, "t")
    rates = np.logspace(-9, -1, 40)
    ts = [c.threshold(float(r)) for r in rates]
    assert all(a >= b for a, b in zip(ts, ts[1:], strict=False))


def test_fpir_uses_the_union_bound() -> None:
    c = Calibration.fit("finger", _exp_impostors(10_000, 0.1), True, "t")
    th = Thresholds(c, Calibration.fit("iris", 0.5 - _exp_impostors(10_000, 0.02), False, "t"))
    assert th.for_fpir("finger", 1e-3, 1000) == th.for_fmr("finger", 1e-6)
    assert th.for_fpir("iris", 1e-2, 0) == th.for_fmr("iris", 1e-2)
    with pytest.raises(ValueError):
        th.for_fmr("palm", 1e-3)
    with pytest.raises(ValueError):
        th.for_fmr("finger", 0.0)


def test_save_load_round_trip_and_bad_files(tmp_path: Path) -> None:
    c = Calibration.fit("finger", _exp_impostors(10_000, 0.1), True, "t")
    i = Calibration.fit("iris", 0.5 - _exp_impostors(10_000, 0.02), False, "t")
    th = Thresholds(c, i, default_fmr=1e-5)
    p = tmp_path / "th.json"
    th.save(p)
    back = Thresholds.load(p)
    assert back.default_fmr == 1e-5
    for m in ("finger", "iris"):
        for r in (1e-2, 1e-6):
            assert back.for_fmr(m, r) == pytest.approx(th.for_fmr(m, r), abs=1e-6)
    p.write_text('{"finger": {"modality": "finger"}, "iris": {}}')
    with pytest.raises(ValueError, match="malformed"):
        Thresholds.load(p)
    with pytest.raises(ValueError, match="needs >= 100"):
        Calibration.fit("finger", [0.1] * 10, True, "t")

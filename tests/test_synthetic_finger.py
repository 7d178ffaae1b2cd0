"""matcher.synthetic.finger: the statistics and geometry the generator promises.

Measured with these seeds (default capture, 388 x 374 at 500 dpi): impression counts median 45,
2.5-97.5 % range 25-75, about 98 % within 20..80 (mindtct on FVC2002 DB1_B: median 49, 23-74).
With matcher.finger.match, genuine pairs average about 0.20 and impostor pairs about 0.013
(FVC2002 DB1_B through mindtct: 0.19 and 0.014). The bands below leave room for sampling error.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from matcher.finger import match
from matcher.synthetic import finger as sf
from matcher.synthetic.finger import (
    PATTERN_FREQUENCIES,
    PATTERNS,
    Capture,
    SyntheticFinger,
    finger_chunks,
    impression,
    random_finger,
)
from matcher.templates import FingerTemplate

W, H = 388, 374
#: A capture that only applies the rigid motion it is given.
EXACT = dict(
    distortion=0.0, position_noise_px=0.0, angle_noise_deg=0.0, missing=(0.0, 0.0), spurious=(0, 0)
)


def _wrap_pi(a: np.ndarray) -> np.ndarray:
    """Angles to (-pi, pi]."""
    return -np.mod(-a + math.pi, 2 * math.pi) + math.pi


@pytest.fixture(scope="module")
def gallery() -> list[FingerTemplate]:
    return [t for chunk in finger_chunks(2000, seed=5, chunk=300) for t in chunk]


@pytest.fixture(scope="module")
def fingers() -> list[SyntheticFinger]:
    rng = np.random.default_rng(6)
    return [random_finger(rng) for _ in range(60)]


def test_counts_are_realistic(gallery: list[FingerTemplate]) -> None:
    n = np.array([t.n for t in gallery])
    assert len(gallery) == 2000
    assert np.mean((n >= 20) & (n <= 80)) >= 0.95
    assert 35 <= np.median(n) <= 55
    assert n.min() >= 1 and n.max() <= 255


def test_templates_are_valid(gallery: list[FingerTemplate]) -> None:
    for t in gallery[:500]:
        assert (t.width, t.height, t.dpi) == (W, H, 500)
        assert np.all((t.x >= 0) & (t.x < W) & (t.y >= 0) & (t.y < H))
        assert np.all((t.theta >= 0) & (t.theta < 2 * math.pi))
        assert set(np.unique(t.kind)) <= {1, 2}
        assert np.all((t.quality >= 40) & (t.quality <= 100))


def test_reproducible_from_the_seed() -> None:
    a = random_finger(np.random.default_rng(1))
    b = random_finger(np.random.default_rng(1))
    assert a.master.equals(b.master) and a.pattern == b.pattern
    assert impression(a, np.random.default_rng(2)).equals(impression(b, np.random.default_rng(2)))
    assert not impression(a, np.random.default_rng(2)).equals(
        impression(a, np.random.default_rng(3))
    )

    whole = [t for c in finger_chunks(700, seed=9) for t in c]
    again = [t for c in finger_chunks(700, seed=9, chunk=64) for t in c]
    prefix = [t for c in finger_chunks(30, seed=9, chunk=7) for t in c]
    assert [len(c) for c in finger_chunks(30, seed=9, chunk=7)] == [7, 7, 7, 7, 2]
    assert len(whole) == 700 and all(x.equals(y) for x, y in zip(whole, again, strict=True))
    assert all(x.equals(y) for x, y in zip(prefix, whole[:30], strict=False))
    other = [t for c in finger_chunks(30, seed=10) for t in c]
    assert not any(x.equals(y) for x, y in zip(other, prefix, strict=True))
    assert list(finger_chunks(0, seed=9)) == []


def test_take_gives_genuine_mates() -> None:
    enrolled = next(finger_chunks(20, seed=4))
    probes = next(finger_chunks(20, seed=4, take=1))
    genuine = np.array([match(a, b) for a, b in zip(enrolled, probes, strict=True)])
    impostor = np.array(
        [match(a, b) for a, b in zip(enrolled, probes[1:] + probes[:1], strict=True)]
    )
    assert not any(a.equals(b) for a, b in zip(enrolled, probes, strict=True))
    assert np.mean(genuine > impostor) >= 0.9


def test_pattern_frequencies_and_singular_points() -> None:
    shapes = sf._random_shapes(np.random.default_rng(7), 20000, W, H, 1.0)
    freq = np.bincount(shapes.pattern, minlength=len(PATTERNS)) / 20000
    assert np.allclose(freq, PATTERN_FREQUENCIES, atol=0.015)
    cores = np.sum(~np.isnan(shapes.cores[:, :, 0]), axis=1)
    deltas = np.sum(~np.isnan(shapes.deltas[:, :, 0]), axis=1)
    assert np.all(cores == np.array([0, 1, 1, 1, 2])[shapes.pattern])
    assert np.all(deltas == np.array([0, 1, 1, 1, 2])[shapes.pattern])


def test_singular_points_have_their_poincare_index(fingers: list[SyntheticFinger]) -> None:
    """Orientation turns by +pi round a core and -pi round a delta (counter-clockwise as
    displayed): the topology Sherlock and Monro's model is built to have."""
    a = np.linspace(0, 2 * math.pi, 65)
    seen = set()
    for f in fingers:
        seen.add(f.pattern)
        for points, index in ((f.cores, 0.5), (f.deltas, -0.5)):
            for px, py in points:
                o = f.orientation(px + 4 * np.cos(a), py - 4 * np.sin(a))
                turn = np.sum(_wrap_pi(2 * np.diff(o)) / 2)  # steps of an axial angle
                assert turn / (2 * math.pi) == pytest.approx(index, abs=1e-6)
        if f.pattern in ("left_loop", "right_loop"):
            # The delta sits on the side opposite the loop's opening, in the finger's frame.
            (cx, cy), (dx, dy) = f.cores[0], f.deltas[0]
            across = math.cos(f.tilt_rad) * (dx - cx) - math.sin(f.tilt_rad) * (dy - cy)
            assert (across > 0) == (f.pattern == "left_loop")
        for px, py in f.cores:
            assert f.inside(px, py)
    assert {"left_loop", "right_loop", "whorl"} <= seen


def test_directions_follow_the_field(fingers: list[SyntheticFinger]) -> None:
    diffs, flips = [], []
    for f in fingers:
        m = f.master
        d = np.mod(m.theta - f.orientation(m.x, m.y), math.pi)
        diffs.append(np.minimum(d, math.pi - d))
        flips.append(np.abs(_wrap_pi(m.theta - f.orientation(m.x, m.y))) > math.pi / 2)
    assert np.mean(np.concatenate(diffs)) < math.radians(6)  # jitter sigma 4 deg: mean 3.2
    assert 0.4 < np.mean(np.concatenate(flips)) < 0.6  # ending/bifurcation: 0 or pi at random


def test_master_minutiae_keep_their_spacing(fingers: list[SyntheticFinger]) -> None:
    for f in fingers[:20]:
        m = f.master
        d = np.hypot(m.x[:, None] - m.x[None], m.y[:, None] - m.y[None])
        d[np.diag_indices(m.n)] = np.inf
        assert d.min() >= sf.MIN_MINUTIA_DISTANCE_PX - 1e-3
        assert np.all(f.inside(m.x, m.y))


def _reference_matern_ii(x: np.ndarray, y: np.ndarray, valid: np.ndarray, r: float) -> np.ndarray:
    keep = valid.copy()
    for row in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(i):
                if valid[row, i] and valid[row, j]:
                    if (x[row, i] - x[row, j]) ** 2 + (y[row, i] - y[row, j]) ** 2 < r * r:
                        keep[row, i] = False
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thinning_equals_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, k = 300, 40
    x = rng.uniform(0, 120, (m, k))
    y = rng.uniform(0, 120, (m, k))
    valid = rng.random((m, k)) < 0.8
    valid[0] = False  # a row with nothing
    valid[1] = False
    valid[1, 5] = True  # a row with one point
    x[2, 3], y[2, 3] = x[2, 9], y[2, 9]  # coincident points
    x[3, :], y[3, :] = np.arange(k) * 13.0, 0.0  # exactly the hard-core distance apart: kept
    expected = _reference_matern_ii(x, y, valid, 13.0)
    np.testing.assert_array_equal(sf._matern_ii(x, y, valid, 13.0), expected)


@pytest.mark.parametrize("rotation", [0.0, 17.0, 90.0, -30.0])
def test_rigid_motion_follows_the_iso_convention(rotation: float) -> None:
    f = random_finger(np.random.default_rng(11))
    t = 12.0
    imp = impression(
        f,
        np.random.default_rng(12),
        rotation_deg=(rotation, rotation),
        translation_px=(t, t),
        **EXACT,
    )
    m, (cx, cy), r = f.master, f.centre, math.radians(rotation)
    # Counter-clockwise as displayed: rotate in the y-up frame, then back to pixels.
    big_x, big_y = m.x - cx, -(m.y - cy)
    ex = cx + big_x * math.cos(r) - big_y * math.sin(r) + t
    ey = cy - (big_x * math.sin(r) + big_y * math.cos(r)) + t
    d = np.hypot(imp.x[:, None] - ex[None], imp.y[:, None] - ey[None])
    j = d.argmin(axis=1)
    assert np.all(d.min(axis=1) < 1e-3)
    assert len(set(j.tolist())) == imp.n  # one to one
    assert np.all(np.abs(_wrap_pi(imp.theta - (m.theta[j] + r))) < 1e-5)
    np.testing.assert_array_equal(imp.kind, m.kind[j])
    in_view = (ex >= 0) & (ex < W) & (ey >= 0) & (ey < H)
    assert 0.7 * in_view.sum() <= imp.n <= in_view.sum()  # only the pressure margin is lost


def test_a_quarter_turn_moves_up_to_left() -> None:
    """A minutia above the centre pointing up ends left of it pointing left after +90 deg."""
    f = random_finger(np.random.default_rng(13))
    cx, cy = f.centre
    one = FingerTemplate(x=[cx], y=[cy - 50], theta=[math.pi / 2], width=W, height=H)
    g = dataclasses.replace(f, master=one)
    imp = impression(
        g, np.random.default_rng(0), rotation_deg=(90, 90), translation_px=(0, 0), **EXACT
    )
    assert imp.n == 1
    assert (imp.x[0], imp.y[0]) == pytest.approx((cx - 50, cy), abs=1e-3)
    assert imp.theta[0] == pytest.approx(math.pi, abs=1e-5)
    np.testing.assert_allclose(imp.directions(), [[-1.0, 0.0]], atol=1e-5)


def test_distortion_is_smooth_and_bounded() -> None:
    rng = np.random.default_rng(14)
    for _ in range(10):
        f = random_finger(rng)
        gx, gy = np.meshgrid(np.arange(20.0, W, 50.0), np.arange(20.0, H, 50.0))
        ok = f.inside(gx, gy)
        gx, gy = gx[ok], gy[ok]
        theta = np.mod(f.orientation(gx, gy), 2 * math.pi)
        grid = FingerTemplate(x=gx, y=gy, theta=theta, width=W, height=H)
        g = dataclasses.replace(f, master=grid)
        imp = impression(
            g, rng, rotation_deg=(0, 0), translation_px=(0, 0), **{**EXACT, "distortion": 1.0}
        )
        d = np.hypot(imp.x[:, None] - gx[None], imp.y[:, None] - gy[None])
        j = d.argmin(axis=1)  # grid points are 50 px apart, moves are far smaller
        dx, dy = imp.x - gx[j], imp.y - gy[j]
        assert np.hypot(dx, dy).max() < 20.0
        # Neighbours 50 px apart move nearly together (strain under 20 %); directions turn by
        # the twist (up to 4 degrees) plus the local shear.
        near = np.hypot(gx[j][:, None] - gx[j][None], gy[j][:, None] - gy[j][None]) < 51
        assert np.all(np.hypot(dx[:, None] - dx[None], dy[:, None] - dy[None])[near] < 10.0)
        assert np.all(np.abs(_wrap_pi(imp.theta - theta[j])) < math.radians(12))


def test_missing_and_spurious() -> None:
    rng = np.random.default_rng(15)
    f = random_finger(rng)
    still = dict(rotation_deg=(0, 0), translation_px=(0, 0))
    full = impression(f, rng, **still, **EXACT)
    half = impression(f, rng, **still, **{**EXACT, "missing": (0.5, 0.5)})
    assert 0.3 * full.n <= half.n <= 0.7 * full.n
    only_fake = impression(f, rng, **still, **{**EXACT, "missing": (1, 1), "spurious": (4, 4)})
    assert 1 <= only_fake.n <= 4
    assert np.all((only_fake.quality >= 40) & (only_fake.quality <= 70))
    # Pushed off the image: something (at least one minutia) is still returned, inside it.
    gone = impression(f, rng, translation_px=(2000, 2000), **EXACT)
    assert gone.n == 1


def test_genuine_scores_well_above_impostor() -> None:
    rng = np.random.default_rng(16)
    fs = [random_finger(rng) for _ in range(20)]
    first = [impression(f, rng) for f in fs]
    second = [impression(f, rng) for f in fs]
    genuine = np.array([match(a, b) for a, b in zip(first, second, strict=True)])
    impostor = np.array([match(a, b) for a, b in zip(first, second[1:] + second[:1], strict=True)])
    assert genuine.mean() > 3 * impostor.mean()
    assert np.mean(genuine > impostor) >= 0.9


def test_other_geometries() -> None:
    rng = np.random.default_rng(17)
    tiny = random_finger(rng, width=40, height=30)
    assert tiny.master.n >= 1 and impression(tiny, rng).n >= 1
    big = [random_finger(rng, width=2 * W, height=2 * H, dpi=1000) for _ in range(10)]
    normal = [random_finger(rng) for _ in range(10)]
    # Same finger sizes in millimetres: about as many minutiae, twice the spacing in pixels.
    ratio = np.mean([f.master.n for f in big]) / np.mean([f.master.n for f in normal])
    assert 0.7 < ratio < 1.4
    m = big[0].master
    d = np.hypot(m.x[:, None] - m.x[None], m.y[:, None] - m.y[None]) + np.eye(m.n) * 1e9
    assert d.min() >= 2 * sf.MIN_MINUTIA_DISTANCE_PX - 1e-3
    imp = impression(big[0], rng)
    assert (imp.width, imp.height, imp.dpi) == (2 * W, 2 * H, 1000)
    assert match(imp, impression(big[0], rng)) > 3 * match(imp, impression(big[1], rng))


def test_bad_arguments_are_refused() -> None:
    f = random_finger(np.random.default_rng(18))
    rng = np.random.default_rng(19)
    for bad in (
        {"missing": (0.3, 0.1)},
        {"missing": (0.0, 1.5)},
        {"spurious": (0, 300)},
        {"spurious": (0.5, 2)},
        {"distortion": -1.0},
        {"rotation_deg": (0.0, math.inf)},
    ):
        with pytest.raises(ValueError):
            impression(f, rng, **bad)
        with pytest.raises(ValueError):
            finger_chunks(10, 0, **bad)
    with pytest.raises(TypeError):
        impression(f, rng, rotation=(0, 0))
    for args in ((0, 10, 500), (10, 20000, 500), (100, 100, 10)):
        with pytest.raises(ValueError):
            random_finger(rng, *args)
    with pytest.raises(ValueError):
        finger_chunks(-1, 0)
    with pytest.raises(ValueError):
        finger_chunks(10, 0, chunk=0)
    assert Capture(spurious=(2, 2)).spurious == (2, 2)

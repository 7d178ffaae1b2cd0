"""Fingerprint matcher: cylinders and scores against the reference, and the properties a user
relies on (identical prints score near 1, a moved and noisy copy beats an unrelated print)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matcher.finger import FingerTemplate, features, match
from matcher.kernels import finger_cpu
from tests.reference_finger import cylinders_reference, match_reference

W, H = 400, 420


def random_template(rng: np.random.Generator, n: int = 40, dpi: int = 500) -> FingerTemplate:
    # Ridge-flow-like directions: a smooth field plus noise, so neighbours look like real ones.
    x = rng.uniform(40, W - 40, n)
    y = rng.uniform(40, H - 40, n)
    flow = np.arctan2(y - H / 2, x - W / 2) + math.pi / 2
    theta = (flow + rng.normal(0, 0.3, n) + math.pi * (rng.random(n) < 0.5)) % (2 * math.pi)
    return FingerTemplate(x=x, y=y, theta=theta, width=W, height=H, dpi=dpi)


def moved(
    t: FingerTemplate, rng: np.random.Generator, angle: float, dx: float, dy: float
) -> FingerTemplate:
    """The same finger placed again: rotated about the centre (as displayed), shifted, with
    position/angle noise, 20 % of minutiae lost and a few spurious ones."""
    cx, cy = W / 2, H / 2
    c, s = math.cos(angle), math.sin(angle)
    # Counter-clockwise as displayed is clockwise in pixel coordinates (y down).
    x = cx + c * (t.x - cx) + s * (t.y - cy) + dx + rng.normal(0, 2.0, t.n)
    y = cy - s * (t.x - cx) + c * (t.y - cy) + dy + rng.normal(0, 2.0, t.n)
    theta = t.theta + angle + rng.normal(0, 0.08, t.n)
    keep = (rng.random(t.n) > 0.2) & (x > 0) & (x < W) & (y > 0) & (y < H)
    extra = random_template(rng, 5)
    return FingerTemplate(
        x=np.r_[x[keep], extra.x],
        y=np.r_[y[keep], extra.y],
        theta=np.r_[theta[keep], extra.theta],
        width=W,
        height=H,
        dpi=t.dpi,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cylinders_equal_the_reference(seed: int) -> None:
    t = random_template(np.random.default_rng(seed), n=14)
    bits, mask, ok = finger_cpu.build_cylinders(t.x, t.y, t.theta)
    rbits, rmask, rok = cylinders_reference(t.x, t.y, t.theta)
    assert np.array_equal(mask, rmask)
    assert np.array_equal(ok, rok)
    # Sums that land exactly on the on-threshold could round either way; allow none here.
    assert np.array_equal(bits, rbits)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_score_equals_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = random_template(rng, 25)
    b = moved(a, rng, 0.2, 10, -5) if seed % 2 else random_template(rng, 22)
    fa, fb = features(a), features(b)
    got = match(fa, fb)
    want = match_reference(fa.kernel_args(), fb.kernel_args(), finger_cpu.min_matchable_cells())
    assert got == pytest.approx(want, abs=1e-9)


def test_identical_templates_score_near_one() -> None:
    t = random_template(np.random.default_rng(7), 45)
    assert match(t, t) > 0.9


def test_genuine_beats_impostor_across_placements() -> None:
    rng = np.random.default_rng(8)
    for _ in range(10):
        a = random_template(rng, 45)
        angle = rng.uniform(-0.5, 0.5)
        genuine = match(a, moved(a, rng, angle, rng.uniform(-30, 30), rng.uniform(-30, 30)))
        impostor = match(a, random_template(rng, 45))
        assert 0.0 <= impostor < genuine <= 1.0


def test_resolution_is_normalised() -> None:
    t = random_template(np.random.default_rng(9), 40)
    double = FingerTemplate(
        x=t.x * 2, y=t.y * 2, theta=t.theta, width=2 * W, height=2 * H, dpi=1000
    )
    other = moved(t, np.random.default_rng(10), 0.1, 5, 5)
    assert match(double, other) == pytest.approx(match(t, other), abs=1e-6)


def test_too_few_minutiae_score_zero() -> None:
    # Three minutiae far apart: no cylinder has the two neighbours MCC requires.
    t = FingerTemplate(x=[20, 200, 380], y=[20, 400, 20], theta=[0, 1, 2], width=W, height=H)
    assert features(t).n == 0
    assert match(t, random_template(np.random.default_rng(11))) == 0.0


def test_features_are_cached_per_template() -> None:
    t = random_template(np.random.default_rng(12))
    assert features(t) is features(t)


def test_match_refuses_other_types() -> None:
    with pytest.raises(ValueError, match="FingerTemplate"):
        match(object(), random_template(np.random.default_rng(13)))  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (40, 45), (200, 250)])
def test_best_partners_equal_a_plain_definition(seed: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    na, nb = shape
    # Mostly zeros and small values, as a local-similarity matrix; some seeds full of ties.
    sim = np.where(rng.random(shape) < 0.5, 0.0, rng.beta(2, 6, shape))
    if seed % 3 == 0:
        sim = np.round(sim, 1)
    if seed == 5:
        sim[:] = 0.25
    rb, ra = sim.max(axis=1), sim.argmax(axis=1)  # argmax: first of equal maxima
    cb, ca = sim.max(axis=0), sim.argmax(axis=0)
    got_vals, got_keys = finger_cpu._best_partners(rb, ra, cb, ca, nb)
    want = {(sim[i, ra[i]], i * nb + ra[i]) for i in range(na) if rb[i] > 0}
    want |= {(sim[ca[j], j], ca[j] * nb + j) for j in range(nb) if cb[j] > 0}
    ordered = sorted(want, key=lambda t: (-t[0], t[1]))
    assert got_keys.tolist() == [k for _, k in ordered]
    assert got_vals.tolist() == [v for v, _ in ordered]


@pytest.mark.parametrize("seed", [8, 9])
def test_minutia_order_does_not_change_the_score(seed: int) -> None:
    # features() sorts by direction so the kernel can skip out-of-window pairs; shuffled
    # (unsorted) input takes the full path and must give the reference score too.
    rng = np.random.default_rng(seed)
    a = random_template(rng, 30)
    fa, fb = features(a), features(moved(a, rng, -0.3, 4, 12))
    assert np.all(np.diff(fb.theta) >= 0)
    perm = rng.permutation(fb.n)
    shuffled = tuple(np.ascontiguousarray(v[..., perm]) for v in fb.kernel_args())
    min_cells = finger_cpu.min_matchable_cells()
    want = match_reference(fa.kernel_args(), shuffled, min_cells)
    got = finger_cpu.match_features(fa.kernel_args(), shuffled)
    assert got == pytest.approx(want, abs=1e-9)
    assert match(fa, fb) == pytest.approx(
        match_reference(fa.kernel_args(), fb.kernel_args(), min_cells), abs=1e-9
    )
    assert got == pytest.approx(match(fa, fb), abs=1e-6)
    # The direction windows run over the probe's side (A): unsorted there too.
    want_a = match_reference(shuffled, fa.kernel_args(), min_cells)
    assert finger_cpu.match_features(shuffled, fa.kernel_args()) == pytest.approx(want_a, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_geometric_check_equals_the_reference(seed: int) -> None:
    """The vectorised check against its definition: a template against itself under its true
    pairs (all paired) and under random ones (some), and two unrelated templates; sizes from
    a handful to 70 (padding past B's end included)."""
    from tests.reference_finger import paired_share_reference

    rng = np.random.default_rng(40 + seed)
    a = random_template(rng, int(rng.integers(8, 60)))
    b = a if seed < 4 else random_template(rng, int(rng.integers(5, 70)))
    fa, fb = features(a).kernel_args(), features(b).kernel_args()
    na, nb = fa[0].size, fb[0].size
    m = min(na, nb, 12)
    if seed < 2:
        pi = rng.choice(na, m, replace=False).astype(np.int64)
        pj = pi.copy()
    else:
        pi = rng.choice(na, m, replace=False).astype(np.int64)
        pj = rng.choice(nb, m, replace=False).astype(np.int64)
    order = rng.permutation(m).astype(np.int64)
    s = finger_cpu._new_scratch(na, nb, m)
    finger_cpu._probe_pairs(*fa, s)
    got = finger_cpu._paired_share(*fa[:3], *fb[:3], pi, pj, order, m, finger_cpu.PARAMS, s)
    want = paired_share_reference(fa, fb, [(pi[p], pj[p]) for p in order])
    assert got == pytest.approx(want, abs=1e-12)
    if seed < 2:
        assert got == pytest.approx(1.0)


def test_geometric_check_pairs_a_rigidly_moved_copy_in_full() -> None:
    """A copy rotated and shifted with no noise: every minutia pairs under the first hypothesis,
    all are in the common area, so the paired share is exactly 1; an unrelated print pairs far
    fewer."""
    rng = np.random.default_rng(11)
    a = random_template(rng, 40)
    angle, c = 0.3, math.cos(0.3)
    s = math.sin(0.3)
    # Rotation about the centre in the y-up frame the kernels use, so it is exactly rigid there.
    xa, ya, ta = features(a).kernel_args()[:3]
    xb = c * (xa - 200) - s * (ya + 210) + 200 + 7.0
    yb = s * (xa - 200) + c * (ya + 210) - 210 - 4.0
    tb = (ta + angle) % (2 * math.pi)
    n = xa.size
    pairs = np.arange(n, dtype=np.int64)
    order = np.arange(n, dtype=np.int64)
    s = finger_cpu._new_scratch(n, n, n)
    args = (xa, ya, ta, xb, yb, tb, pairs, pairs, order, n, finger_cpu.PARAMS, s)
    assert finger_cpu._paired_share(*args) == pytest.approx(1.0)
    other = features(random_template(rng, 40)).kernel_args()[:3]
    m = min(n, other[0].size)
    pairs_o = np.arange(m, dtype=np.int64)
    s = finger_cpu._new_scratch(n, other[0].size, m)
    unrelated = (xa, ya, ta, *other, pairs_o, pairs_o, pairs_o, m, finger_cpu.PARAMS, s)
    assert finger_cpu._paired_share(*unrelated) < 0.5


def test_geometric_check_never_raises_the_mcc_score() -> None:
    """The check only weighs the MCC score down (so a bound on MCC bounds the score), and a
    moved copy keeps more of it than an unrelated print does."""
    rng = np.random.default_rng(12)
    a = random_template(rng, 40)
    mate, other = moved(a, rng, 0.25, 12, -8), random_template(rng, 40)
    plain = finger_cpu.PARAMS.copy()
    plain[finger_cpu._GEOMETRIC_WEIGHT] = 0.0
    mc = finger_cpu.min_matchable_cells()
    fa = features(a).kernel_args()
    for b in (mate, other):
        fb = features(b).kernel_args()
        with_check = finger_cpu._match(*fa, *fb, mc, finger_cpu.PARAMS)
        without = finger_cpu._match(*fa, *fb, mc, plain)
        assert with_check <= without + 1e-12
    fm, fo = features(mate).kernel_args(), features(other).kernel_args()
    keep_mate = finger_cpu._match(*fa, *fm, mc, finger_cpu.PARAMS) / finger_cpu._match(
        *fa, *fm, mc, plain
    )
    keep_other = finger_cpu._match(*fa, *fo, mc, finger_cpu.PARAMS) / max(
        finger_cpu._match(*fa, *fo, mc, plain), 1e-12
    )
    assert keep_mate > keep_other

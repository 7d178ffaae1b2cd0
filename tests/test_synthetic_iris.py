"""matcher.synthetic.iris: the statistics the generator promises.

Measured with these seeds (2,000 impostor pairs of 8 x 128 x 2 codes, unrotated): mean fractional
HD 0.499-0.502; degrees of freedom p(1-p)/var about 230-260 with full masks (the generator is
calibrated to Daugman's 249) and about 165 with its default 10-40 % occlusion (fewer bits
compared, so fewer degrees of freedom: about 249 * 1340 / 2048). The bands below leave room for
the sampling error of the variance (about 3 % at 2,000 pairs) and a few percent of drift.
"""

from __future__ import annotations

import numpy as np
import pytest

from matcher.iris import IrisGeometry, hamming_distance
from matcher.iris_params import DAUGMAN_IMPOSTOR_DOF
from matcher.synthetic.iris import code_chunks, genuine_probes, random_codes, random_masks

GEO = IrisGeometry(8, 128, 2)


def _impostor_hd(n_pairs: int, seed: int, full_masks: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = random_codes(2 * n_pairs, GEO, rng)
    masks = np.ones_like(codes) if full_masks else random_masks(2 * n_pairs, GEO, rng)
    hd, _, _ = hamming_distance(
        codes[:n_pairs], masks[:n_pairs], codes[n_pairs:], masks[n_pairs:], 0
    )
    return hd


def _dof(hd: np.ndarray) -> float:
    p = float(hd.mean())
    return p * (1 - p) / float(hd.var())


def test_codes_are_bool_of_the_geometry_and_balanced() -> None:
    rng = np.random.default_rng(1)
    for geometry in (GEO, IrisGeometry(16, 256, 2), IrisGeometry(3, 64, 2)):
        codes = random_codes(50, geometry, rng)
        assert codes.shape == (50, *geometry.shape) and codes.dtype == np.bool_
        assert codes.flags.c_contiguous
        assert 0.45 < codes.mean() < 0.55
    assert random_codes(0, GEO, rng).shape == (0, *GEO.shape)


def test_bits_are_correlated_along_the_angle_only() -> None:
    codes = random_codes(300, GEO, np.random.default_rng(2))
    along = np.mean(codes == np.roll(codes, 1, axis=2))  # neighbouring columns
    across = np.mean(codes[:, :-1] == codes[:, 1:])  # neighbouring rings
    assert along > 0.8
    assert 0.45 < across < 0.55


@pytest.mark.parametrize("seed", [3, 4])
def test_impostor_distance_with_full_masks(seed: int) -> None:
    hd = _impostor_hd(2000, seed, full_masks=True)
    assert abs(hd.mean() - 0.5) < 0.005
    assert 0.8 * DAUGMAN_IMPOSTOR_DOF < _dof(hd) < 1.2 * DAUGMAN_IMPOSTOR_DOF


@pytest.mark.parametrize("seed", [5, 6])
def test_impostor_distance_with_masks(seed: int) -> None:
    hd = _impostor_hd(2000, seed, full_masks=False)
    assert abs(hd.mean() - 0.5) < 0.005
    assert 135 < _dof(hd) < 200
    # Rotation search lowers the impostor distances, but they stay well clear of genuine ones.
    rng = np.random.default_rng(seed)
    codes, masks = random_codes(400, GEO, rng), random_masks(400, GEO, rng)
    best, _, _ = hamming_distance(codes[:200], masks[:200], codes[200:], masks[200:], 8)
    assert 0.46 < best.mean() < 0.49 and best.min() > 0.33


@pytest.mark.parametrize(
    "occlusion", [(0.10, 0.40), (0.2, 0.25), (0.3, 0.3), (0.05, 0.06), (0.0, 0.05)]
)
@pytest.mark.parametrize("geometry", [GEO, IrisGeometry(16, 256, 2)], ids=str)
def test_occlusion_fraction_within_the_requested_range(
    geometry: IrisGeometry, occlusion: tuple[float, float]
) -> None:
    # Lids cover whole cells, so a mask lands at most a cell row or so under its target (measured
    # down to 1.4 % under at 8 x 128); it never goes over.
    lo, hi = occlusion
    masks = random_masks(1000, geometry, np.random.default_rng(7), occlusion)
    assert masks.shape == (1000, *geometry.shape) and masks.dtype == np.bool_
    frac = 1 - masks.reshape(1000, -1).mean(axis=1)
    assert frac.min() >= lo - 0.02 and frac.max() <= hi + 1e-9
    if hi - lo > 0.1:  # spread over the range, not piled at one end
        assert frac.min() < lo + 0.05 and frac.max() > hi - 0.05
    # Both phase bits of a sample share its validity.
    assert (masks[..., :1] == masks).all()


@pytest.mark.parametrize("occlusion", [(0.0, 0.0), (0.45, 0.6), (0.7, 0.8)])
def test_occlusion_fraction_at_the_ends_of_the_allowed_range(
    occlusion: tuple[float, float],
) -> None:
    # random_masks accepts any range in [0, 1); the promise is the same there.
    lo, hi = occlusion
    masks = random_masks(1000, GEO, np.random.default_rng(8), occlusion)
    frac = 1 - masks.reshape(1000, -1).mean(axis=1)
    assert frac.min() >= lo - 0.02, f"asked {occlusion}, got down to {frac.min():.3f}"
    assert frac.max() <= hi + 1e-9, f"asked {occlusion}, got up to {frac.max():.3f}"


@pytest.mark.parametrize("occlusion", [(-0.1, 0.2), (0.3, 0.2), (0.2, 1.0)])
def test_occlusion_range_is_checked(occlusion: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="occlusion range must lie in"):
        random_masks(3, GEO, np.random.default_rng(9), occlusion)


def test_genuine_probes() -> None:
    rng = np.random.default_rng(10)
    n = 400
    codes = random_codes(n, GEO, rng)
    masks = random_masks(n, GEO, rng)
    gp = genuine_probes(codes, rng, max_shift=8, noise=(0.10, 0.30))
    assert gp.codes.shape == gp.masks.shape == codes.shape
    assert gp.shift.dtype == np.int32 and (np.abs(gp.shift) <= 8).all()
    assert len(set(gp.shift.tolist())) == 17  # every rotation occurs
    assert ((gp.noise >= 0.10) & (gp.noise <= 0.30)).all()
    # The noise level is the fraction of bits flipped once the rotation is undone.
    for i in range(20):
        flipped = np.mean(np.roll(gp.codes[i], int(gp.shift[i]), axis=1) != codes[i])
        assert abs(flipped - gp.noise[i]) < 0.04
    # hamming_distance recovers the reported shift: np.roll(probe, shift) aligns with the code.
    hd, shift, _ = hamming_distance(gp.codes, gp.masks, codes, masks, 8)
    assert np.mean(shift == gp.shift) >= 0.99  # at 30 % noise a neighbour column rarely wins
    assert (np.abs(shift - gp.shift) <= 1).all()
    assert hd.max() < 0.36
    # With little noise, every time.
    quiet = genuine_probes(codes, rng, max_shift=8, noise=(0.0, 0.05))
    _, shift, _ = hamming_distance(quiet.codes, quiet.masks, codes, masks, 8)
    np.testing.assert_array_equal(shift, quiet.shift)
    # Masks are fresh captures, not the enrolled ones.
    assert not (gp.masks == masks).all(axis=(1, 2, 3)).any()


def test_code_chunks_are_reproducible_from_the_seed() -> None:
    def draw(seed: int, n: int = 10, chunk: int = 4) -> list:
        return list(code_chunks(n, GEO, seed, chunk=chunk, mask_pool=6))

    first, again, other = draw(12), draw(12), draw(13)
    assert [c.shape[0] for c, _ in first] == [4, 4, 2]
    for (c1, m1), (c2, m2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(m1, m2)
        assert c1.dtype == m1.dtype == np.bool_ and c1.shape == m1.shape == (
            c1.shape[0],
            *GEO.shape,
        )
    assert not all(np.array_equal(c1, c2) for (c1, _), (c2, _) in zip(first, other, strict=True))
    # Masks come from a pool of 6 patterns; codes are all different.
    codes = np.concatenate([c for c, _ in first])
    masks = np.concatenate([m for _, m in first])
    assert len({m.tobytes() for m in masks}) <= 6
    assert len({c.tobytes() for c in codes}) == 10
    assert draw(12, n=0) == []
    assert sum(c.shape[0] for c, _ in draw(14, n=9, chunk=16)) == 9

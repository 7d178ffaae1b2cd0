"""Fingerprint extraction: kernels against references, known answers, bad input, real data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher.errors import InvalidTemplate, QualityTooLow
from matcher.extract.fingerprint import FingerprintExtraction, extract_fingerprint
from matcher.extract.orientation import orientation_field
from matcher.extract.thinning import (
    crossing_numbers,
    crossing_numbers_reference,
    thin,
    thin_reference,
)
from matcher.templates import KIND_BIFURCATION, KIND_RIDGE_ENDING, FingerTemplate

PERIOD_PX = 9.0  # a typical adult ridge period at 500 dpi


def _angle_diff(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """|a - b| round the circle, radians."""
    return np.abs(np.mod(np.asarray(a) - b + math.pi, 2 * math.pi) - math.pi)


# --------------------------------------------------------------------- synthetic fingerprints


def _planted(
    points: list[tuple[float, float]], alpha: float, size: int = 320, carrier_phase: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Parallel ridges (period 9 px, dark) with a phase dislocation at each point.

    A phase spiral ``atan2`` in a sinusoidal carrier plants one minutia (K. G. Larkin, P. A.
    Fletcher, "A coherent framework for fingerprint analysis: are fingerprints holograms?", Optics
    Express 15(14), 2007). With the carrier running across the ISO direction ``alpha``, the extra
    ridge opens towards ``alpha``: the minutia's ISO direction is ``alpha`` whatever its kind. The
    kind follows the carrier phase at the point: phase 0 (ridge centre) gives a ridge ending,
    phase pi (valley centre) a bifurcation. Returns the image and the expected kind per point.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx_, dy_ = math.cos(alpha), -math.sin(alpha)  # direction alpha in pixel coordinates
    nx_, ny_ = -dy_, dx_  # the carrier runs along the normal
    c = size / 2.0
    psi = 2 * math.pi * ((xx - c) * nx_ + (yy - c) * ny_) / PERIOD_PX + carrier_phase
    for px, py in points:
        u = (xx - px) * dx_ + (yy - py) * dy_
        v = (xx - px) * nx_ + (yy - py) * ny_
        psi += np.arctan2(v, u)
    kinds = []
    for i, (px, py) in enumerate(points):
        phase = 2 * math.pi * ((px - c) * nx_ + (py - c) * ny_) / PERIOD_PX + carrier_phase
        for j, (qx, qy) in enumerate(points):
            if j != i:
                u = (px - qx) * dx_ + (py - qy) * dy_
                v = (px - qx) * nx_ + (py - qy) * ny_
                phase += math.atan2(v, u)
        kinds.append(KIND_RIDGE_ENDING if math.cos(phase) > 0 else KIND_BIFURCATION)
    image = np.clip(128 - 90 * np.cos(psi), 0, 255).astype(np.uint8)
    return image, np.array(kinds)


def _grid_points(size: int = 320) -> list[tuple[float, float]]:
    """Six points 80 px apart, well inside the image."""
    return [(float(x), float(y)) for y in (120, 200) for x in (90, 160, 230)] if size >= 320 else []


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.5, 4.0])
def test_planted_minutiae_found_with_kind_and_direction(alpha: float) -> None:
    points = _grid_points()
    image, kinds = _planted(points, alpha)
    t = extract_fingerprint(image).template
    found = 0
    for (px, py), kind in zip(points, kinds, strict=True):
        d = np.hypot(t.x - px, t.y - py)
        i = int(np.argmin(d))
        if d[i] <= 5.0 and t.kind[i] == kind and _angle_diff(t.theta[i], alpha) <= math.radians(20):
            found += 1
    assert found >= 5, (found, t.x, t.y, t.kind, t.theta, kinds)
    # Nothing much else: the rest of the pattern is clean parallel ridges.
    assert t.n <= len(points) + 2


@pytest.mark.parametrize("phase, kind", [(0.0, KIND_RIDGE_ENDING), (math.pi, KIND_BIFURCATION)])
def test_planted_kind_follows_carrier_phase(phase: float, kind: int) -> None:
    points = _grid_points()
    image, kinds = _planted(points, 0.0, carrier_phase=phase)
    t = extract_fingerprint(image).template
    assert np.count_nonzero(kinds == kind) >= 1
    for (px, py), k in zip(points, kinds, strict=True):
        if k == kind:
            d = np.hypot(t.x - px, t.y - py)
            assert d.min() <= 5.0 and t.kind[int(np.argmin(d))] == kind


@pytest.mark.parametrize("degrees", [0.0, 30.0, 60.0, 90.0, 135.0, 170.0])
def test_orientation_of_plain_sinusoid(degrees: float) -> None:
    # Ridges along the displayed direction `degrees` (ISO, counter-clockwise, y up).
    a = math.radians(degrees)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    across = -xx * math.sin(a) - yy * math.cos(a)  # coordinate along the ridge normal
    image = (128 + 80 * np.cos(2 * math.pi * across / PERIOD_PX)).astype(np.float32)
    field = orientation_field(image)
    centre = field.angle[32:96, 32:96]
    # The field is in pixel coordinates (y down): ISO angle a is pixel angle -a, modulo pi.
    err = np.abs(np.mod(centre + a + math.pi / 2, math.pi) - math.pi / 2)
    assert float(err.max()) < math.radians(2.0)
    assert float(field.coherence[32:96, 32:96].min()) > 0.9


def _match_fraction(
    a: FingerTemplate, b_x: np.ndarray, b_y: np.ndarray, b_theta: np.ndarray, tol_px: float
) -> float:
    """Fraction of a's minutiae with a minutia of b within tol_px and 25 degrees."""
    hits = 0
    for x, y, t in zip(a.x, a.y, a.theta, strict=True):
        ok = (np.hypot(b_x - x, b_y - y) <= tol_px) & (_angle_diff(b_theta, t) <= math.radians(25))
        hits += bool(ok.any())
    return hits / a.n


def _synthetic_finger() -> np.ndarray:
    points = [
        (90.0, 100.0),
        (170.0, 90.0),
        (240.0, 130.0),
        (110.0, 200.0),
        (200.0, 220.0),
        (150.0, 150.0),
        (250.0, 250.0),
    ]
    return _planted(points, 0.7)[0]


def test_rot90_rotates_minutiae() -> None:
    image = _synthetic_finger()
    a = extract_fingerprint(image).template
    r = extract_fingerprint(np.ascontiguousarray(np.rot90(image))).template
    # np.rot90 turns the picture a quarter counter-clockwise: (x, y) -> (y, W - 1 - x).
    x, y = r.x, r.y
    back_x, back_y = image.shape[1] - 1 - y, x
    assert _match_fraction(a, back_x, back_y, r.theta - math.pi / 2, 3.0) >= 0.8


def test_dpi_rescaling_keeps_minutiae() -> None:
    image = _synthetic_finger()
    a = extract_fingerprint(image).template
    big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    b = extract_fingerprint(big, dpi=1000).template
    assert b.dpi == 1000 and (b.width, b.height) == (big.shape[1], big.shape[0])
    assert _match_fraction(a, b.x / 2, b.y / 2, b.theta, 3.0) >= 0.8


def test_result_fields() -> None:
    image = _synthetic_finger()
    res = extract_fingerprint(image, position=3)
    assert isinstance(res, FingerprintExtraction)
    t = res.template
    assert (t.width, t.height, t.dpi, t.position) == (image.shape[1], image.shape[0], 500, 3)
    assert set(np.unique(t.kind)) <= {KIND_RIDGE_ENDING, KIND_BIFURCATION}
    assert t.quality.min() >= 1 and t.quality.max() <= 100
    assert 0 <= res.quality <= 100
    assert res.mask.shape == image.shape and res.mask.dtype == bool


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1), np.uint8),
        np.zeros((63, 300), np.uint8),
        np.zeros((300, 300, 3), np.uint8),
        np.zeros((300, 300), np.float32),
        np.zeros(300, np.uint8),
        np.broadcast_to(np.uint8(0), (20000, 20000)),  # a view: no 400 MB allocated
        [[0] * 100] * 100,
    ],
    ids=["1x1", "63-high", "3-D", "float", "1-D", "20000-square", "list"],
)
def test_unusable_arrays_are_invalid(image: np.ndarray) -> None:
    with pytest.raises(InvalidTemplate):
        extract_fingerprint(image)


def test_bad_dpi_and_rescaled_size_are_invalid() -> None:
    image = np.zeros((100, 100), np.uint8)
    with pytest.raises(InvalidTemplate):
        extract_fingerprint(image, dpi=1000)  # 50 px at 500 dpi
    with pytest.raises(InvalidTemplate):
        extract_fingerprint(np.zeros((3000, 3000), np.uint8), dpi=250)  # 6000 px at 500 dpi
    with pytest.raises(InvalidTemplate):
        extract_fingerprint(image, dpi=0)
    with pytest.raises(InvalidTemplate):
        extract_fingerprint(image, dpi=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["zeros", "flat", "noise", "big-noise", "speck", "stripes-40px"])
def test_no_finger_is_quality_too_low(kind: str) -> None:
    rng = np.random.default_rng(7)
    stripes = 128 + 100 * np.sin(np.arange(300) * 2 * np.pi / 40)
    image = {
        "big-noise": rng.integers(0, 256, (1200, 1200), dtype=np.uint8),
        "stripes-40px": np.repeat(stripes[None, :], 300, axis=0).astype(np.uint8),
        "zeros": np.zeros((300, 300), np.uint8),
        "flat": np.full((300, 300), 200, np.uint8),
        "noise": rng.integers(0, 256, (300, 300), dtype=np.uint8),
        "speck": np.pad(_synthetic_finger()[100:140, 100:140], 130, constant_values=128),
    }[kind]
    with pytest.raises(QualityTooLow):
        extract_fingerprint(image)


# ----------------------------------------------------------------- kernels vs. references


def _random_blobs(seed: int, shape: tuple[int, int] = (60, 70)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 2.0)
    return noise > 0.05 * seed


@pytest.mark.parametrize(
    "binary",
    [
        *[_random_blobs(s) for s in range(4)],
        np.zeros((5, 5), bool),
        np.ones((9, 9), bool),
        np.eye(12, dtype=bool),
        np.pad(np.ones((1, 1), bool), 2),
        np.ones((3, 20), bool),  # touches the image edge
    ],
)
def test_thinning_and_crossing_numbers_match_references(binary: np.ndarray) -> None:
    skel = thin(binary)
    np.testing.assert_array_equal(skel, thin_reference(binary))
    assert not (skel.astype(bool) & ~binary).any()  # thinning only removes pixels
    np.testing.assert_array_equal(crossing_numbers(skel), crossing_numbers_reference(skel))


def test_thinning_preserves_connectivity() -> None:
    # Each region keeps exactly one connected skeleton. Zhang-Suen may erase specks of a dozen
    # pixels (2 x 2 squares, 3 x 4 blobs); binarisation drops fragments that small beforehand.
    for seed in range(4):
        binary = _random_blobs(seed)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            binary.astype(np.uint8), connectivity=8
        )
        skel = thin(binary)
        for region in range(1, count):
            inside = (labels == region).astype(np.uint8) & skel
            pieces = cv2.connectedComponents(inside, connectivity=8)[0] - 1
            if stats[region, cv2.CC_STAT_AREA] >= 20:
                assert pieces == 1, (seed, region)
            else:
                assert pieces <= 1


def test_crossing_numbers_of_known_shapes() -> None:
    t = np.zeros((9, 11), np.uint8)
    t[4, 1:10] = 1  # horizontal line
    t[5:8, 5] = 1  # stem down from its middle
    cn = crossing_numbers(t)
    assert cn[4, 1] == 1 and cn[4, 9] == 1 and cn[7, 5] == 1  # the three ends
    assert cn[4, 3] == 2
    assert cn[4, 5] == 3  # the junction


# -------------------------------------------------------------------------------- real data


def _impression(folder: Path, finger: int, impression: int) -> np.ndarray:
    image = cv2.imread(str(folder / f"{finger}_{impression}.tif"), cv2.IMREAD_GRAYSCALE)
    if image is None:
        pytest.skip(f"cannot read {folder / f'{finger}_{impression}.tif'}")
    return image


@pytest.mark.realdata
def test_real_genuine_scores_above_impostor(shared_data_dir: Path) -> None:
    from matcher.finger import features, match

    folder = shared_data_dir / "fingerprint" / "fvc2002_db1_b"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    feats = {
        (f, i): features(extract_fingerprint(_impression(folder, f, i)).template)
        for f in (101, 102, 103)
        for i in (1, 2, 3)
    }
    genuine, impostor = [], []
    for a, b in itertools.combinations(sorted(feats), 2):
        (genuine if a[0] == b[0] else impostor).append(match(feats[a], feats[b]))
    assert np.mean(genuine) > 2 * np.mean(impostor) + 0.05, (genuine, impostor)
    assert np.median(genuine) > np.max(impostor)


@pytest.mark.realdata
def test_real_rot90_rotates_minutiae(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "fingerprint" / "fvc2002_db1_b"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    image = _impression(folder, 101, 1)
    a = extract_fingerprint(image).template
    r = extract_fingerprint(np.ascontiguousarray(np.rot90(image))).template
    back_x, back_y = image.shape[1] - 1 - r.y, r.x
    assert _match_fraction(a, back_x, back_y, r.theta - math.pi / 2, 4.0) >= 0.7

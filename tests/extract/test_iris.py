"""matcher.extract.iris: synthetic eyes with known answers, bad inputs, the limbus kernel against
its numpy reference, and a few real IITD images (marked ``realdata``)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from matcher.errors import InvalidTemplate, QualityTooLow
from matcher.extract.iris import IrisExtraction, extract_iris
from matcher.extract.iris_limbus import circle_scores
from matcher.iris import IrisGeometry, hamming_distance

GEO = IrisGeometry()
COLUMN_DEG = 360.0 / GEO.columns


def synthetic_eye(
    size: tuple[int, int] = (240, 320),
    centre: tuple[float, float] = (160.0, 122.0),
    pupil_r: float = 34.0,
    iris_r: float = 92.0,
    seed: int = 0,
    lashes: int = 0,
) -> np.ndarray:
    """Dark pupil, textured mid-grey iris, bright sclera, one reflection, optional lashes.

    The iris texture is smoothed noise with a feature size proportional to the iris radius, so
    a smaller eye is the same eye seen by a camera further away.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 205, np.float32)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), max(0.8, iris_r / 45.0))
    tex *= 28.0 / (tex.std() + 1e-6)
    cx, cy = centre
    yy, xx = np.mgrid[0:h, 0:w]
    rr = np.hypot(xx - cx, yy - cy)
    iris = rr <= iris_r
    img[iris] = 115.0 + tex[iris]
    img[rr <= pupil_r] = 18.0
    img = cv2.GaussianBlur(img, (0, 0), max(0.6, iris_r / 120.0))
    for _ in range(lashes):  # thin dark strokes hanging over the top of the iris
        x0 = rng.uniform(cx - iris_r, cx + iris_r)
        y0 = cy - iris_r * rng.uniform(0.8, 1.2)
        x1, y1 = x0 + rng.uniform(-0.2, 0.2) * iris_r, y0 + rng.uniform(0.15, 0.35) * iris_r
        cv2.line(img, (round(x0), round(y0)), (round(x1), round(y1)), 30.0, 1)
    spot = max(2, round(pupil_r / 8))
    cv2.circle(img, (round(cx + pupil_r / 3), round(cy - pupil_r / 3)), spot, 255.0, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def rotate_about(image: np.ndarray, centre: tuple[float, float], degrees: float) -> np.ndarray:
    """``image`` turned counter-clockwise on screen by ``degrees`` (OpenCV's convention)."""
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    h, w = image.shape
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def eye() -> tuple[np.ndarray, IrisExtraction]:
    img = synthetic_eye()
    return img, extract_iris(img)


# --- known answers ---------------------------------------------------------------------------


def test_synthetic_boundaries(eye: tuple[np.ndarray, IrisExtraction]) -> None:
    _, res = eye
    assert abs(res.pupil.cx - 160) < 2 and abs(res.pupil.cy - 122) < 2
    assert abs(res.pupil.r - 34) < 2
    assert abs(res.limbus.cx - 160) < 3 and abs(res.limbus.cy - 122) < 3
    assert abs(res.limbus.r - 92) < 4
    t = res.template
    assert t.code.shape == t.mask.shape == GEO.shape
    assert t.code.dtype == t.mask.dtype == np.bool_
    assert t.eye == "L"
    t.validate()
    q = res.quality
    assert 0.5 < q.usable_bits_fraction <= 1.0
    assert 0.0 <= q.occlusion < 0.3
    assert abs(q.pupil_iris_ratio - 34 / 92) < 0.05
    assert 0 <= q.focus <= 100 and 0 <= q.overall <= 100


@pytest.mark.parametrize("k", [-5, -2, 3, 7])
def test_rotation_is_a_column_shift(eye: tuple[np.ndarray, IrisExtraction], k: int) -> None:
    img, res = eye
    turned = extract_iris(rotate_about(img, (160.0, 122.0), k * COLUMN_DEG)).template
    a = res.template
    hd, shift, n_bits = hamming_distance(a.code, a.mask, turned.code, turned.mask, max_shift=12)
    # Columns run clockwise on screen; OpenCV turns counter-clockwise for positive angles, so the
    # turned code is the original rolled by -k and the best roll of the original is -k.
    assert abs(shift - (-k)) <= 1
    assert hd < 0.2
    assert n_bits > 1000
    # Without the rotation search the same pair is far apart.
    hd0, _, _ = hamming_distance(a.code, a.mask, turned.code, turned.mask, max_shift=0)
    assert abs(k) < 3 or hd0 > hd + 0.1


def test_different_texture_is_chance(eye: tuple[np.ndarray, IrisExtraction]) -> None:
    _, res = eye
    other = extract_iris(synthetic_eye(seed=7)).template
    a = res.template
    hd, _, _ = hamming_distance(a.code, a.mask, other.code, other.mask, max_shift=0)
    assert 0.4 < hd < 0.6


def test_smaller_eye_other_camera() -> None:
    """A 640x480 frame with a small, off-centre eye and lashes, as a distant camera sees it."""
    img = synthetic_eye((480, 640), (250.0, 300.0), pupil_r=13.0, iris_r=42.0, seed=3, lashes=40)
    res = extract_iris(img, eye="R")
    assert math.hypot(res.pupil.cx - 250, res.pupil.cy - 300) < 2.0
    assert abs(res.pupil.r - 13) < 2.0
    assert math.hypot(res.limbus.cx - 250, res.limbus.cy - 300) < 3.0
    assert abs(res.limbus.r - 42) < 3.0
    assert res.template.eye == "R"


def test_upper_lid_masks_top_sector_only_when_present(
    eye: tuple[np.ndarray, IrisExtraction],
) -> None:
    """An open eye keeps the top of its code; a lid with lashes over the top loses it there."""
    img, res = eye
    top_cols = slice(GEO.columns * 5 // 8 + 4, GEO.columns * 7 // 8 - 4)  # about straight up
    outer = slice(GEO.rings // 2, GEO.rings)
    assert res.template.mask[outer, top_cols].mean() > 0.5
    lidded = img.copy()
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    # Lid skin above a shallow parabola 0.45 iris radii above the centre, lashes on its margin.
    margin = 122.0 - 0.45 * 92.0 + 0.004 * (xx - 160.0) ** 2
    lidded[yy < margin] = 190
    rng = np.random.default_rng(1)
    for x0 in rng.uniform(70, 250, 60):
        y0 = 122.0 - 0.45 * 92.0 + 0.004 * (x0 - 160.0) ** 2
        cv2.line(lidded, (round(x0), round(y0 - 6)), (round(x0 + 3), round(y0 + 14)), 25, 1)
    masked = extract_iris(lidded).template.mask
    assert masked[outer, top_cols].mean() < 0.05
    sides = np.r_[0:8, GEO.columns - 8 : GEO.columns]
    assert masked[:, sides].mean() > 0.5


def test_large_image_is_scaled_back() -> None:
    """Boundaries come back in the caller's pixels even when segmentation ran on a copy."""
    img = synthetic_eye((960, 1280), (640.0, 488.0), pupil_r=136.0, iris_r=368.0, seed=5)
    res = extract_iris(img)
    assert math.hypot(res.pupil.cx - 640, res.pupil.cy - 488) < 6
    assert abs(res.pupil.r - 136) < 6
    assert abs(res.limbus.r - 368) < 12


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1), np.uint8),
        np.zeros((63, 320), np.uint8),
        np.broadcast_to(np.uint8(0), (20000, 20000)),  # a view: no memory behind it
        np.zeros((240, 320, 3), np.uint8),
        np.zeros((240, 320), np.float32),
        np.zeros((240, 320), np.uint16),
        np.zeros((2, 240, 320), np.uint8),
        [[0] * 320] * 240,
        None,
    ],
    ids=["1x1", "63px", "20000px", "colour", "float", "uint16", "3d", "list", "none"],
)
def test_unusable_arrays_are_invalid(image: object) -> None:
    t = time.perf_counter()
    with pytest.raises(InvalidTemplate):
        extract_iris(image)  # type: ignore[arg-type]
    assert time.perf_counter() - t < 1.0


def test_bad_eye_label() -> None:
    with pytest.raises(InvalidTemplate):
        extract_iris(synthetic_eye(), eye="left")


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((240, 320), np.uint8),
        np.full((240, 320), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (4096, 4096), dtype=np.uint8),
        np.tile(np.arange(320, dtype=np.uint8), (240, 1)),
    ],
    ids=["black", "white", "noise", "noise-4096", "ramp"],
)
def test_not_an_eye_is_refused(image: np.ndarray) -> None:
    t = time.perf_counter()
    with pytest.raises(QualityTooLow):
        extract_iris(image)
    assert time.perf_counter() - t < 5.0


def test_quality_error_says_why() -> None:
    with pytest.raises(QualityTooLow, match="pupil"):
        extract_iris(np.full((240, 320), 128, np.uint8))


# --- numba kernel against its numpy reference ------------------------------------------------


def circle_scores_reference(
    deriv,
    valid,
    thetas,
    rho0,
    drho,
    offs_x,
    offs_y,
    radii,
    min_count,
    max_offset_frac,
    min_clearance,
):  # type: ignore[no-untyped-def]
    """Slow numpy twin of ``iris_limbus._circle_scores``."""
    out = np.full((offs_x.size, offs_y.size, radii.size), -np.inf)
    c, s = np.cos(thetas), np.sin(thetas)
    for a, ox in enumerate(offs_x):
        for b, oy in enumerate(offs_y):
            d0 = math.hypot(ox, oy)
            for m, r in enumerate(radii):
                if d0 > max_offset_frac * r or r - d0 < min_clearance:
                    continue
                e = ox * s - oy * c
                q = r * r - e * e
                rho = ox * c + oy * s + np.sqrt(np.maximum(q, 0.0))
                j = np.floor((rho - rho0) / drho + 0.5).astype(np.int64)
                inside = (q > 0) & (j >= 0) & (j < deriv.shape[1])
                k = np.flatnonzero(inside)
                k = k[valid[k, j[k]]]
                if k.size >= min_count:
                    out[a, b, m] = float(deriv[k, j[k]].astype(np.float64).sum()) / k.size
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("valid_share", [1.0, 0.6, 0.0])
def test_circle_scores_matches_reference(seed: int, valid_share: float) -> None:
    rng = np.random.default_rng(seed)
    deriv = rng.standard_normal((24, 60)).astype(np.float32)
    valid = rng.random((24, 60)) < valid_share
    thetas = np.sort(rng.uniform(0, 2 * math.pi, 24))
    offs = np.array([-4.0, -1.5, 0.0, 2.0, 5.0])
    radii = np.arange(5.0, 40.0, 1.7)
    args = (deriv, valid, thetas, 3.0, 0.75, offs, offs[::-1].copy(), radii, 6, 0.3, 4.0)
    got = circle_scores(*args)
    want = circle_scores_reference(*args)
    assert got.shape == want.shape
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)
    if valid_share == 0.0:
        assert not finite.any()


def test_circle_scores_rejects_mismatched_arrays() -> None:
    with pytest.raises(ValueError):
        circle_scores(
            np.zeros((4, 5), np.float32),
            np.ones((4, 6), bool),
            np.zeros(4),
            0.0,
            1.0,
            np.zeros(1),
            np.zeros(1),
            np.ones(1),
            1,
        )


# --- real images -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_genuine_below_impostor(shared_data_dir: Path) -> None:
    root = shared_data_dir / "iris" / "iitd"
    if not root.is_dir():
        pytest.skip(f"IITD iris images are absent from {root}")
    eyes = [("001", "L"), ("010", "L"), ("040", "R")]
    codes: dict[tuple[str, str], list[IrisExtraction]] = {}
    for subject, side in eyes:
        files = sorted((root / subject).glob(f"*_{side}.png"))[:3]
        assert len(files) == 3, f"expected 3 images of {subject}{side}"
        codes[(subject, side)] = [
            extract_iris(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), eye=side) for f in files
        ]
    genuine, impostor = [], []
    keys = list(codes)
    for i, ka in enumerate(keys):
        for kb in keys[i:]:
            for ia, ra in enumerate(codes[ka]):
                for ib, rb in enumerate(codes[kb]):
                    if ka == kb and ib <= ia:
                        continue
                    a, b = ra.template, rb.template
                    hd, _, _ = hamming_distance(a.code, a.mask, b.code, b.mask, max_shift=12)
                    (genuine if ka == kb else impostor).append(hd)
    assert max(genuine) < 0.3 < min(impostor), (genuine, impostor)
    assert max(genuine) + 0.1 < min(impostor)


# Boundaries checked by eye on the images (pixels, +-6): cases where a dark lash mass at the
# image border (074_L), bright skin between lashes filled as reflections (075_R), or the skin
# beyond the eye corners (002/03_L) once took the place of the pupil or of the limbus.
HARD_BOUNDARIES = {
    "074/01_L": ((109, 94, 46), (101, 92, 107)),
    "074/03_L": ((203, 104, 43), (196, 104, 103)),
    "075/09_R": ((193, 93, 47), (195, 91, 109)),
    "002/03_L": ((176, 81, 52), (170, 79, 116)),
}


@pytest.mark.parametrize("name", sorted(HARD_BOUNDARIES))
def test_real_hard_boundaries(shared_data_dir: Path, name: str) -> None:
    path = shared_data_dir / "iris" / "iitd" / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"IITD iris image {path} is absent")
    res = extract_iris(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), eye=name[-1])
    for found, (cx, cy, r) in zip((res.pupil, res.limbus), HARD_BOUNDARIES[name], strict=True):
        assert math.hypot(found.cx - cx, found.cy - cy) < 6.0, (name, found)
        assert abs(found.r - r) < 6.0, (name, found)

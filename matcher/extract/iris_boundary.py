"""Iris boundaries (pupil, limbus) as ellipses, polar sampling and robust contour fits.

Shared by the segmentation steps. A circle is an :class:`Ellipse` with ``rx == ry``.

Angles: ``theta`` is measured in image coordinates, ``x = cx + r cos(theta)``,
``y = cy + r sin(theta)`` with ``y`` pointing down, so ``theta`` grows clockwise on screen and
``theta = pi / 2`` points to the bottom of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Ellipse:
    """A boundary in pixels of the caller's image: centre, semi-axes and the x-axis tilt.

    ``angle_rad`` is the direction of the ``rx`` axis. ``r`` is the equivalent circle radius
    ``sqrt(rx * ry)``.
    """

    cx: float
    cy: float
    rx: float
    ry: float
    angle_rad: float = 0.0

    @property
    def r(self) -> float:
        return math.sqrt(self.rx * self.ry)

    @property
    def is_circle(self) -> bool:
        return self.rx == self.ry

    def radius_at(self, theta: FloatArray) -> FloatArray:
        """Distance from the centre to the boundary in direction ``theta`` (radians)."""
        d = np.asarray(theta, np.float64) - self.angle_rad
        return 1.0 / np.sqrt((np.cos(d) / self.rx) ** 2 + (np.sin(d) / self.ry) ** 2)

    def points(self, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Boundary points ``(x, y)`` in direction ``theta`` from the centre."""
        r = self.radius_at(theta)
        return self.cx + r * np.cos(theta), self.cy + r * np.sin(theta)

    def scaled(self, factor: float) -> Ellipse:
        """The same boundary in an image scaled by ``factor`` (pixel centres kept aligned)."""
        return Ellipse(
            (self.cx + 0.5) * factor - 0.5,
            (self.cy + 0.5) * factor - 0.5,
            self.rx * factor,
            self.ry * factor,
            self.angle_rad,
        )


def circle(cx: float, cy: float, r: float) -> Ellipse:
    return Ellipse(float(cx), float(cy), float(r), float(r), 0.0)


def polar_sample(
    image: F32Array, cx: float, cy: float, thetas: FloatArray, radii: FloatArray
) -> tuple[F32Array, npt.NDArray[np.bool_]]:
    """Bilinear samples ``image[cy + r sin t, cx + r cos t]``, shape ``(len(thetas), len(radii))``.

    Returns the samples and a validity array (False where the point falls outside the image).
    """
    h, w = image.shape
    c = np.cos(thetas)[:, None]
    s = np.sin(thetas)[:, None]
    xs = (cx + radii[None, :] * c).astype(np.float32)
    ys = (cy + radii[None, :] * s).astype(np.float32)
    valid = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    out = cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.float32), valid


def fit_circle(x: FloatArray, y: FloatArray) -> tuple[float, float, float]:
    """Algebraic least-squares circle (I. Kasa, IEEE Trans. Instrum. Meas. 25(1), 1976)."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2.0, sol[1] / 2.0
    r2 = sol[2] + cx * cx + cy * cy
    return float(cx), float(cy), float(math.sqrt(max(r2, 1e-12)))


def robust_circle(
    x: FloatArray, y: FloatArray, weights: FloatArray | None = None, rounds: int = 4
) -> tuple[tuple[float, float, float], npt.NDArray[np.bool_]] | None:
    """Circle fit with iterative rejection of points beyond 2.5 robust sigmas of the residual.

    Returns ``((cx, cy, r), inliers)`` or None with fewer than 5 usable points.
    """
    keep = np.ones(x.size, bool) if weights is None else weights > 0
    if keep.sum() < 5:
        return None
    fit = fit_circle(x[keep], y[keep])
    for _ in range(rounds):
        res = np.hypot(x - fit[0], y - fit[1]) - fit[2]
        mad = float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        tol = max(2.5 * 1.4826 * mad, 0.75)
        new = np.abs(res) <= tol
        if weights is not None:
            new &= weights > 0
        if new.sum() < 5 or np.array_equal(new, keep):
            keep = new if new.sum() >= 5 else keep
            break
        keep = new
        fit = fit_circle(x[keep], y[keep])
    return fit, keep


def fit_ellipse_or_circle(
    x: FloatArray, y: FloatArray, max_axis_ratio: float = 1.25
) -> Ellipse | None:
    """Robust circle, then an ellipse through its inliers when they go round most of the centre.

    The ellipse is kept only when it is plausible (axis ratio below ``max_axis_ratio``, centre
    near the circle's) and fits the inliers with under 70 % of the circle's mean residual;
    otherwise the circle is returned.
    """
    rc = robust_circle(x, y)
    if rc is None:
        return None
    (cx, cy, r), keep = rc
    xi, yi = x[keep], y[keep]
    ang = np.arctan2(yi - cy, xi - cx)
    # Angular coverage: the largest gap between consecutive inlier angles.
    a_sorted = np.sort(ang)
    gaps = np.diff(np.concatenate([a_sorted, a_sorted[:1] + 2 * math.pi]))
    if xi.size >= 12 and float(gaps.max()) < 0.6 * math.pi:
        pts = np.column_stack([xi, yi]).astype(np.float32)
        (ex, ey), (w, h), deg = cv2.fitEllipseDirect(pts)
        if w > 0 and h > 0:
            rx, ry = w / 2.0, h / 2.0
            ratio = max(rx, ry) / min(rx, ry)
            if ratio < max_axis_ratio and math.hypot(ex - cx, ey - cy) < 0.25 * r:
                ell = Ellipse(float(ex), float(ey), float(rx), float(ry), math.radians(deg))
                # Keep the ellipse only if it explains the points clearly better than the circle:
                # an eyelid edge glued to one side otherwise stretches it.
                res_c = np.abs(np.hypot(xi - cx, yi - cy) - r)
                ang_e = np.arctan2(yi - ell.cy, xi - ell.cx)
                res_e = np.abs(np.hypot(xi - ell.cx, yi - ell.cy) - ell.radius_at(ang_e))
                if float(np.mean(res_e)) < 0.7 * float(np.mean(res_c)):
                    return ell
    return circle(cx, cy, r)

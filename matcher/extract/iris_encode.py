"""Iris code from the polar image: log-Gabor phase quadrants with fragile bits masked.

Algorithm steps
1. Occluded samples take the iris median so that eyelids and lashes do not ring into the
   filter responses of their neighbours.
2. Each row is filtered along the angle with a one-dimensional log-Gabor filter
   (D. Field, JOSA A 4(12), 1987; as used by L. Masek, "Recognition of human iris patterns for
   biometric identification", UWA 2003), applied in the Fourier domain over positive frequencies
   only, which gives the complex analytic response. With ``bits = 2 s`` the code holds ``s``
   scales, each an octave above the last.
3. Rows are pooled into ``rings`` with Gaussian radial weights over the encoded band, which
   makes the filter two-dimensional (angular log-Gabor x radial Gaussian).
4. Every ``POLAR_ANGULAR_PER_COLUMN``-th angular sample is a code column. The two bits of a
   scale are the signs of the real and imaginary parts: the phase quadrant (J. Daugman, 1993).
5. Mask: a sample is valid when most of its filter support is unoccluded; then the weakest
   ``FRAGILE_FRACTION`` of each bit channel's valid responses are masked as fragile
   (K. Hollingsworth, K. Bowyer, P. Flynn, "The best bits in an iris code", IEEE TPAMI 31(6),
   2009).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from matcher.extract.iris_normalize import polar_grid
from matcher.extract.iris_params import (
    BAND_INNER,
    BAND_OUTER,
    FRAGILE_FRACTION,
    GABOR_RADIAL_SIGMA_FRAC,
    GABOR_SIGMA_ON_F,
    GABOR_WAVELENGTH_COLUMNS,
    MIN_SUPPORT_VALID,
)
from matcher.iris import IrisGeometry

F32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def log_gabor(n: int, wavelength: float, sigma_on_f: float) -> npt.NDArray[np.float64]:
    """Frequency response over ``np.fft.fftfreq(n)``: log-Gabor on positive frequencies only."""
    f = np.fft.fftfreq(n)
    f0 = 1.0 / wavelength
    out = np.zeros(n)
    pos = f > 0
    out[pos] = np.exp(-(np.log(f[pos] / f0) ** 2) / (2 * math.log(sigma_on_f) ** 2))
    return out


def _ring_weights(n_r: int, rings: int) -> npt.NDArray[np.float64]:
    t, _ = polar_grid(n_r, 1)
    centres = BAND_INNER + (np.arange(rings) + 0.5) / rings * (BAND_OUTER - BAND_INNER)
    sigma = GABOR_RADIAL_SIGMA_FRAC * (BAND_OUTER - BAND_INNER) + 0.5 / n_r
    w = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / sigma) ** 2)
    w[w < 1e-3] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def encode(
    polar: F32Array, valid: BoolArray, geometry: IrisGeometry
) -> tuple[BoolArray, BoolArray, F32Array]:
    """``(code, mask, magnitude)``; code and mask bool ``geometry.shape``, magnitude per sample.

    ``polar`` is ``(n_radial, n_angular)`` with ``n_angular`` a multiple of ``geometry.columns``.
    """
    rings, columns, bits = geometry.shape
    n_r, n_a = polar.shape
    step = n_a // columns
    fill = float(np.median(polar[valid])) if valid.any() else float(polar.mean())
    img = np.where(valid, polar, fill).astype(np.float64)
    img -= img.mean(axis=1, keepdims=True)
    spectrum = np.fft.fft(img, axis=1)
    weights = _ring_weights(n_r, rings)
    # einsum without optimisation stays off BLAS: a threaded BLAS call for an 8 x 48 product costs
    # more in thread wake-ups than the arithmetic, worse on a loaded server.
    valid_f = np.einsum("rk,ka->ra", weights, valid.astype(np.float64), optimize=False)
    scales = max(1, bits // 2)
    code = np.zeros(geometry.shape, bool)
    mask = np.zeros(geometry.shape, bool)
    magnitude = np.zeros((rings, columns), np.float32)
    for s in range(scales):
        wavelength = GABOR_WAVELENGTH_COLUMNS * step / (2.0**s)
        resp = np.fft.ifft(spectrum * log_gabor(n_a, wavelength, GABOR_SIGMA_ON_F)[None], axis=1)
        ring_resp = np.einsum("rk,ka->ra", weights, resp[:, ::step], optimize=False)
        # Angular support of the filter: about one wavelength centred on the sample.
        half = max(1, round(wavelength / 2))
        k = np.arange(-half, half + 1)
        idx = (np.arange(0, n_a, step)[:, None] + k[None, :]) % n_a
        support = valid_f[:, idx].mean(axis=2)
        ok = support >= MIN_SUPPORT_VALID
        for part, values in enumerate((ring_resp.real, ring_resp.imag)):
            b = 2 * s + part
            if b >= bits:
                break
            code[:, :, b] = values > 0
            strength = np.abs(values)
            m = ok.copy()
            if m.sum() > 0:
                thr = np.quantile(strength[m], FRAGILE_FRACTION)
                m &= strength > thr
            mask[:, :, b] = m
        if s == 0:
            magnitude = np.abs(ring_resp).astype(np.float32)
    return code, mask, magnitude

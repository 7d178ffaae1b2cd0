"""Image and minutia quality of a fingerprint extraction (NFIQ 2-like in spirit, not NFIQ 2).

Algorithm steps:

1. Local clarity: the correlation between the normalised image and its enhanced (ideal ridge)
   version, per pixel over about a ridge period: near 1 where the grey levels really follow the
   clean ridge pattern, near 0 on smudges, scars and noise (cf. the local clarity score of
   NFIQ 2, E. Tabassi et al., NISTIR 8382, 2021).
2. Image quality = 100 x (area term) x (mean over the foreground of sqrt(coherence x clarity)),
   with the area term rising to 1 at :data:`FULL_QUALITY_FOREGROUND_PX2`.
3. Minutia quality = 100 x sqrt(coherence x clarity) at the minutia x a term rising to 1 at
   :data:`QUALITY_BORDER_PX` from the foreground edge, clipped to 1..100.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from matcher.extract import fingerprint_params as xp
from matcher.extract.minutiae import Minutiae
from matcher.extract.orientation import OrientationField, coarse_blur

__all__ = ["local_clarity", "image_quality", "minutia_quality"]

Float32Array = npt.NDArray[np.float32]


def local_clarity(normalised: Float32Array, enhanced: Float32Array) -> Float32Array:
    """Step 1: float32 ``(H, W)`` in [0, 1], local correlation of image and enhanced image."""
    s = xp.NORMALISE_SIGMA_PX

    def blur(a: Float32Array) -> Float32Array:
        return coarse_blur(a, s)

    # Ridges are dark in the image and negative in the enhanced image: same sign.
    num = blur(normalised * enhanced)
    den = np.sqrt(np.maximum(blur(normalised * normalised) * blur(enhanced * enhanced), 0.0))
    return np.clip(num / np.maximum(den, np.float32(1e-6)), 0.0, 1.0).astype(np.float32)


def image_quality(
    field: OrientationField, clarity: Float32Array, mask: npt.NDArray[np.bool_]
) -> int:
    """Step 2: image quality 0-100 (0 when there is no foreground)."""
    area = int(mask.sum())
    if area == 0:
        return 0
    local = np.sqrt(field.coherence[mask] * clarity[mask])
    area_term = min(1.0, area / xp.FULL_QUALITY_FOREGROUND_PX2)
    return int(np.clip(round(100.0 * area_term * float(local.mean())), 0, 100))


def minutia_quality(
    minutiae: Minutiae, field: OrientationField, clarity: Float32Array
) -> npt.NDArray[np.uint8]:
    """Step 3: uint8 ``(n,)`` per-minutia quality in 1..100."""
    yi = minutiae.y.astype(np.int64)
    xi = minutiae.x.astype(np.int64)
    local = np.sqrt(field.coherence[yi, xi] * clarity[yi, xi]).astype(np.float64)
    border = np.minimum(1.0, minutiae.border_distance / xp.QUALITY_BORDER_PX)
    return np.clip(np.rint(100.0 * local * border), 1, 100).astype(np.uint8)

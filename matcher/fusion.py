"""Score fusion: several fingers' similarities into one person-level score.

Fingers of one person are scored by the same matcher, so their similarities share one scale and
need no per-finger normalisation. The fused score is the **sum rule** over the probe's fingers,
divided by their count (a mean): a finger the candidate has no enrolment for scores 0. The sum
rule is the combination least hurt by errors in the individual scores (Kittler, Hatef, Duin,
Matas, "On combining classifiers", IEEE TPAMI 20(3), 1998) and the usual choice for fingers of
one matcher (Ross, Nandakumar, Jain, *Handbook of Multibiometrics*, 2006, ch. 4). Dividing by
the probe's finger count keeps the fused score in [0, 1] and comparable across probes with
different numbers of fingers, so one threshold serves a 2-finger and a 10-finger probe alike;
what FMR a threshold gives is measured, never assumed (``DESIGN.md``, Decisions).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate


def fuse_fingers(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Fused person scores from per-finger scores.

    ``scores``: float ``(candidates, fingers)``, one column per probe finger, each in [0, 1];
    NaN where the candidate has no enrolled finger at that position (counts as 0).
    Returns float64 ``(candidates,)`` in [0, 1].
    """
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[1] < 1:
        raise InvalidTemplate(f"scores must be (candidates, fingers >= 1), got {s.shape}")
    present = s[~np.isnan(s)]
    if present.size and (present.min() < 0.0 or present.max() > 1.0):
        raise InvalidTemplate("finger scores must lie in [0, 1]")
    return np.asarray(np.nansum(s, axis=1) / s.shape[1], np.float64)

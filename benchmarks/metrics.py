"""Verification accuracy from genuine and impostor scores: DET curve, EER, FNMR at a fixed FMR.

Pure numpy, shared by the accuracy harnesses (our matchers and the peer benchmarks under
``benchmarks/peers/``). Conventions, the same everywhere in this module:

- Scores are similarities: higher means more alike. A comparison is *accepted* at threshold
  ``t`` when ``score >= t``. So ``FMR(t)`` is the share of impostor scores ``>= t`` and
  ``FNMR(t)`` the share of genuine scores ``< t`` (FVC2000/2002 definitions). Tied scores are
  accepted or rejected together, whatever their label.
- The curve is evaluated at every distinct score and at ``+inf`` (reject all), which visits
  every distinct (FMR, FNMR) operating point of the step functions.
- For distances (lower = more alike) pass negated scores.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray


class DetCurve(NamedTuple):
    """Operating points, ordered by increasing threshold (FMR falls, FNMR rises)."""

    thresholds: NDArray[np.float64]
    fmr: NDArray[np.float64]
    fnmr: NDArray[np.float64]


def _scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} scores are empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} scores must be finite")
    return np.sort(a)


def det_curve(genuine: ArrayLike, impostor: ArrayLike) -> DetCurve:
    """FMR and FNMR at every distinct score and at ``+inf``.

    Args:
        genuine: similarity scores of same-identity comparisons.
        impostor: similarity scores of different-identity comparisons.

    Returns:
        :class:`DetCurve` with ``thresholds`` ascending (the last is ``+inf``), and
        ``fmr[i] = mean(impostor >= thresholds[i])``, ``fnmr[i] = mean(genuine < thresholds[i])``.
        The first point accepts everything (``fnmr = 0``, ``fmr = 1``), the last rejects
        everything (``fmr = 0``, ``fnmr = 1``).
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    thr = np.append(np.unique(np.concatenate([g, i])), np.inf)
    fnmr = np.searchsorted(g, thr, side="left") / g.size
    # Count the accepted impostors first: (n - k) / n is exact where 1 - k / n may not be.
    fmr = (i.size - np.searchsorted(i, thr, side="left")) / i.size
    return DetCurve(thr, fmr, fnmr)


def eer(genuine: ArrayLike, impostor: ArrayLike) -> float:
    """Equal error rate, interpolated where the FMR and FNMR curves cross.

    Walks the operating points of :func:`det_curve` to the first one with ``FNMR >= FMR``. If
    the two rates are equal there, that is the EER; otherwise the EER is where the straight line
    between that point and the one before it has ``FNMR == FMR``. Perfect separation gives 0,
    identical genuine and impostor distributions give 0.5.
    """
    c = det_curve(genuine, impostor)
    d = c.fnmr - c.fmr  # non-decreasing; -1 at the first point, +1 at the last
    k = int(np.argmax(d >= 0))
    if d[k] == 0 or k == 0:
        return float(c.fmr[k])
    a = -d[k - 1] / (d[k] - d[k - 1])
    return float(c.fmr[k - 1] + a * (c.fmr[k] - c.fmr[k - 1]))


def eer_interval(genuine: ArrayLike, impostor: ArrayLike) -> tuple[float, float]:
    """The FVC2000 EER bracket ``(EER_low, EER_high)``; FVC reports their mean as the EER.

    With ``t1`` the highest threshold where ``FNMR <= FMR`` and ``t2`` the lowest where
    ``FNMR >= FMR``, the bracket is ``[FNMR(t1), FMR(t1)]`` when ``FNMR(t1) + FMR(t1) <=
    FMR(t2) + FNMR(t2)`` and ``[FMR(t2), FNMR(t2)]`` otherwise (Maio et al., "FVC2000:
    Fingerprint Verification Competition", IEEE TPAMI 2002).
    """
    c = det_curve(genuine, impostor)
    d = c.fnmr - c.fmr
    t1 = int(np.flatnonzero(d <= 0)[-1])
    t2 = int(np.argmax(d >= 0))
    if c.fnmr[t1] + c.fmr[t1] <= c.fmr[t2] + c.fnmr[t2]:
        return float(c.fnmr[t1]), float(c.fmr[t1])
    return float(c.fmr[t2]), float(c.fnmr[t2])


def fnmr_at_fmr(
    genuine: ArrayLike, impostor: ArrayLike, fmr: float, *, require_resolvable: bool = True
) -> float | None:
    """Lowest FNMR over the thresholds whose FMR is at most ``fmr`` (e.g. FMR100 for 1e-2).

    Args:
        genuine, impostor: similarity scores.
        fmr: the FMR bound, in (0, 1].
        require_resolvable: when true (default) return ``None`` if there are fewer than
            ``1 / fmr`` impostor scores: one false match would already exceed the bound, so the
            figure would only say "no impostor accepted" (FMR = 0), not measure ``fmr``.

    Returns:
        The FNMR, or ``None`` when not resolvable.
    """
    if not 0.0 < fmr <= 1.0:
        raise ValueError("fmr must be in (0, 1]")
    c = det_curve(genuine, impostor)
    if require_resolvable and np.asarray(impostor).size * fmr < 1.0:
        return None
    # FMR is non-increasing and FNMR non-decreasing in the threshold: take the first point in.
    k = int(np.argmax(c.fmr <= fmr))
    return float(c.fnmr[k])

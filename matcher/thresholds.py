"""Decision thresholds from measured impostor score distributions, for a target FMR or FPIR.

A threshold is never a guessed constant: each modality's impostor scores are measured on real
images (``python -m benchmarks calibrate``, which writes ``matcher/thresholds.json``), and this
module turns a target rate into the score that rate allows.

- Where the measurement resolves the rate (at least :data:`MIN_TAIL_COUNT` impostor scores at or
  beyond the threshold), the threshold is the empirical quantile.
- Below that, the tail is extrapolated with an exponential fitted to the most match-like
  :data:`TAIL_FRACTION` of impostor scores, at most :data:`MAX_TAIL` of them (a
  peaks-over-threshold model with shape 0; see S. Coles, *An Introduction to Statistical
  Modeling of Extreme Values*, Springer 2001, ch. 4).
  Iris impostor distances are binomial-like (Daugman, "How iris recognition works", 2004),
  whose tails fall faster than an exponential, so the extrapolated iris threshold is on the
  strict side: the FMR it promises is an upper bound there.
- 1:N: the chance that a probe matches any of ``N`` enrolled persons falsely is at most
  ``N * FMR`` (union bound), so a target FPIR uses the FMR threshold for ``FPIR / N``.

Scores follow the service's convention: finger similarity (higher = more alike) and normalised
iris HD (lower = more alike). Thread-safe (immutable).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_TAIL_COUNT = 10
TAIL_FRACTION = 0.05
MAX_TAIL = 4000  # scores kept: resolves FMR down from 1e-2 on 400k impostors, and stays small
DEFAULT_FILE = "thresholds.json"
MODALITIES = ("finger", "iris")


@dataclass(frozen=True)
class Calibration:
    """One modality's impostor distribution, reduced to what threshold look-ups need.

    ``tail``: the most match-like impostor scores, best first (descending similarity, or
    ascending distance). ``n_impostor``: how many impostor comparisons were measured.
    ``scale``: the exponential tail's scale, fitted to the top ``TAIL_FRACTION``.
    """

    modality: str
    higher_is_better: bool
    n_impostor: int
    tail: tuple[float, ...]
    scale: float
    source: str

    @classmethod
    def fit(
        cls, modality: str, impostor: npt.ArrayLike, higher_is_better: bool, source: str
    ) -> Calibration:
        s = np.asarray(impostor, np.float64).ravel()
        s = s[np.isfinite(s)]
        if s.size < 100:
            raise ValueError(f"{modality}: {s.size} impostor scores; calibration needs >= 100")
        best_first = np.sort(s)[::-1] if higher_is_better else np.sort(s)
        m = min(MAX_TAIL, max(MIN_TAIL_COUNT * 2, int(math.ceil(TAIL_FRACTION * s.size))))
        tail = best_first[:m]
        # Maximum-likelihood exponential scale of the excesses over the tail's boundary.
        excess = np.abs(tail - tail[-1])
        scale = float(max(excess.mean(), 1e-6))
        return cls(modality, higher_is_better, int(s.size), tuple(map(float, tail)), scale, source)

    def threshold(self, fmr: float) -> float:
        """The least strict score whose false-match rate is at most ``fmr``."""
        if not 0.0 < fmr < 1.0:
            raise ValueError(f"target rate must be in (0, 1), got {fmr}")
        k = fmr * self.n_impostor  # impostor scores allowed at or beyond the threshold
        tail = self.tail
        if k >= MIN_TAIL_COUNT and int(k) < len(tail):
            # Strictly beyond the (k+1)-th best impostor: at most k impostors accepted.
            nxt = tail[int(k)]
            return math.nextafter(nxt, math.inf if self.higher_is_better else -math.inf)
        # Exponential tail: P(beyond boundary + x) = p_tail * exp(-x / scale).
        p_tail = len(tail) / self.n_impostor
        x = self.scale * math.log(p_tail / fmr) if fmr < p_tail else 0.0
        edge = tail[-1]
        return edge + x if self.higher_is_better else edge - x

    def fmr(self, threshold: float) -> float:
        """The false-match rate a threshold gives (the inverse of :meth:`threshold`)."""
        tail = np.asarray(self.tail)
        sign = 1.0 if self.higher_is_better else -1.0
        beyond = int(np.count_nonzero(sign * (tail - threshold) >= 0))
        if MIN_TAIL_COUNT <= beyond < len(tail):
            return beyond / self.n_impostor
        p_tail = len(tail) / self.n_impostor
        x = sign * (threshold - tail[-1])
        return float(p_tail * math.exp(-max(x, 0.0) / self.scale))

    def accepts(self, score: float, threshold: float) -> bool:
        return score >= threshold if self.higher_is_better else score <= threshold

    def to_json(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "higher_is_better": self.higher_is_better,
            "n_impostor": self.n_impostor,
            "scale": self.scale,
            "source": self.source,
            "tail": [round(v, 6) for v in self.tail],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        try:
            tail = tuple(float(v) for v in d["tail"])
            c = cls(
                str(d["modality"]),
                bool(d["higher_is_better"]),
                int(d["n_impostor"]),
                tail,
                float(d["scale"]),
                str(d.get("source", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed calibration entry: {e}") from e
        if c.n_impostor < len(tail) or len(tail) < MIN_TAIL_COUNT or not c.scale > 0:
            raise ValueError(f"implausible calibration for {c.modality}")
        return c


@dataclass(frozen=True)
class Thresholds:
    """Calibrations of every modality, and the default target rates of the deployment."""

    finger: Calibration
    iris: Calibration
    default_fmr: float = 1e-4
    default_fpir: float = 1e-3

    def of(self, modality: str) -> Calibration:
        if modality == "finger":
            return self.finger
        if modality == "iris":
            return self.iris
        raise ValueError(f"unknown modality {modality!r}")

    def for_fmr(self, modality: str, fmr: float) -> float:
        return self.of(modality).threshold(fmr)

    def for_fpir(self, modality: str, fpir: float, gallery_size: int) -> float:
        return self.of(modality).threshold(fpir / max(1, gallery_size))

    def table(self, gallery_size: int) -> list[tuple[str, str, float, float]]:
        """``(modality, "fmr"|"fpir", rate, threshold)`` rows for the usual operating points."""
        rows = []
        for m in MODALITIES:
            for r in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
                rows.append((m, "fmr", r, self.for_fmr(m, r)))
            for r in (1e-2, 1e-3, 1e-4):
                rows.append((m, "fpir", r, self.for_fpir(m, r, gallery_size)))
        return rows

    @classmethod
    def load(cls, path: str | Path | None = None) -> Thresholds:
        """From ``path``, or the calibration shipped in the package."""
        if path is None:
            text = resources.files("matcher").joinpath(DEFAULT_FILE).read_text()
        else:
            text = Path(path).read_text()
        d = json.loads(text)
        return cls(
            Calibration.from_json(d["finger"]),
            Calibration.from_json(d["iris"]),
            float(d.get("default_fmr", 1e-4)),
            float(d.get("default_fpir", 1e-3)),
        )

    def save(self, path: str | Path) -> None:
        d = {
            "default_fmr": self.default_fmr,
            "default_fpir": self.default_fpir,
            "finger": self.finger.to_json(),
            "iris": self.iris.to_json(),
        }
        Path(path).write_text(json.dumps(d, indent=1) + "\n")

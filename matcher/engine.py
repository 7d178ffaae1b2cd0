"""The matching engine: the durable store and the in-memory galleries kept equal, and decisions.

Writes go to the store first and reach the galleries only after the store has committed, under
one write lock, so the galleries apply changes in commit order; a crash in between loses nothing
(the galleries are rebuilt from the store at start-up). Reads (verify, identify) take no write
lock: the galleries are thread-safe and the numba kernels release the GIL.

Decisions (thresholds from :mod:`matcher.thresholds`, measured, never guessed):

- Scores: ``finger`` = fused finger similarity in [0, 1] (mean over the probe's fingers, a finger
  the person lacks counting 0, :func:`matcher.fusion.fuse_fingers`); ``iris`` = mean normalised
  HD over the probe's eyes (Daugman's normalisation). Per-sample scores ``finger.<position>`` and
  ``iris.<eye>`` come with them.
- With several modalities in a probe, each is tested at ``rate / modalities`` and the decision
  is a match when any passes, so the combined false-match rate stays at most ``rate`` (union
  bound). ``decided_by`` names the modalities that passed (``"none"`` if none did).
- 1:N: FPIR at the gallery's size maps to a per-comparison FMR of ``FPIR / N``
  (:meth:`matcher.thresholds.Thresholds.for_fpir`). Candidates are ranked by the strongest
  evidence: the lowest calibrated FMR any of their modality scores reaches.

This module knows nothing of gRPC; :mod:`matcher.service` maps it onto the wire.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher import snapshot
from matcher.errors import InvalidTemplate, NothingToCompare, UnknownId
from matcher.finger import FingerFeatures, features
from matcher.finger_gallery import warm_up as warm_up_fingers
from matcher.gallery import IrisGallery
from matcher.iris import IrisGeometry, IrisTemplate, normalize_hd
from matcher.iris_params import DEFAULT_MAX_SHIFT_COLUMNS
from matcher.person_gallery import PersonFingerGallery
from matcher.rwlock import SharedExclusiveLock
from matcher.store import Actor, Biometrics, PersonInfo, Store
from matcher.templates import FingerTemplate
from matcher.thresholds import Thresholds

EYES = ("L", "R")
IRIS_NO_OVERLAP = 1.0  # a normalised HD no real comparison reaches: "could not compare"
LOAD_BATCH = 20_000
IRIS_SCREENED_FROM = 50_000  # codes per eye from which 1:N short-lists with the screened search
MAX_RESULTS = 1_000  # candidates one Identify may ask for: an ABIS list, not a gallery dump


@dataclass(frozen=True)
class Decision:
    """A 1:1 answer."""

    match: bool
    scores: dict[str, float]
    decided_by: str
    threshold: float
    fmr: float


@dataclass(frozen=True)
class Candidate:
    person_id: str
    scores: dict[str, float]
    decided_by: str
    evidence_fmr: float  # the lowest calibrated FMR among the candidate's modality scores


@dataclass(frozen=True)
class Identification:
    """A 1:N answer: every candidate above threshold, best first."""

    candidates: list[Candidate]
    threshold: float
    fpir: float
    decided_by: str


def _features_of(templates: list[FingerTemplate]) -> list[FingerFeatures]:
    return [features(t) for t in templates]


@dataclass(frozen=True)
class LoadReport:
    """How the galleries were filled at start-up."""

    source: str  # "snapshot" (brought up to date with the store) or "store" (rebuilt)
    persons: int
    persons_read: int  # persons whose samples were read from the store
    templates_read: int
    persons_dropped: int  # snapshot persons gone or changed in the store since
    seconds: float
    note: str  # why a snapshot was not used ("" when it was, or none was asked for)


@dataclass(frozen=True)
class SnapshotReport:
    persons: int
    bytes: int
    seconds: float
    changes_blocked_s: float  # how long enrolments and updates waited


@dataclass
class _Probe:
    fingers: dict[int, FingerFeatures] = field(default_factory=dict)
    irises: dict[str, IrisTemplate] = field(default_factory=dict)

    def modalities(self) -> list[str]:
        return [m for m, have in (("finger", self.fingers), ("iris", self.irises)) if have]


class Engine:
    """Galleries (fingers by position, one iris gallery per eye) over a :class:`Store`."""

    def __init__(
        self,
        store: Store,
        thresholds: Thresholds,
        geometry: IrisGeometry | None = None,
        max_shift: int = DEFAULT_MAX_SHIFT_COLUMNS,
    ) -> None:
        self.store = store
        self.thresholds = thresholds
        self.geometry = geometry or IrisGeometry()
        self._fingers = PersonFingerGallery()
        self._irises = {e: IrisGallery(self.geometry, max_shift, eye=e) for e in EYES}
        self._person_of_row: dict[int, str] = {}
        self._row_of_person: dict[str, int] = {}
        self._write = threading.Lock()  # store commits and gallery changes in one order
        self._galleries = SharedExclusiveLock()  # searches shared, applying a change exclusive
        self._snapshotting = threading.Lock()
        self._changes = 0  # changes applied, counted under self._write
        self._changes_at_snapshot = 0

    # ---------------------------------------------------------------------------- loading
    def load(
        self, progress: Any = None, snapshot_path: str | os.PathLike[str] | None = None
    ) -> LoadReport:
        """Fill the galleries (start-up): from the snapshot at ``snapshot_path`` brought up to
        date with the store when there is a usable one, else from the store alone.
        ``progress(done_templates)`` optional, called while templates are read from the store."""
        t0 = time.perf_counter()
        warm_up_fingers()  # compiled now, not in the first request after a fresh install
        now = self.store.person_states()
        rows: npt.NDArray[np.int64] | None = None
        dropped = 0
        note = ""
        if snapshot_path is not None:
            try:
                snap = snapshot.read(snapshot_path, self.store.sealer, self._iris_layout())
            except snapshot.SnapshotUnusable as exc:
                note = str(exc)
            else:
                ch = snapshot.changes(snap.states, now)
                self._fingers, self._irises = snap.fingers, snap.irises
                for r in ch.drop.tolist():
                    self._drop(r)
                rows, dropped = ch.load, int(ch.drop.size)
        read = self._load_rows(rows, progress)
        self._person_of_row = dict(zip(now.row_ids.tolist(), now.person_ids, strict=True))
        self._row_of_person = {p: r for r, p in self._person_of_row.items()}
        return LoadReport(
            source="store" if rows is None else "snapshot",
            persons=len(self._person_of_row),
            persons_read=len(now.person_ids) if rows is None else int(rows.size),
            templates_read=read,
            persons_dropped=dropped,
            seconds=time.perf_counter() - t0,
            note=note,
        )

    def _load_rows(self, rows: npt.NDArray[np.int64] | None, progress: Any) -> int:
        """Add these persons' samples (None: everyone's) from the store; templates read."""
        if rows is not None and not rows.size:
            return 0
        done = 0
        by_row: dict[int, dict[int, FingerTemplate]] = {}
        for frows, positions, templates in self.store.iter_fingers(LOAD_BATCH, rows):
            for r, p, t in zip(frows.tolist(), positions.tolist(), templates, strict=True):
                by_row.setdefault(r, {})[p] = t
            done += len(templates)
            if progress:
                progress(done)
        ids = list(by_row)
        with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="amayesh-load") as pool:
            for start in range(0, len(ids), LOAD_BATCH):
                chunk = ids[start : start + LOAD_BATCH]
                persons = [by_row[r] for r in chunk]
                flat = [t for p in persons for t in p.values()]
                # Cylinders take ~1 ms a finger and their kernels release the GIL: all cores.
                parts = [flat[i : i + 500] for i in range(0, len(flat), 500)]
                built = iter([f for part in pool.map(_features_of, parts) for f in part])
                self._fingers.add(
                    np.asarray(chunk, np.int64), [{pos: next(built) for pos in p} for p in persons]
                )
        for iris_rows, eyes, iris_templates in self.store.iter_irises(LOAD_BATCH, rows):
            for eye in EYES:
                sel = [k for k, e in enumerate(eyes) if e == eye]
                if sel:
                    self._irises[eye].add(
                        iris_rows[sel],
                        np.stack([iris_templates[k].code for k in sel]),
                        np.stack([iris_templates[k].mask for k in sel]),
                    )
            done += len(iris_templates)
            if progress:
                progress(done)
        return done

    def _iris_layout(self) -> dict[str, dict[str, Any]]:
        """What a snapshot's iris galleries must have been built with to be reused here."""
        return {e: snapshot.layout(g.state()[0]) for e, g in self._irises.items()}

    def save_snapshot(self, path: str | os.PathLike[str]) -> SnapshotReport:
        """Write the galleries to ``path`` (sealed with the store key; see :mod:`matcher.snapshot`).

        Changes wait while the galleries' state is copied (a few seconds a million templates),
        not while it is written; searches never wait. One snapshot at a time: a second call
        waits for the first."""
        with self._snapshotting:
            t0 = time.perf_counter()
            with self._write:
                states = self.store.person_states()
                fingers = self._fingers.state()
                irises = {e: g.state() for e, g in self._irises.items()}
                changes = self._changes
            blocked = time.perf_counter() - t0
            nbytes = snapshot.write(path, self.store.sealer, states, fingers, irises)
            self._changes_at_snapshot = changes
            return SnapshotReport(
                persons=len(states.person_ids),
                bytes=nbytes,
                seconds=time.perf_counter() - t0,
                changes_blocked_s=blocked,
            )

    @property
    def changes_since_snapshot(self) -> int:
        """Enrolments, updates and deletes applied since the last :meth:`save_snapshot` (since
        start-up, if none)."""
        return self._changes - self._changes_at_snapshot

    # ---------------------------------------------------------------------------- writes
    def enroll(
        self,
        person_id: str,
        bio: Biometrics,
        actor: Actor,
        labels: Mapping[str, str] | None = None,
    ) -> PersonInfo:
        self._check_enrolment(bio)
        with self._write:
            row = self.store.enroll(person_id, bio, actor, dict(labels or {}))
            with self._galleries.exclusive():
                self._apply(row, person_id, bio)
            self._changes += 1
        return self.store.info(person_id)

    def update(
        self,
        person_id: str,
        bio: Biometrics,
        actor: Actor,
        labels: Mapping[str, str] | None = None,
    ) -> PersonInfo:
        self._check_enrolment(bio, allow_empty=labels is not None)
        with self._write:
            info = self.store.update(
                person_id, bio, actor, None if labels is None else dict(labels)
            )
            row, full = self.store.biometrics(person_id, actor)
            with self._galleries.exclusive():  # searches see the old samples or the new, never none
                self._drop(info.row_id)
                self._apply(row, person_id, full)
            self._changes += 1
        return info

    def delete(self, person_id: str, actor: Actor) -> None:
        with self._write:
            row = self.store.delete(person_id, actor)
            with self._galleries.exclusive():
                self._drop(row)
            self._changes += 1

    def _check_enrolment(self, bio: Biometrics, allow_empty: bool = False) -> None:
        if not bio.fingers and not bio.irises and not allow_empty:
            raise InvalidTemplate("an enrolment needs at least one finger or iris")
        for pos, t in bio.fingers.items():
            if pos not in range(1, 11):
                raise InvalidTemplate(f"finger position must be 1-10 (ISO), got {pos}")
            features(t)  # fails here, before the store commits, if the gallery would refuse it
        for eye, it in bio.irises.items():
            if eye not in EYES:
                raise InvalidTemplate(f"eye must be 'L' or 'R', got {eye!r}")
            if it.code.shape != self.geometry.shape:
                raise InvalidTemplate(
                    f"iris code of shape {it.code.shape}; this service holds {self.geometry.shape}"
                )
            it.validate()

    def _apply(self, row: int, person_id: str, bio: Biometrics) -> None:
        if bio.fingers:
            self._fingers.add([row], [dict(bio.fingers)])
        for eye, t in bio.irises.items():
            self._irises[eye].add([row], t.code[None], t.mask[None])
        self._person_of_row[row] = person_id
        self._row_of_person[person_id] = row

    def _drop(self, row: int) -> None:
        if row in self._fingers:
            self._fingers.remove([row])
        for g in self._irises.values():
            if row in g:
                g.remove([row])
        name = self._person_of_row.pop(row, None)
        if name is not None:
            self._row_of_person.pop(name, None)

    # ---------------------------------------------------------------------------- reads
    def row_of(self, person_id: str) -> int:
        row = self._row_of_person.get(person_id)
        if row is None:
            raise UnknownId(f"no person enrolled as {person_id!r}")
        return row

    def counts(self) -> dict[str, int]:
        return {
            "persons": len(self._row_of_person),
            "fingers": sum(self._fingers.fingers_enrolled().values()),
            "irises": sum(len(g) for g in self._irises.values()),
        }

    def _probe(
        self, fingers: Mapping[int, FingerTemplate], irises: Mapping[str, IrisTemplate]
    ) -> _Probe:
        if not fingers and not irises:
            raise InvalidTemplate("a probe needs at least one finger or iris")
        p = _Probe()
        for pos, t in fingers.items():
            if pos not in range(1, 11):
                raise InvalidTemplate(f"finger position must be 1-10 (ISO), got {pos}")
            p.fingers[pos] = features(t)
        for eye, it in irises.items():
            if eye not in EYES:
                raise InvalidTemplate(f"eye must be 'L' or 'R', got {eye!r}")
            if it.code.shape != self.geometry.shape:
                raise InvalidTemplate(
                    f"iris code of shape {it.code.shape}; this service holds {self.geometry.shape}"
                )
            it.validate()
            p.irises[eye] = it
        return p

    def _iris_scores(self, probe: _Probe, rows: list[int]) -> dict[int, dict[str, float]]:
        """Normalised HD per row and probe eye the row has enrolled."""
        out: dict[int, dict[str, float]] = {r: {} for r in rows}
        for eye, it in probe.irises.items():
            g = self._irises[eye]
            have = [r for r in rows if r in g]
            if not have:
                continue
            hd, _, bits = g.score(it.code, it.mask, have)
            nhd = normalize_hd(np.where(np.isfinite(hd), hd, 0.5), bits)
            for r, h, ok in zip(have, nhd.tolist(), np.isfinite(hd).tolist(), strict=True):
                out[r][eye] = float(h) if ok else IRIS_NO_OVERLAP
        return out

    def _scores_of(self, probe: _Probe, rows: list[int]) -> dict[int, dict[str, float]]:
        scores: dict[int, dict[str, float]] = {r: {} for r in rows}
        if probe.fingers:
            finger_rows = [r for r in rows if r in self._fingers]
            for c in self._fingers.score(probe.fingers, finger_rows) if finger_rows else []:
                s = scores[c.id]
                s["finger"] = c.score
                for pos, v in c.finger_scores.items():
                    s[f"finger.{pos}"] = v
        if probe.irises:
            for r, per_eye in self._iris_scores(probe, rows).items():
                if per_eye:
                    # An eye the person lacks counts as chance (0.5), like a missing finger's 0.
                    vals = [per_eye.get(e, 0.5) for e in probe.irises]
                    scores[r]["iris"] = float(np.mean(vals))
                    for e, v in per_eye.items():
                        scores[r][f"iris.{e}"] = v
        return scores

    def _decide(
        self, scores: dict[str, float], modalities: list[str], rate: float
    ) -> tuple[list[str], dict[str, float]]:
        per = rate / len(modalities)
        thresholds = {m: self.thresholds.for_fmr(m, per) for m in modalities}
        passed = [
            m
            for m in modalities
            if m in scores and self.thresholds.of(m).accepts(scores[m], thresholds[m])
        ]
        return passed, thresholds

    def verify(
        self,
        person_id: str,
        fingers: Mapping[int, FingerTemplate],
        irises: Mapping[str, IrisTemplate],
        target_fmr: float | None = None,
    ) -> Decision:
        rate = self._rate(target_fmr, self.thresholds.default_fmr)
        probe = self._probe(fingers, irises)
        with self._galleries.shared():
            row = self.row_of(person_id)
            scores = self._scores_of(probe, [row])[row]
        modalities = [m for m in probe.modalities() if m in scores]
        if not modalities:
            raise NothingToCompare(
                f"{person_id!r} has none of the probe's samples enrolled (fingers "
                f"{sorted(probe.fingers)}, eyes {sorted(probe.irises)})"
            )
        passed, thresholds = self._decide(scores, modalities, rate)
        shown = passed[0] if passed else modalities[0]
        return Decision(
            match=bool(passed),
            scores=scores,
            decided_by="+".join(passed) or "none",
            threshold=thresholds[shown],
            fmr=rate,
        )

    def identify(
        self,
        fingers: Mapping[int, FingerTemplate],
        irises: Mapping[str, IrisTemplate],
        restrict_to: list[str] | None = None,
        max_results: int = 10,
        target_fpir: float | None = None,
    ) -> Identification:
        rate = self._rate(target_fpir, self.thresholds.default_fpir)
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidTemplate(f"max_results must be 1 to {MAX_RESULTS}, got {max_results}")
        probe = self._probe(fingers, irises)
        with self._galleries.shared():
            return self._identify(probe, restrict_to, max_results, rate)

    def _identify(
        self, probe: _Probe, restrict_to: list[str] | None, max_results: int, rate: float
    ) -> Identification:
        modalities = probe.modalities()
        if restrict_to:
            rows = sorted({self.row_of(p) for p in restrict_to})
        else:
            rows = self._shortlist(probe, max_results)
        n = len(restrict_to) if restrict_to else max(1, len(self._row_of_person))
        per_comparison = rate / n
        scores = self._scores_of(probe, rows)
        out: list[Candidate] = []
        for r in rows:
            s = scores[r]
            present = [m for m in modalities if m in s]
            if not present:
                continue
            passed, _ = self._decide(s, modalities, per_comparison)
            if passed:
                evidence = min(self.thresholds.of(m).fmr(s[m]) for m in present)
                out.append(Candidate(self._person_of_row[r], s, "+".join(passed), evidence))
        out.sort(key=lambda c: (c.evidence_fmr, c.person_id))
        shown = modalities[0]
        threshold = self.thresholds.for_fmr(shown, per_comparison / len(modalities))
        return Identification(out[:max_results], threshold, rate, shown)

    def duplicates_of(
        self,
        row: int,
        fingers: Mapping[int, FingerTemplate],
        irises: Mapping[str, IrisTemplate],
        fmr: float,
        max_results: int = 20,
        among: set[int] | None = None,
    ) -> list[tuple[int, dict[str, float]]]:
        """Enrolled persons other than ``row`` whose samples match these at a per-comparison
        ``fmr`` (the batch deduplication's question), best first: ``(row, scores)``. ``among``
        limits the answer to those rows."""
        probe = self._probe(fingers, irises)
        modalities = probe.modalities()
        with self._galleries.shared():
            rows = [r for r in self._shortlist(probe, max_results) if r != row]
            if among is not None:
                rows = [r for r in rows if r in among]
            scores = self._scores_of(probe, rows)
        out = []
        for r in rows:
            passed, _ = self._decide(scores[r], modalities, fmr)
            if passed:
                present = [m for m in modalities if m in scores[r]]
                evidence = min(self.thresholds.of(m).fmr(scores[r][m]) for m in present)
                out.append((evidence, r, scores[r]))
        out.sort(key=lambda e: (e[0], e[1]))
        return [(r, s) for _, r, s in out[:max_results]]

    def person_of(self, row: int) -> str:
        return self._person_of_row[row]

    def rows(self) -> list[int]:
        return sorted(self._person_of_row)

    def _shortlist(self, probe: _Probe, max_results: int) -> list[int]:
        want = max(4 * max_results, 50)
        rows: set[int] = set()
        if probe.fingers and len(self._fingers):
            rows.update(c.id for c in self._fingers.search(probe.fingers, k=want))
        for eye, it in probe.irises.items():
            g = self._irises[eye]
            if len(g):
                # Large galleries: the screened search (a quarter of each code first). It only
                # short-lists; scores come from the exact 1:1 below. Its screen (raw HD 0.40 on
                # the sample) sits far above any decision threshold (normalised HD 0.29 at
                # FMR 1e-4), and its recall of the exact top-1 measured 1.0 (README, Iris engine).
                exact = len(g) < IRIS_SCREENED_FROM
                found = g.search(it.code, it.mask, k=min(want, len(g)), exact=exact)
                hd, ids = found[0], found[1]
                rows.update(int(i) for i, h in zip(ids, hd, strict=True) if i >= 0 and h < 1)
        return sorted(rows)

    @staticmethod
    def _rate(value: float | None, default: float) -> float:
        if value is None or value == 0:
            return default
        if not (isinstance(value, float | int) and 0 < value < 1) or math.isnan(value):
            raise InvalidTemplate(f"a target rate must be in (0, 1), got {value!r}")
        return float(value)

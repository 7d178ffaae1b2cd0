"""Person-level fingerprint search: up to ten fingers per person, known positions, fused scores.

One :class:`~matcher.finger_gallery.FingerGallery` per ISO/IEC 19794-2 finger position (1 right
thumb ... 10 left little), each keyed by the person's id. A search:

1. each probe finger searches its own position's gallery (indexed, or exhaustive) for
   ``per_finger`` candidates; the union of their persons is the short list;
2. every probe finger is scored 1:1 against the short-listed persons' enrolled finger at the same
   position (exactly the exhaustive matcher's score);
3. :func:`matcher.fusion.fuse_fingers` fuses them (mean over the probe's fingers, a finger the
   person lacks scoring 0); candidates come back best first with their per-finger scores.

A mate found by any one finger's index is scored on all fingers, so a person is missed only when
every probe finger's index misses them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.finger import FingerFeatures, features
from matcher.finger_gallery import FingerGallery
from matcher.fusion import fuse_fingers
from matcher.ids import IdIndex, as_ids
from matcher.templates import FingerTemplate

#: ISO/IEC 19794-2 finger positions a person can have enrolled (0, "unknown", cannot be fused).
POSITIONS = tuple(range(1, 11))

Fingers = Mapping[int, FingerTemplate | FingerFeatures]


@dataclass(frozen=True)
class PersonCandidate:
    """One person in a search answer: fused ``score`` in [0, 1] and the per-finger scores by
    position (0.0 where the person has no enrolled finger at a probe position)."""

    id: int
    score: float
    finger_scores: dict[int, float]


def _checked(fingers: Fingers, what: str) -> dict[int, FingerFeatures]:
    if not isinstance(fingers, Mapping) or not fingers:
        raise InvalidTemplate(
            f"{what}: expected a non-empty mapping of finger position -> template"
        )
    out: dict[int, FingerFeatures] = {}
    for pos, t in fingers.items():
        if (
            isinstance(pos, bool)
            or not isinstance(pos, int | np.integer)
            or int(pos) not in POSITIONS
        ):
            raise InvalidTemplate(f"{what}: finger position must be 1-10 (ISO), got {pos!r}")
        if isinstance(t, FingerTemplate) and t.position not in (0, int(pos)):
            raise InvalidTemplate(
                f"{what}: the template at position {int(pos)} says it is position {t.position}"
            )
        if not isinstance(t, FingerTemplate | FingerFeatures):
            raise InvalidTemplate(f"{what}: position {int(pos)} is not a FingerTemplate")
        out[int(pos)] = t if isinstance(t, FingerFeatures) else features(t)
    return out


class PersonFingerGallery:
    """Persons with up to ten fingers each; add, remove, 1:1 :meth:`verify`, 1:N :meth:`search`."""

    def __init__(self) -> None:
        self._by_position = {p: FingerGallery() for p in POSITIONS}
        self._persons = IdIndex()  # rows unused: membership only
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._persons)

    def __contains__(self, person_id: object) -> bool:
        return person_id in self._persons

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self._by_position.values()) + 16 * len(self._persons)

    def fingers_enrolled(self) -> dict[int, int]:
        """Templates held per finger position."""
        return {p: len(g) for p, g in self._by_position.items()}

    def add(self, ids: object, persons: Sequence[Fingers]) -> None:
        """Add persons under new int64 ids, each a mapping ``position -> template``. All or
        nothing: a duplicate id or a malformed finger raises before anything changes."""
        ids_a = as_ids(ids)
        if len(persons) != ids_a.size:
            raise InvalidTemplate(f"{ids_a.size} ids for {len(persons)} persons")
        uniq = IdIndex.unique_new(ids_a)
        checked = [_checked(f, f"person {int(i)}") for i, f in zip(ids_a, persons, strict=True)]
        with self._lock:
            self._persons.check_absent(uniq)
            for pos, gallery in self._by_position.items():
                have = [k for k, f in enumerate(checked) if pos in f]
                if have:  # ids are new to every position's gallery, so this cannot refuse
                    gallery.add(ids_a[have], [checked[k][pos] for k in have])
            self._persons.insert(ids_a, np.zeros(ids_a.size, np.int64))

    def state(self) -> dict[int, dict[str, npt.NDArray[Any]]]:
        """Each position's :meth:`FingerGallery.state` (the persons are their ids' union)."""
        with self._lock:
            return {pos: g.state() for pos, g in self._by_position.items()}

    @classmethod
    def from_state(
        cls, states: Mapping[int, Mapping[str, npt.NDArray[Any]]], where: str
    ) -> PersonFingerGallery:
        """The gallery :meth:`state` gave; :class:`InvalidTemplate` if a position is missing or
        its arrays are inconsistent."""
        if set(states) != set(POSITIONS):
            raise InvalidTemplate(f"{where}: expected finger positions {list(POSITIONS)}")
        g = cls()
        g._by_position = {
            pos: FingerGallery.from_state(states[pos], f"{where}, finger {pos}")
            for pos in POSITIONS
        }
        persons = np.unique(np.concatenate([fg.ids() for fg in g._by_position.values()]))
        g._persons.insert(persons, np.zeros(persons.size, np.int64))
        return g

    def remove(self, ids: object) -> None:
        """Remove persons (all their fingers). Unknown ids raise before anything changes."""
        ids_a = np.unique(as_ids(ids))
        with self._lock:
            self._persons.find(ids_a)  # raises UnknownId naming the missing ones
            for gallery in self._by_position.values():
                present = gallery.has(ids_a)
                if present.any():
                    gallery.remove(ids_a[present])
            self._persons.delete(ids_a)

    def _scores(
        self, probe: dict[int, FingerFeatures], ids: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """``(len(ids), len(probe))`` per-finger scores, NaN where the person lacks the finger."""
        out = np.full((ids.size, len(probe)), np.nan)
        for col, (pos, f) in enumerate(probe.items()):
            gallery = self._by_position[pos]
            have = np.flatnonzero(gallery.has(ids))
            if have.size:
                out[have, col] = gallery.score(f, ids[have])
        return out

    def _answer(
        self, probe: dict[int, FingerFeatures], ids: npt.NDArray[np.int64], scores: np.ndarray
    ) -> list[PersonCandidate]:
        fused = fuse_fingers(scores)
        order = np.lexsort((ids, -fused))
        return [
            PersonCandidate(
                id=int(ids[r]),
                score=float(fused[r]),
                finger_scores={
                    pos: (0.0 if np.isnan(scores[r, c]) else float(scores[r, c]))
                    for c, pos in enumerate(probe)
                },
            )
            for r in order
        ]

    def verify(self, person_id: int, fingers: Fingers) -> PersonCandidate:
        """1:1: the probe fingers against one enrolled person (UnknownId if absent)."""
        probe = _checked(fingers, "probe")
        ids = as_ids(person_id)
        with self._lock:
            self._persons.find(ids)
            return self._answer(probe, ids, self._scores(probe, ids))[0]

    def score(self, fingers: Fingers, ids: object) -> list[PersonCandidate]:
        """1:1 against each of ``ids`` (all must be enrolled), best first, ties by id."""
        probe = _checked(fingers, "probe")
        ids_a = np.unique(as_ids(ids))
        with self._lock:
            self._persons.find(ids_a)
            return self._answer(probe, ids_a, self._scores(probe, ids_a)) if ids_a.size else []

    def search(
        self,
        fingers: Fingers,
        k: int = 10,
        threshold: float | None = None,
        exhaustive: bool = False,
        per_finger: int | None = None,
    ) -> list[PersonCandidate]:
        """1:N: the best ``k`` persons (fused score descending, ties by id), only those at or
        above ``threshold`` when given. ``exhaustive=True`` scores every enrolled person (the
        yardstick); otherwise each probe finger's indexed search short-lists ``per_finger``
        persons (default ``max(4 k, 50)``)."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidTemplate(f"k must be a positive integer, got {k!r}")
        if threshold is not None and not (0.0 <= float(threshold) <= 1.0):
            raise InvalidTemplate(f"threshold must be in [0, 1], got {threshold!r}")
        probe = _checked(fingers, "probe")
        with self._lock:
            if exhaustive:
                ids = self._persons.ids.copy()
            else:
                want = per_finger if per_finger is not None else max(4 * int(k), 50)
                found = [np.zeros(0, np.int64)]
                for pos, f in probe.items():
                    scores, hits = self._by_position[pos].search(f, want)
                    found.append(hits[np.isfinite(scores)])  # drop the -inf / -1 padding
                ids = np.unique(np.concatenate(found))
            answer = self._answer(probe, ids, self._scores(probe, ids)) if ids.size else []
        if threshold is not None:
            answer = [c for c in answer if c.score >= float(threshold)]
        return answer[: int(k)]

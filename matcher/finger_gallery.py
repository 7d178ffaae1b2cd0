"""In-memory fingerprint gallery: match-ready features in CSR form, faiss-shaped API.

Every template's minutiae (those with valid cylinders) are appended to flat arrays; template ``r``
owns ``offsets[r]:offsets[r + 1]``. Cylinders are section-major ``bits[section, minutia]`` so the
kernel compares one probe minutia against a whole template in a vector loop. Ids map both ways as
in :class:`matcher.gallery.IrisGallery` (sorted id array + binary search), removal tombstones a
row and :meth:`FingerGallery.compact` reclaims it.

Scores are the matcher's similarity in [0, 1], higher is closer (:func:`matcher.finger.match`).
Searches may run from many threads; mutations take a lock and searches work on a snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.finger import FingerFeatures, features
from matcher.finger_index import FingerIndex, GalleryView, default_candidates, rank_candidates
from matcher.ids import IdIndex, as_ids
from matcher.kernels import finger_cpu
from matcher.templates import FingerTemplate

_SECTIONS = 6


def _features_of(
    templates: Sequence[FingerTemplate | FingerFeatures], what: str
) -> list[FingerFeatures]:
    """Match-ready features of each template (built once and cached per template)."""
    out = []
    for i, t in enumerate(templates):
        if isinstance(t, FingerFeatures):
            out.append(t)
        elif isinstance(t, FingerTemplate):
            out.append(features(t))
        else:
            raise InvalidTemplate(f"{what} {i} is a {type(t).__name__}, not a FingerTemplate")
    return out


class FingerGallery:
    """1:N fingerprint search over precomputed cylinders.

    ``search(t, k)`` returns ``(scores, ids)``, scores descending, padded with ``-inf``/``-1``;
    ``exhaustive=True`` runs the full matcher against every template (the yardstick for any
    candidate index). Memory: about 81 bytes a minutia with a valid cylinder plus 17 bytes a
    template (3.5 KB for a 43-minutia template).
    """

    def __init__(self) -> None:
        self._x = np.zeros(0)
        self._y = np.zeros(0)
        self._t = np.zeros(0)
        self._bits = np.zeros((_SECTIONS, 0), np.uint64)
        self._mask = np.zeros(0, np.uint64)
        self._offsets = np.zeros(1, np.int64)
        self._row_ids = np.zeros(0, np.int64)
        self._alive = np.zeros(0, bool)
        self._ids = IdIndex()
        # Candidate index (matcher.finger_index): its ids name templates by serial, a number
        # given at add time that compaction keeps, so the index never needs renumbering.
        self._serials = np.zeros(0, np.int64)  # per row, ascending
        self._next_serial = 0
        self._index = FingerIndex()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def nbytes(self) -> int:
        """RAM held: the match-ready arrays (:attr:`arrays_nbytes`) plus the candidate index."""
        return self.arrays_nbytes + self.index_nbytes

    @property
    def index_nbytes(self) -> int:
        return int(self._index.nbytes)

    @property
    def arrays_nbytes(self) -> int:
        arrays = (
            self._x,
            self._y,
            self._t,
            self._bits,
            self._mask,
            self._offsets,
            self._row_ids,
            self._alive,
            self._ids.ids,
            self._ids.rows,
        )
        return int(sum(a.nbytes for a in arrays))

    def ids(self) -> npt.NDArray[np.int64]:
        return self._ids.ids.copy()

    def add(self, ids: object, templates: Sequence[FingerTemplate | FingerFeatures]) -> None:
        """Add templates under new int64 ids. All or nothing: a duplicate or malformed input
        raises before anything changes. Cost: one cylinder build per template (~1 ms)."""
        ids_a = as_ids(ids)
        if len(templates) != ids_a.size:
            raise InvalidTemplate(f"{ids_a.size} ids for {len(templates)} templates")
        uniq = IdIndex.unique_new(ids_a)
        feats = _features_of(templates, "template")
        with self._lock:
            self._ids.check_absent(uniq)
            counts_n = np.array([f.n for f in feats], np.int64)
            serials = np.arange(ids_a.size, dtype=np.int64) + self._next_serial
            new_bits = np.concatenate(
                [np.zeros((_SECTIONS, 0), np.uint64), *[f.bits for f in feats]], axis=1
            )
            self._index.add(new_bits, counts_n, serials)  # raises before anything changes
            self._next_serial += ids_a.size
            self._serials = np.concatenate([self._serials, serials])
            start_row = self._row_ids.size
            self._x = np.concatenate([self._x, *[f.x for f in feats]])
            self._y = np.concatenate([self._y, *[-f.y for f in feats]])  # kernels read y up
            self._t = np.concatenate([self._t, *[f.theta for f in feats]])
            self._bits = np.ascontiguousarray(
                np.concatenate([self._bits, *[f.bits for f in feats]], axis=1)
            )
            self._mask = np.concatenate([self._mask, *[f.mask for f in feats]])
            self._offsets = np.concatenate([self._offsets, self._offsets[-1] + np.cumsum(counts_n)])
            self._row_ids = np.concatenate([self._row_ids, ids_a])
            self._alive = np.concatenate([self._alive, np.ones(ids_a.size, bool)])
            rows = np.arange(start_row, start_row + ids_a.size, dtype=np.int64)
            self._ids.insert(ids_a, rows)

    def remove(self, ids: object) -> None:
        """Remove ids (tombstones). Unknown ids raise before anything changes."""
        ids_a = as_ids(ids)
        with self._lock:
            self._alive[self._ids.delete(ids_a)] = False

    def compact(self) -> int:
        """Drop tombstoned rows; returns how many were reclaimed."""
        with self._lock:
            keep = np.flatnonzero(self._alive)
            reclaimed = self._alive.size - keep.size
            if not reclaimed:
                return 0
            take = np.concatenate(
                [np.arange(self._offsets[r], self._offsets[r + 1]) for r in keep]
                or [np.zeros(0, np.int64)]
            ).astype(np.int64)
            lengths = np.diff(self._offsets)[keep]
            dead = np.flatnonzero(~self._alive)
            self._index.remove(self._serials[dead], np.diff(self._offsets)[dead])
            self._serials = self._serials[keep]
            self._x, self._y, self._t = self._x[take], self._y[take], self._t[take]
            self._bits = np.ascontiguousarray(self._bits[:, take])
            self._mask = self._mask[take]
            self._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            self._row_ids = self._row_ids[keep]
            self._alive = np.ones(keep.size, bool)
            self._ids.rebuild(self._row_ids, np.arange(keep.size, dtype=np.int64))
            return int(reclaimed)

    def _snapshot(
        self,
    ) -> tuple[
        npt.NDArray[np.int64], tuple[np.ndarray, ...], npt.NDArray[np.int64], npt.NDArray[np.int64]
    ]:
        with self._lock:
            gallery = (self._x, self._y, self._t, self._bits, self._mask)
            return self._offsets, gallery, np.flatnonzero(self._alive), self._row_ids

    def search(
        self,
        template: FingerTemplate | FingerFeatures,
        k: int = 10,
        exhaustive: bool = False,
        candidates: int | None = None,
        min_score: float | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """The ``k`` most similar templates: ``(scores, ids)``, scores descending (ties by
        enrolment order), padded with ``-inf`` / ``-1``; with ``min_score`` (a decision
        threshold, e.g. :meth:`matcher.thresholds.Thresholds.for_fpir`), only those scoring
        at least that, which also lets the search skip most of the work on the others.

        Indexed (the default): the candidate index (:mod:`matcher.finger_index`) picks
        ``candidates`` templates (default 1 % of the gallery, at least 256) and the full matcher
        scores those, so every score returned is exactly the exhaustive search's score for that
        template; a mate the index does not pick is missed. A gallery no larger than
        ``candidates`` is scanned whole, which is exact. ``exhaustive=True`` runs the matcher
        against every template (the yardstick for the index). Cost: indexed, one index search
        plus ``candidates`` matches; exhaustive, one match per template (~16 us each on one core;
        templates proven below the k-th best or ``min_score`` skip the radial terms, the
        relaxation and the geometric check: ~10 us).
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidTemplate(f"k must be a positive integer, got {k!r}")
        if not exhaustive:
            scores_b, ids_b = self.search_batch([template], k, False, candidates, min_score)
            return scores_b[0], ids_b[0]
        if candidates is not None:
            raise InvalidTemplate("candidates applies to the indexed search, not exhaustive=True")
        probe = template if isinstance(template, FingerFeatures) else features(template)
        offsets, gallery, rows, row_ids = self._snapshot()
        # Exact top k of the full scan (same scores, same tie order), skipping the consolidation
        # of templates proven below the k-th best.
        top = finger_cpu.scan_top(probe.kernel_args(), offsets, gallery, rows, int(k), min_score)
        pad = int(k) - top.scores.size
        return (
            np.concatenate([top.scores, np.full(pad, -np.inf)]),
            np.concatenate([row_ids[top.templates], np.full(pad, -1, np.int64)]),
        )

    def search_range(
        self, template: FingerTemplate | FingerFeatures, threshold: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Every template scoring at least ``threshold``, exhaustively: ``(scores, ids)``,
        scores descending (ties by enrolment order). The threshold is the search's floor, so
        templates proven below it skip most of their match (see :meth:`search`)."""
        if isinstance(threshold, bool) or not isinstance(threshold, float | int | np.floating):
            raise InvalidTemplate(f"threshold must be a number in [0, 1], got {threshold!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise InvalidTemplate(f"threshold must be a number in [0, 1], got {threshold!r}")
        probe = template if isinstance(template, FingerFeatures) else features(template)
        offsets, gallery, rows, row_ids = self._snapshot()
        # A scan with the threshold as its floor, not a top-k of the whole gallery: its sorted
        # list would shift through every slot for each template kept.
        scores = finger_cpu.scan(probe.kernel_args(), offsets, gallery, rows, float(threshold))
        keep = np.flatnonzero(scores >= float(threshold))
        keep = keep[np.lexsort((keep, -scores[keep]))]
        return scores[keep], row_ids[rows[keep]]

    def score(
        self, template: FingerTemplate | FingerFeatures, ids: object
    ) -> npt.NDArray[np.float64]:
        """1:1: the matcher's score of ``template`` against each enrolled id in ``ids``, in the
        order given. An id not in the gallery raises :class:`~matcher.errors.UnknownId`."""
        ids_a = as_ids(ids)
        probe = template if isinstance(template, FingerFeatures) else features(template)
        with self._lock:
            rows = self._ids.find(ids_a)
            offsets, gallery = self._offsets, (self._x, self._y, self._t, self._bits, self._mask)
        return finger_cpu.scan(probe.kernel_args(), offsets, gallery, rows)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._ids

    def has(self, ids: object) -> npt.NDArray[np.bool_]:
        """Whether each of ``ids`` is enrolled (vectorised ``in``)."""
        ids_a = as_ids(ids)
        with self._lock:
            return self._ids.has(ids_a)

    def search_batch(
        self,
        templates: Sequence[FingerTemplate | FingerFeatures],
        k: int = 10,
        exhaustive: bool = False,
        candidates: int | None = None,
        min_score: float | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """:meth:`search` for several probes: ``(scores, ids)`` of shape ``(P, k)``. Indexed, the
        probes' cylinders go to the index in one call."""
        if exhaustive:
            if candidates is not None:
                raise InvalidTemplate(
                    "candidates applies to the indexed search, not exhaustive=True"
                )
            results = [self.search(t, k, True, None, min_score) for t in templates]
            if not results:
                return np.zeros((0, k)), np.zeros((0, k), np.int64)
            return np.stack([r[0] for r in results]), np.stack([r[1] for r in results])
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidTemplate(f"k must be a positive integer, got {k!r}")
        if candidates is not None and (
            isinstance(candidates, bool)
            or not isinstance(candidates, int | np.integer)
            or candidates < k
        ):
            raise InvalidTemplate(f"candidates must be an integer >= k ({k}), got {candidates!r}")
        probes = _features_of(templates, "probe")
        with self._lock:
            offsets = self._offsets
            gallery = (self._x, self._y, self._t, self._bits, self._mask)
            # remove() clears alive flags in place: copy, so one search sees one gallery.
            view = GalleryView(
                self._serials, offsets, self._x, self._y, self._t, self._alive.copy()
            )
            row_ids, live, index = self._row_ids, len(self._ids), self._index
        want = int(max(k, default_candidates(live)) if candidates is None else candidates)
        out_scores = np.full((len(probes), k), -np.inf)
        out_ids = np.full((len(probes), k), -1, np.int64)
        if not probes:
            return out_scores, out_ids
        if want >= live:  # the whole gallery fits in the candidates: scan it all (exact)
            every = np.flatnonzero(view.alive)
            picks = [every] * len(probes)
        else:
            dist, nearest = index.search(np.concatenate([p.bits for p in probes], axis=1))
            ends = np.cumsum([p.n for p in probes])
            picks = [
                rank_candidates(
                    dist[e - p.n : e], nearest[e - p.n : e], (p.x, -p.y, p.theta), view, want
                )
                for p, e in zip(probes, ends, strict=True)
            ]
        for i, (probe, rows) in enumerate(zip(probes, picks, strict=True)):
            top = finger_cpu.scan_top(
                probe.kernel_args(), offsets, gallery, rows, int(k), min_score
            )
            out_scores[i, : top.scores.size] = top.scores
            out_ids[i, : top.scores.size] = row_ids[top.templates]
        return out_scores, out_ids

    # ----------------------------------------------------------------------------- save/load
    _FILE_VERSION = 2  # 2 added the candidate index; version 1 files load and rebuild it

    def state(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays :meth:`from_state` rebuilds this gallery from (features, ids, tombstones,
        the candidate index serialised). Safe to write out while the gallery changes: ``add``
        and ``compact`` replace the feature arrays rather than write into them, and the arrays
        changed in place are copied."""
        with self._lock:
            return {
                "version": np.array(self._FILE_VERSION, np.int64),
                "x": self._x,
                "y": self._y,
                "t": self._t,
                "bits": self._bits,
                "mask": self._mask,
                "offsets": self._offsets,
                "row_ids": self._row_ids,
                "alive": self._alive.copy(),
                "serials": self._serials,
                "next_serial": np.array(self._next_serial, np.int64),
                "index": self._index.serialize(),
            }

    def save(self, path: str) -> None:
        """Write :meth:`state` to one ``.npz`` file, atomically."""
        import os

        tmp = f"{path}.tmp.npz"
        np.savez(tmp, **self.state())  # type: ignore[arg-type]
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> FingerGallery:
        """Read a file written by :meth:`save`; ``ValueError`` if it is not one or is damaged.

        The candidate index comes back as saved; a version 1 file (none saved), or a saved index
        that does not hold the file's cylinders, is rebuilt from the features (for IVF-sized
        galleries that costs one coarse assignment per cylinder: about a minute a million
        templates)."""
        import zipfile

        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise InvalidTemplate(f"{path}: not a finger gallery file ({exc})") from exc
        return cls.from_state(arrays, path)

    @classmethod
    def from_state(cls, arrays: Mapping[str, Any], where: str) -> FingerGallery:
        """The gallery :meth:`state` gave (or a version 1 file's arrays); :class:`InvalidTemplate`
        naming ``where`` if they are inconsistent. ``arrays["index"]`` may also be a
        :class:`FingerIndex` read already."""
        path = where
        want = {"version", "x", "y", "t", "bits", "mask", "offsets", "row_ids", "alive"}
        version = int(arrays["version"]) if "version" in arrays else 0
        if version == cls._FILE_VERSION:
            want |= {"serials", "next_serial", "index"}
        if set(arrays) != want or version not in (1, cls._FILE_VERSION):
            raise InvalidTemplate(
                f"{path}: not a finger gallery file of version {cls._FILE_VERSION}"
            )
        g = cls()
        n_min = arrays["x"].shape[0]
        off = arrays["offsets"]
        n_rows = arrays["row_ids"].shape[0]
        ok = (
            off.dtype == np.int64
            and off.shape == (n_rows + 1,)
            and off[0] == 0
            and off[-1] == n_min
            and bool(np.all(np.diff(off) >= 0))
            and arrays["bits"].shape == (_SECTIONS, n_min)
            and arrays["bits"].dtype == np.uint64
            and arrays["mask"].dtype == np.uint64
            and all(arrays[k].shape == (n_min,) for k in ("y", "t", "mask"))
            and arrays["alive"].shape == (n_rows,)
            and arrays["alive"].dtype == bool
            and arrays["row_ids"].dtype == np.int64
        )
        if not ok:
            raise InvalidTemplate(f"{path}: arrays are inconsistent")
        g._x, g._y, g._t = arrays["x"], arrays["y"], arrays["t"]
        g._bits, g._mask = np.ascontiguousarray(arrays["bits"]), arrays["mask"]
        g._offsets, g._row_ids, g._alive = off, arrays["row_ids"], arrays["alive"]
        try:
            g._ids.rebuild(g._row_ids, np.flatnonzero(g._alive))
        except InvalidTemplate:
            raise InvalidTemplate(f"{path}: duplicate ids in the file") from None
        if version == 1:
            g._serials = np.arange(n_rows, dtype=np.int64)
            g._next_serial = n_rows
        else:
            g._serials = arrays["serials"]
            g._next_serial = int(arrays["next_serial"])
            serials_ok = (
                g._serials.dtype == np.int64
                and g._serials.shape == (n_rows,)
                and bool(np.all(np.diff(g._serials) > 0))
                and (n_rows == 0 or (g._serials[0] >= 0 and g._serials[-1] < g._next_serial))
            )
            if not serials_ok:
                raise InvalidTemplate(f"{path}: template serials are inconsistent")
            given = arrays["index"]
            if isinstance(given, FingerIndex):  # read by the caller (FingerIndex.read)
                g._index = given
            elif given.dtype != np.uint8 or given.ndim != 1:
                raise InvalidTemplate(f"{path}: the candidate index is not a byte array")
            else:
                g._index = FingerIndex.deserialize(given)
        # The index holds every row's cylinders, tombstoned ones too, until compact().
        if version == 1 or g._index.ntotal != FingerIndex.indexed_count(g._bits):
            g._index = FingerIndex()
            for lo in range(0, n_rows, 65536):  # bounded temporaries for big galleries
                hi = min(lo + 65536, n_rows)
                g._index.add(
                    g._bits[:, off[lo] : off[hi]], np.diff(off[lo : hi + 1]), g._serials[lo:hi]
                )
        return g


def warm_up() -> None:
    """Compile the kernels that a search and a 1:1 score run (or load them from numba's
    on-disk cache), on a gallery of two made-up templates. A service calls this before it says
    it is ready: on a fresh install the first request would otherwise spend some 40 s in
    compilation, past a capture station's deadline. Milliseconds once compiled."""
    turn = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    ring = [
        FingerTemplate(
            x=(200.0 + r * np.cos(turn)).astype(np.float32),
            y=(200.0 + r * np.sin(turn)).astype(np.float32),
            theta=((turn + 0.5 * r / 60.0) % (2.0 * np.pi)).astype(np.float32),
            width=400,
            height=400,
            dpi=500,
        )
        for r in (60.0, 90.0)
    ]
    g = FingerGallery()
    g.add(np.array([1, 2], np.int64), ring)
    g.search(ring[0], k=1, exhaustive=True)
    g.search(ring[0], k=1, exhaustive=True, min_score=0.5)
    g.search(ring[0], k=1)
    g.score(ring[0], [2])

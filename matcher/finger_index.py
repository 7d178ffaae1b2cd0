"""Candidate index of the 1:N fingerprint search: gallery cylinders vote for templates.

Every gallery minutia's cylinder (8 x 8 cells x 6 sections = 384 bits, :mod:`matcher.finger`) is
one 48-byte row of a faiss binary index, under the id ``serial << 8 | j`` (the template's serial,
which compaction never changes, and the minutia's place in it). The full matcher then reranks the
most voted templates (:meth:`matcher.finger_gallery.FingerGallery.search`), so every score it
returns is the matcher's own; the index only decides which templates are scored.

Algorithm steps (search, per probe)
1. Every probe cylinder with at least :data:`MIN_CYLINDER_BITS` bits set asks the index for its
   ``neighbours`` nearest gallery cylinders (Hamming distance).
2. A neighbour votes for its template when the template is alive and the two minutiae directions
   differ by at most :data:`matcher.finger_params.MAX_DIRECTION_DIFF_RAD` (the matcher compares no
   other pairs); each (probe minutia, template) votes once, so a template cannot win on one
   structure repeated in it.
3. Geometric support: two votes for one template agree when they imply the same rotation (within
   :data:`PAIR_ROTATION_TOLERANCE_RAD`) and their minutiae lie as far apart in the probe as in
   the template (within :data:`PAIR_DISTANCE_TOLERANCE_PX`). A template's support is the most
   agreeing partners any one of its votes has. Impostor votes are scattered and rarely agree; a
   mate's few votes do, which lifts a mate with three votes above the many templates with one
   or two (at 20,000 templates and 249 neighbours, mates in the first 0.1 % of the ranking:
   95.4 % by votes alone, 97.0 % with support first).
4. Templates are ranked by support, then votes, then the summed closeness ``384 - distance`` of
   their votes, then row; the first ``candidates`` go to the matcher. When fewer templates got a
   vote, the rest are filled with unvoted live templates in row order, so an indexed search
   returns ``k`` results whenever the gallery holds ``k`` templates, as the exhaustive one does.

This is MCC indexing in the manner of R. Cappelli, M. Ferrara, D. Maltoni, "Fingerprint indexing
based on Minutia Cylinder-Code", IEEE TPAMI 33(5):1051-1057, 2011 (cylinders vote for the
templates they come from), with a faiss nearest-neighbour search in place of their bit-sampling
hashes. Measured hit rates against the exhaustive search: ``python -m benchmarks.finger_index``.

Index kind by size: an exact ``IndexBinaryFlat`` (behind ``IndexBinaryIDMap``) up to
:data:`IVF_MIN_CYLINDERS` indexed cylinders; past that an ``IndexBinaryIVF`` of at most
:data:`IVF_LISTS` lists, its coarse centroids trained by k-means on a sample of the gallery's
cylinders when the flat index outgrows the limit, and kept from then on (cylinders are
cylinders: the distribution does not drift with the gallery). Against centroids drawn at random,
k-means lists are more even, so a search reads ~20 % fewer codes for the same recall. The IVF
search reads a fixed share of the lists, so its cost grows linearly with the gallery.

Memory: 56 bytes an indexed cylinder (48 code + 8 id), about 2.3 KB for a template of 46
minutiae with cylinders (89 % of cylinders are dense enough to index). Tombstoned templates stay
in the index, filtered out of the votes, until :meth:`FingerIndex.remove` (the gallery's
``compact()``); meanwhile their cylinders still take neighbour slots.

Thread safety: searches may run from many threads; :meth:`FingerIndex.add` and
:meth:`FingerIndex.remove` wait for running searches and block new ones (faiss indexes are not
safe to change while searched).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import faiss
import numpy as np
import numpy.typing as npt

from matcher import finger_params as fp
from matcher.errors import InvalidTemplate
from matcher.rwlock import SharedExclusiveLock

__all__ = [
    "CODE_BITS",
    "MIN_CYLINDER_BITS",
    "FingerIndex",
    "GalleryView",
    "cylinder_codes",
    "default_candidates",
    "rank_candidates",
]

#: Bits of one cylinder as the index stores it: 6 angular sections of 8 x 8 cells.
CODE_BITS = fp.CYLINDER_SECTIONS * fp.CYLINDER_CELLS_PER_SIDE**2
_CODE_BYTES = CODE_BITS // 8
#: Cylinders with fewer bits set are neither indexed nor asked: a sparse cylinder is close in
#: Hamming distance to every other sparse one and votes for noise. 17 of 384 bits drops the
#: sparsest 11 % of synthetic cylinders and gave the best mate ranks (measured 12-28).
MIN_CYLINDER_BITS = 17
#: Up to this many indexed cylinders (~2,900 templates) the index is exact (IndexBinaryFlat).
IVF_MIN_CYLINDERS = 1 << 17
#: Inverted lists of the IVF index, at most (and at least IVF_MIN_LIST_SIZE cylinders per list
#: at build time). The coarse assignment of an added cylinder costs one distance per list.
IVF_LISTS = 1024
IVF_MIN_LIST_SIZE = 128
#: Cylinders drawn per list to train the coarse centroids (k-means; 4 s for 1,024 lists).
IVF_TRAIN_PER_LIST = 64
#: Share of the lists a search visits (16 of 1024). Lists are uneven, so that reads several % of
#: the indexed cylinders per probe cylinder. Recall depends on it: at 20,000 templates, mates in
#: the first 1 % were 97.4, 98.2 and 98.8 % of 500 with 1/128, 1/64 and 1/16 of the lists.
IVF_PROBE_FRACTION = 1.0 / 64.0
#: Nearest cylinders each probe cylinder asks for: grows with the index so that the Hamming
#: radius they cover stays about the same as the gallery grows (249 at 20,000 templates), up to
#: MAX_NEIGHBOURS (reached from about 40,000 templates). At 20,000 templates 83, 664 and 2,048
#: neighbours found 97.8, 98.2 and 98.2 % of mates in the first 1 %. Past that more neighbours
#: bring impostors more votes than mates: at 1,000,000 templates (200 probes, mates first by the
#: exhaustive search for every probe the index missed) 2,048 / 1,024 / 768 / 640 / 512 neighbours
#: put the mate first for 196 / 198 / 199 / 199 / 200 probes; at 100,000, 1,242 and 768 both 197.
NEIGHBOUR_FRACTION = 3e-4
MIN_NEIGHBOURS = 64
MAX_NEIGHBOURS = 512
#: Two votes agree (step 3) within these: rotation, and distance between the two minutiae. The
#: distance allows the few pixels of plastic distortion and extraction noise of live scans.
PAIR_ROTATION_TOLERANCE_RAD = math.radians(30.0)
PAIR_DISTANCE_TOLERANCE_PX = 12.0
#: Templates reranked by the matcher by default: this share of the live gallery, at least
#: MIN_CANDIDATES (a gallery that small is scanned whole, which is exact).
CANDIDATE_FRACTION = 0.01
MIN_CANDIDATES = 256

_MINUTIA_BITS = 8  # an id's low bits: the minutia's place in its template (at most 255 minutiae)
_SEED = 20240601  # training sample and k-means; fixed so that a build is reproducible


def cylinder_codes(bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """Section-major cylinders ``(6, m)`` uint64 as faiss rows ``(m, 48)`` uint8 (a copy)."""
    return np.ascontiguousarray(bits.T).view(np.uint8).reshape(-1, _CODE_BYTES)


def _dense(bits: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    return np.asarray(np.bitwise_count(bits).sum(axis=0) >= MIN_CYLINDER_BITS)


def default_candidates(live: int) -> int:
    """Templates reranked when the caller names no number: 1 % of ``live``, at least 256."""
    return max(MIN_CANDIDATES, math.ceil(CANDIDATE_FRACTION * live))


class FingerIndex:
    """faiss binary index over gallery cylinders; ids are ``serial << 8 | minutia``.

    ``add`` takes whole templates (their section-major cylinders, minutia counts and serials);
    ``remove`` drops whole templates by serial; ``search`` returns the ids of the nearest
    indexed cylinders of each query. Templates are never looked up here: the caller maps a
    serial to its row (:func:`rank_candidates`), so ids stay valid across compaction.
    """

    def __init__(self) -> None:
        # faiss's SWIG classes carry no useful static types: Any, checked by the tests.
        self._index: Any = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(CODE_BITS))
        self._lock = SharedExclusiveLock()

    # ------------------------------------------------------------------------ properties
    @property
    def ntotal(self) -> int:
        """Indexed cylinders."""
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"``."""
        return "ivf" if isinstance(self._index, faiss.IndexBinaryIVF) else "flat"

    @property
    def nlist(self) -> int:
        return int(self._index.nlist) if self.kind == "ivf" else 0

    @property
    def nbytes(self) -> int:
        """Memory held by codes, ids and centroids (faiss's own small overheads aside)."""
        per_row = _CODE_BYTES + 8
        return self.ntotal * per_row + self.nlist * _CODE_BYTES

    def neighbours(self) -> int:
        """Neighbours a query asks for at the index's present size (:data:`NEIGHBOUR_FRACTION`)."""
        wanted = math.ceil(NEIGHBOUR_FRACTION * self.ntotal)
        return int(min(MAX_NEIGHBOURS, max(MIN_NEIGHBOURS, wanted)))

    def nprobe(self) -> int:
        """Inverted lists a query visits (0 for the flat index)."""
        return max(1, round(self.nlist * IVF_PROBE_FRACTION)) if self.kind == "ivf" else 0

    # -------------------------------------------------------------------------- changes
    def add(
        self,
        bits: npt.NDArray[np.uint64],
        counts: npt.NDArray[np.int64],
        serials: npt.NDArray[np.int64],
    ) -> None:
        """Index templates: ``bits`` their cylinders ``(6, sum(counts))`` section-major, template
        after template; ``counts`` their minutiae (each at most 255); ``serials`` their serials
        (non-negative, below 2**55). Cost: a copy of the codes, plus for the IVF index one
        distance per list per cylinder (the coarse assignment)."""
        counts = np.asarray(counts, np.int64)
        serials = np.asarray(serials, np.int64)
        if bits.shape != (fp.CYLINDER_SECTIONS, int(counts.sum())) or serials.shape != counts.shape:
            raise InvalidTemplate("cylinders, counts and serials disagree")
        if counts.size and (counts.max() >= 1 << _MINUTIA_BITS or serials.min() < 0):
            raise InvalidTemplate("a template holds at most 255 minutiae; serials are >= 0")
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        ids = (np.repeat(serials, counts) << _MINUTIA_BITS) | (np.arange(bits.shape[1]) - starts)
        keep = _dense(bits)
        codes = cylinder_codes(bits)[keep]
        with self._lock.exclusive():
            if self.kind == "flat" and self.ntotal + codes.shape[0] >= IVF_MIN_CYLINDERS:
                old_codes, old_ids = self._flat_contents()
                self._index = _build_ivf(
                    np.concatenate([old_codes, codes]), np.concatenate([old_ids, ids[keep]])
                )
            elif codes.shape[0]:
                self._index.add_with_ids(codes, ids[keep])

    def remove(self, serials: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> None:
        """Drop the cylinders of templates ``serials`` holding ``counts`` minutiae. Cost: one
        pass over the whole index (faiss keeps no id-to-position map)."""
        counts = np.asarray(counts, np.int64)
        if not counts.size:
            return
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        ids = (np.repeat(np.asarray(serials, np.int64), counts) << _MINUTIA_BITS) | (
            np.arange(int(counts.sum())) - starts
        )
        with self._lock.exclusive():
            self._index.remove_ids(faiss.IDSelectorBatch(ids))

    # --------------------------------------------------------------------------- search
    def search(
        self, queries: npt.NDArray[np.uint64], neighbours: int | None = None
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """The nearest indexed cylinders of each query cylinder ``(6, q)``: ``(distances, ids)``
        of shape ``(q, neighbours)``, nearest first, padded with ``-1`` ids. Queries sparser
        than :data:`MIN_CYLINDER_BITS` get no neighbours (all ``-1``)."""
        k = self.neighbours() if neighbours is None else int(neighbours)
        q = queries.shape[1]
        dist = np.full((q, k), CODE_BITS, np.int32)
        ids = np.full((q, k), -1, np.int64)
        asked = np.flatnonzero(_dense(queries))
        if not asked.size:
            return dist, ids
        codes = cylinder_codes(queries)[asked]
        with self._lock.shared():
            if not self.ntotal:
                return dist, ids
            if self.kind == "ivf":
                params = faiss.SearchParametersIVF()  # per call: searches share the index
                params.nprobe = self.nprobe()
                d, i = self._index.search(codes, k, params=params)
            else:
                d, i = self._index.search(codes, k)
        dist[asked], ids[asked] = d, i
        return dist, ids

    # ------------------------------------------------------------------------ save/load
    def serialize(self) -> npt.NDArray[np.uint8]:
        """The whole index as bytes (faiss's own format), for :meth:`deserialize`."""
        with self._lock.shared():
            return np.asarray(faiss.serialize_index_binary(self._index), np.uint8)

    @classmethod
    def deserialize(cls, blob: npt.NDArray[np.uint8]) -> FingerIndex:
        """An index written by :meth:`serialize`; ``InvalidTemplate`` if it is not one."""
        try:
            index = faiss.deserialize_index_binary(np.ascontiguousarray(blob, np.uint8))
        except RuntimeError as exc:  # faiss reports unreadable input as RuntimeError
            raise InvalidTemplate(f"not a finger index ({exc})") from exc
        return cls._checked(index)

    @classmethod
    def read(cls, read: Callable[[int], bytes]) -> FingerIndex:
        """:meth:`deserialize` from a stream: ``read(n)`` gives the next ``n`` bytes of what
        :meth:`serialize` wrote. faiss fills its own arrays as it reads, so a gigabyte index
        is never held twice."""
        try:
            index = faiss.read_index_binary(faiss.PyCallbackIOReader(read))  # type: ignore[attr-defined]
        except RuntimeError as exc:
            raise InvalidTemplate(f"not a finger index ({exc})") from exc
        return cls._checked(index)

    @classmethod
    def _checked(cls, index: Any) -> FingerIndex:
        if index.d != CODE_BITS or not isinstance(
            index, faiss.IndexBinaryIDMap | faiss.IndexBinaryIVF
        ):
            raise InvalidTemplate(f"not a finger index: {type(index).__name__} of {index.d} bits")
        out = cls()
        out._index = index
        return out

    @staticmethod
    def indexed_count(bits: npt.NDArray[np.uint64]) -> int:
        """How many of these cylinders an index holds (the dense ones)."""
        return int(np.count_nonzero(_dense(bits)))

    def _flat_contents(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        flat: Any = faiss.downcast_IndexBinary(self._index.index)
        codes = faiss.vector_to_array(flat.xb).reshape(-1, _CODE_BYTES)
        return codes, faiss.vector_to_array(self._index.id_map).astype(np.int64)


def _build_ivf(codes: npt.NDArray[np.uint8], ids: npt.NDArray[np.int64]) -> Any:
    nlist = int(min(IVF_LISTS, max(1, codes.shape[0] // IVF_MIN_LIST_SIZE)))
    rng = np.random.default_rng(_SEED)
    sample = rng.choice(codes.shape[0], min(codes.shape[0], nlist * IVF_TRAIN_PER_LIST), False)
    quantizer: Any = faiss.IndexBinaryFlat(CODE_BITS)
    index = faiss.IndexBinaryIVF(quantizer, CODE_BITS, nlist)
    index.cp.seed = _SEED
    index.train(codes[np.sort(sample)])
    # The IVF index owns its quantizer from here on (and frees it); Python must not.
    quantizer.this.disown()
    index.own_fields = True
    index.add_with_ids(codes, ids)
    return index


class GalleryView(NamedTuple):
    """What voting reads of a gallery, from one consistent snapshot.

    ``serials``: int64 ``(rows,)`` ascending (rows keep enrolment order through compaction);
    ``offsets``: int64 ``(rows + 1,)`` CSR offsets; ``x``, ``y``, ``theta``: float64 per
    minutia (pixels at 500 dpi in any one frame, radians); ``alive``: bool ``(rows,)``.
    """

    serials: npt.NDArray[np.int64]
    offsets: npt.NDArray[np.int64]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    theta: npt.NDArray[np.float64]
    alive: npt.NDArray[np.bool_]


def _wrap(angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Angles into [-pi, pi)."""
    return np.asarray(angle - 2.0 * math.pi * np.floor((angle + math.pi) / (2.0 * math.pi)))


def rank_candidates(
    dist: npt.NDArray[np.int32],
    ids: npt.NDArray[np.int64],
    probe: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]],
    view: GalleryView,
    candidates: int,
) -> npt.NDArray[np.int64]:
    """Rows to rerank for one probe: steps 2-4 of the module docstring.

    ``dist``, ``ids``: :meth:`FingerIndex.search` for the probe's cylinders, ``(q, k)``;
    ``probe``: ``(x, y, theta)`` of those ``q`` minutiae (pixels at 500 dpi, radians, the same
    handedness as ``view``'s). Returns at most ``candidates`` distinct live rows, best first.
    Ids whose serial is not in ``view`` (added after the snapshot, or compacted away) are
    ignored. Cost: a few vectorised passes over the ``q * k`` neighbours (~1-5 ms).
    """
    n_rows = view.serials.size
    k = ids.shape[1]
    flat = ids.ravel()
    serial = flat >> _MINUTIA_BITS
    row = np.searchsorted(view.serials, serial)
    keep = (flat >= 0) & (row < n_rows)
    keep[keep] = view.serials[row[keep]] == serial[keep]
    keep[keep] = view.alive[row[keep]]
    at = np.flatnonzero(keep)
    which = at // k
    row = row[at]
    closeness = CODE_BITS - dist.ravel()[at].astype(np.int64)
    minutia = view.offsets[row] + (flat[at] & ((1 << _MINUTIA_BITS) - 1))
    turn = _wrap(view.theta[minutia] - probe[2][which])
    fine = np.flatnonzero(np.abs(turn) <= fp.MAX_DIRECTION_DIFF_RAD)
    # Step 2: one vote per (probe minutia, template), its closest cylinder there; votes sorted
    # by template.
    key = row[fine] * ids.shape[0] + which[fine]  # template-major, so votes come out grouped
    order = np.lexsort((-closeness[fine], key))
    first = np.ones(order.size, bool)
    first[1:] = key[order[1:]] != key[order[:-1]]
    pick = fine[order[first]]
    which, row, closeness = which[pick], row[pick], closeness[pick]
    minutia, turn = minutia[pick], turn[pick]
    # Step 3: pairs of votes of one template that agree on the rotation and on the distance
    # between their two minutiae (as the matcher's relaxation asks of its pairs).
    px, py = probe[0][which], probe[1][which]
    gx, gy = view.x[minutia], view.y[minutia]
    partners = np.zeros(row.size, np.int64)
    for step in range(1, row.size):
        a = np.flatnonzero(row[step:] == row[:-step])
        if not a.size:
            break  # votes are grouped by template: no group is longer than this
        b = a + step
        agree = (
            (np.abs(_wrap(turn[a] - turn[b])) <= PAIR_ROTATION_TOLERANCE_RAD)
            & (
                np.abs(
                    np.hypot(px[a] - px[b], py[a] - py[b]) - np.hypot(gx[a] - gx[b], gy[a] - gy[b])
                )
                <= PAIR_DISTANCE_TOLERANCE_PX
            )
            & (minutia[a] != minutia[b])
        )
        partners += np.bincount(a[agree], minlength=row.size)
        partners += np.bincount(b[agree], minlength=row.size)
    # Step 4: rank templates.
    voted, slot = np.unique(row, return_inverse=True)
    votes = np.bincount(slot, minlength=voted.size)
    close_sum = np.bincount(slot, weights=closeness, minlength=voted.size)
    support = np.zeros(voted.size, np.int64)
    np.maximum.at(support, slot, partners)
    chosen = voted[np.lexsort((voted, -close_sum, -votes, -support))][:candidates]
    if chosen.size < candidates:
        unvoted = np.flatnonzero(view.alive)
        unvoted = unvoted[~np.isin(unvoted, chosen, assume_unique=True)]
        chosen = np.concatenate([chosen, unvoted[: candidates - chosen.size]])
    return chosen.astype(np.int64, copy=False)

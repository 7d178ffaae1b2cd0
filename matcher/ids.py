"""External ids of a gallery: int64 in both directions, one mechanism for every gallery.

``row -> id`` is an array the gallery keeps beside its templates; ``id -> row`` is this
:class:`IdIndex`: ids sorted with their rows, binary search to look up, linear-time bulk insert
and delete. A dict of a million Python ints would cost more memory than an iris gallery's masks
and be slower to build from a store.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from matcher.errors import DuplicateId, InvalidTemplate, UnknownId

Ids = npt.NDArray[np.int64]


def as_ids(ids: object, what: str = "ids") -> Ids:
    """A 1-D int64 array from integers (a scalar becomes one id); refuses anything else."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InvalidTemplate(
            f"{what} must be a 1-D array of integers, got {arr.dtype} {arr.shape}"
        )
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidTemplate(f"{what} must fit in int64; got {int(arr.max())}")
    return arr.astype(np.int64, copy=False)


def listing(values: npt.NDArray[np.int64], limit: int = 5) -> str:
    """The first few ids for an error message ("3, 9 and 12 more")."""
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f" and {values.size - limit} more" if values.size > limit else "")


class IdIndex:
    """Sorted ``id -> row`` map. Not thread-safe by itself: galleries call it under their lock."""

    def __init__(self) -> None:
        self.ids: Ids = np.zeros(0, np.int64)
        self.rows: Ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.ids.size)

    def __contains__(self, id_: object) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, int | np.integer):
            return False
        if not np.iinfo(np.int64).min <= int(id_) <= np.iinfo(np.int64).max:
            return False
        pos = np.searchsorted(self.ids, int(id_))
        return bool(pos < self.ids.size and self.ids[pos] == int(id_))

    def has(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Membership of each of ``ids``, vectorised."""
        pos = np.searchsorted(self.ids, ids)
        found = pos < self.ids.size
        found[found] = self.ids[pos[found]] == ids[found]
        return found

    @staticmethod
    def unique_new(ids: Ids) -> Ids:
        """``ids`` sorted; raises :class:`DuplicateId` if the call repeats one."""
        uniq, counts = np.unique(ids, return_counts=True)
        if uniq.size != ids.size:
            raise DuplicateId(f"ids repeated within the call: {listing(uniq[counts > 1])}")
        return uniq

    def check_absent(self, sorted_new: Ids) -> None:
        present = np.isin(sorted_new, self.ids, assume_unique=True)
        if present.any():
            raise DuplicateId(f"ids already in the gallery: {listing(sorted_new[present])}")

    def insert(self, ids: Ids, rows: Ids) -> None:
        """Add ids (checked absent by the caller) at the given rows."""
        order = np.argsort(ids, kind="stable")
        at = np.searchsorted(self.ids, ids[order])
        self.ids = np.insert(self.ids, at, ids[order])
        self.rows = np.insert(self.rows, at, rows[order])

    def find(self, ids: Ids) -> Ids:
        """Rows of ``ids``; raises :class:`UnknownId` naming the missing ones."""
        pos = np.searchsorted(self.ids, ids)
        found = self.has(ids)
        if not found.all():
            raise UnknownId(f"ids not in the gallery: {listing(ids[~found])}")
        return self.rows[pos]

    def delete(self, ids: Ids) -> Ids:
        """Remove ids (all must be present, else nothing changes); returns their rows."""
        uniq = np.unique(ids)
        rows = self.find(uniq)
        pos = np.searchsorted(self.ids, uniq)
        self.ids = np.delete(self.ids, pos)
        self.rows = np.delete(self.rows, pos)
        return rows

    def rebuild(self, row_ids: Ids, live_rows: Ids) -> None:
        """From a gallery's row -> id array and its live rows (load, compaction)."""
        ids = row_ids[live_rows]
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order]
        self.rows = live_rows[order].astype(np.int64)
        if np.any(np.diff(self.ids) == 0):
            raise InvalidTemplate("duplicate ids among the gallery's rows")

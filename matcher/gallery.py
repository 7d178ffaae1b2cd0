"""In-memory galleries: packed, vectorised, faiss-shaped (``add``, ``remove``, ``search``, ``len``).

:class:`IrisGallery` keeps every code in the block layout of :mod:`matcher.kernels.cpu`
(``codes[block, word, lane]``, 128 lanes a block) so the kernels stream it with the probe word
broadcast; the layout packs columns in groups so the first ``coarse_words`` words of a code are an
evenly spread sample of the iris (see :mod:`matcher.iris`), which the fast mode screens on.

Ids are int64 and map both ways: ``row -> id`` through an array, ``id -> row`` through a sorted
array and binary search (a dict of a million Python ints would cost more memory than the codes'
masks). Removal marks a tombstone: the row's mask words are zeroed, so no kernel can ever count it
again, and :meth:`IrisGallery.compact` reclaims the space. Searches may run from many threads at
once; ``add``/``remove``/``compact`` take a lock, and a search works on a consistent snapshot.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from matcher.errors import InvalidTemplate
from matcher.ids import IdIndex, as_ids
from matcher.iris import (
    BoolArray,
    IrisGeometry,
    IrisTemplate,
    pack_codes,
    probe_rotations,
    validate_code_mask,
)
from matcher.iris_params import DEFAULT_MAX_SHIFT_COLUMNS, DEFAULT_MIN_VALID_BITS
from matcher.kernels import cpu

_FILE_MAGIC = b"AMAYESH-IRIS-GALLERY\x00\x00\x00\x00"  # 24 bytes
_FILE_VERSION = 1
_ALIGN = 64

#: Screening threshold of the fast mode: a code goes on to the exact comparison when its
#: subset distance at some rotation is below this. Chosen from the measured subset-distance
#: spread of genuine pairs (see ``python -m benchmarks iris``, which reports the recall it gives).
DEFAULT_COARSE_THRESHOLD = 0.40
#: Words of each code the fast mode screens on (1/4 of a 2,048-bit code).
DEFAULT_COARSE_WORDS = 8
#: The screening pass tries every second rotation only: neighbouring columns of an iris code are
#: strongly correlated (that is where its 249 degrees of freedom in 2,048 bits come from), so a
#: mate one column off the nearest screened rotation still looks close. Survivors are then
#: compared exactly at every rotation.
DEFAULT_COARSE_SHIFT_STEP = 2


class IrisGallery:
    """1:N iris search over packed codes of one geometry (and, if given, one eye).

    ``search`` returns the raw fractional Hamming distance of :func:`matcher.iris.hamming_distance`
    (lower is closer; ~0.5 for unrelated eyes) and the rotation ``s`` with
    ``np.roll(probe, s, axis=1)`` best aligned to the enrolled code. Normalise with
    :func:`matcher.iris.normalize_hd` and the returned bit counts (``with_bits=True``) before
    applying a threshold calibrated for a target FMR/FPIR.

    Memory: ``2 * words * 8`` bytes a code (512 B for 2,048 bits) plus 9 B of id and state.
    """

    def __init__(
        self,
        geometry: IrisGeometry | None = None,
        max_shift: int = DEFAULT_MAX_SHIFT_COLUMNS,
        *,
        min_valid_bits: int = DEFAULT_MIN_VALID_BITS,
        eye: str | None = None,
        coarse_words: int = DEFAULT_COARSE_WORDS,
        coarse_threshold: float = DEFAULT_COARSE_THRESHOLD,
        coarse_shift_step: int = DEFAULT_COARSE_SHIFT_STEP,
    ) -> None:
        self.geometry = geometry or IrisGeometry()
        if not isinstance(self.geometry, IrisGeometry):
            raise InvalidTemplate(
                f"geometry must be an IrisGeometry, got {type(geometry).__name__}"
            )
        self._check_shift(max_shift)
        if eye not in (None, "L", "R"):
            raise InvalidTemplate(f"eye must be 'L', 'R' or None, got {eye!r}")
        if not 0 < coarse_threshold < 1:
            raise InvalidTemplate(f"coarse_threshold must be in (0, 1), got {coarse_threshold}")
        self.max_shift = int(max_shift)
        self.min_valid_bits = int(min_valid_bits)
        self.eye = eye
        self.coarse_threshold = float(coarse_threshold)
        if (
            isinstance(coarse_shift_step, bool)
            or not isinstance(coarse_shift_step, int)
            or coarse_shift_step < 1
        ):
            raise InvalidTemplate(
                f"coarse_shift_step must be a positive integer, got {coarse_shift_step!r}"
            )
        self.coarse_shift_step = int(coarse_shift_step)
        self.groups = self.geometry.coarse_groups(coarse_words)
        self.coarse_words = self.geometry.group_words(self.groups)
        self.words = self.geometry.words(self.groups)
        self.lanes = cpu.BLOCK_LANES
        self._codes = np.zeros((0, self.words, self.lanes), np.uint64)
        self._masks = np.zeros((0, self.words, self.lanes), np.uint64)
        self._row_ids = np.zeros(0, np.int64)
        self._alive = np.zeros(0, bool)
        self._n_rows = 0
        self._index = IdIndex()
        self._lock = threading.RLock()

    # ---------------------------------------------------------------------------------- size
    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_deleted(self) -> int:
        """Tombstoned rows that :meth:`compact` would reclaim."""
        return self._n_rows - len(self)

    @property
    def nbytes(self) -> int:
        """Bytes held by the gallery's arrays (codes, masks, ids, state, id index)."""
        arrays = (
            self._codes,
            self._masks,
            self._row_ids,
            self._alive,
            self._index.ids,
            self._index.rows,
        )
        return int(sum(a.nbytes for a in arrays))

    def ids(self) -> npt.NDArray[np.int64]:
        """Ids present, ascending."""
        return self._index.ids.copy()

    def __contains__(self, id_: object) -> bool:
        return id_ in self._index

    # ------------------------------------------------------------------------------ mutation
    def reserve(self, n_total: int) -> None:
        """Make room for ``n_total`` rows so bulk adds do not regrow the arrays."""
        with self._lock:
            self._grow(int(n_total))

    def add(self, ids: object, codes: BoolArray, masks: BoolArray) -> None:
        """Add codes under new ids: ``ids`` int64 ``(n,)``, ``codes``/``masks`` bool (n, r, c, b).

        All or nothing: a duplicate id (already present or repeated), a wrong shape or dtype, a
        geometry mismatch or a mask with fewer than ``min_valid_bits`` valid bits raises before
        anything changes.
        """
        ids_a = as_ids(ids)
        codes, masks = validate_code_mask(
            codes, masks, self.geometry, self.min_valid_bits, batch=True
        )
        if codes.shape[0] != ids_a.size:
            raise InvalidTemplate(f"{ids_a.size} ids for {codes.shape[0]} codes")
        uniq = IdIndex.unique_new(ids_a)
        packed_c = pack_codes(codes, self.geometry, self.groups)
        packed_m = pack_codes(masks, self.geometry, self.groups)
        self._add_packed(ids_a, uniq, packed_c, packed_m)

    def add_packed(
        self, ids: object, codes: npt.NDArray[np.uint64], masks: npt.NDArray[np.uint64]
    ) -> None:
        """Bulk add of codes already packed in this gallery's layout (``packed()`` gives it back):
        uint64 ``(n, words)`` twice. For loading from a store without unpacking; the same checks
        as :meth:`add` (duplicates, shapes, ``min_valid_bits``), all or nothing."""
        ids_a = as_ids(ids)
        for name, arr in (("codes", codes), ("masks", masks)):
            if (
                not isinstance(arr, np.ndarray)
                or arr.dtype != np.uint64
                or arr.shape != (ids_a.size, self.words)
            ):
                got = (
                    f"{arr.dtype} {arr.shape}"
                    if isinstance(arr, np.ndarray)
                    else type(arr).__name__
                )
                raise InvalidTemplate(
                    f"packed {name} must be uint64 of shape ({ids_a.size}, {self.words}), got {got}"
                )
        allowed = pack_codes(np.ones(self.geometry.shape, bool), self.geometry, self.groups)
        if np.any((codes | masks) & ~allowed):
            raise InvalidTemplate("packed codes or masks set padding bits this layout keeps zero")
        valid = np.bitwise_count(masks).sum(axis=1) if masks.size else np.zeros(0, np.int64)
        if valid.size and int(valid.min()) < self.min_valid_bits:
            raise InvalidTemplate(
                f"mask {int(valid.argmin())} has only {int(valid.min())} valid bits; "
                f"at least {self.min_valid_bits} are needed"
            )
        uniq = IdIndex.unique_new(ids_a)
        self._add_packed(ids_a, uniq, np.ascontiguousarray(codes), np.ascontiguousarray(masks))

    def _add_packed(
        self,
        ids_a: npt.NDArray[np.int64],
        sorted_new: npt.NDArray[np.int64],
        packed_c: npt.NDArray[np.uint64],
        packed_m: npt.NDArray[np.uint64],
    ) -> None:
        with self._lock:
            self._index.check_absent(sorted_new)
            n = ids_a.size
            start = self._n_rows
            self._grow(start + n)
            self._scatter(self._codes, start, packed_c)
            self._scatter(self._masks, start, packed_m)
            rows = np.arange(start, start + n, dtype=np.int64)
            self._row_ids[start : start + n] = ids_a
            self._alive[start : start + n] = True
            self._index.insert(ids_a, rows)
            self._n_rows = start + n

    def remove(self, ids: object) -> None:
        """Remove ids (tombstones, see :meth:`compact`); unknown ids raise before any change."""
        ids_a = as_ids(ids)
        with self._lock:
            rows = self._index.delete(ids_a)
            self._alive[rows] = False
            self._masks[rows // self.lanes, :, rows % self.lanes] = 0  # never counted again

    def compact(self) -> int:
        """Drop tombstoned rows, keeping the order of the rest. Returns how many were reclaimed."""
        with self._lock:
            keep = np.flatnonzero(self._alive[: self._n_rows])
            reclaimed = self._n_rows - keep.size
            if not reclaimed:
                return 0
            codes = self._gather(self._codes, keep)
            masks = self._gather(self._masks, keep)
            ids_kept = self._row_ids[keep]
            n_blocks = -(-keep.size // self.lanes)
            self._codes = np.zeros((n_blocks, self.words, self.lanes), np.uint64)
            self._masks = np.zeros((n_blocks, self.words, self.lanes), np.uint64)
            self._scatter(self._codes, 0, codes)
            self._scatter(self._masks, 0, masks)
            self._row_ids = np.zeros(n_blocks * self.lanes, np.int64)
            self._alive = np.zeros(n_blocks * self.lanes, bool)
            self._row_ids[: keep.size] = ids_kept
            self._alive[: keep.size] = True
            self._n_rows = keep.size
            self._index.rebuild(self._row_ids, np.arange(keep.size, dtype=np.int64))
            return int(reclaimed)

    def _grow(self, n_rows: int) -> None:
        have = self._codes.shape[0]
        need = -(-n_rows // self.lanes)
        if need <= have:
            return
        new_blocks = max(need, have + have // 2)
        for name in ("_codes", "_masks"):
            old = getattr(self, name)
            new = np.zeros((new_blocks, self.words, self.lanes), np.uint64)
            new[:have] = old
            setattr(self, name, new)
        for name, dtype in (("_row_ids", np.int64), ("_alive", bool)):
            old_flat = getattr(self, name)
            new_flat = np.zeros(new_blocks * self.lanes, dtype)
            new_flat[: old_flat.size] = old_flat
            setattr(self, name, new_flat)

    def _scatter(
        self, dst: npt.NDArray[np.uint64], start: int, rows: npt.NDArray[np.uint64]
    ) -> None:
        """Write packed rows ``(n, W)`` into the block layout from row ``start`` on."""
        n, lanes = rows.shape[0], self.lanes
        i = 0
        while i < n and (start + i) % lanes:  # finish a partly filled block
            r = start + i
            dst[r // lanes, :, r % lanes] = rows[i]
            i += 1
        full = (n - i) // lanes
        if full:
            b0 = (start + i) // lanes
            dst[b0 : b0 + full] = (
                rows[i : i + full * lanes].reshape(full, lanes, -1).transpose(0, 2, 1)
            )
            i += full * lanes
        if i < n:
            tail = np.arange(start + i, start + n)
            dst[tail // lanes, :, tail % lanes] = rows[i:]

    def _gather(
        self, src: npt.NDArray[np.uint64], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.uint64]:
        return np.ascontiguousarray(src[rows // self.lanes, :, rows % self.lanes])

    def packed(self, ids: object) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """Packed code and mask words ``(n, words)`` of the given ids, in this gallery's layout."""
        ids_a = as_ids(ids)
        with self._lock:
            rows = self._index.find(ids_a)
            return self._gather(self._codes, rows), self._gather(self._masks, rows)

    # -------------------------------------------------------------------------------- search
    def _check_shift(self, max_shift: object) -> None:
        if (
            isinstance(max_shift, bool)
            or not isinstance(max_shift, int | np.integer)
            or max_shift < 0
        ):
            raise InvalidTemplate(f"max_shift must be a non-negative integer, got {max_shift!r}")
        if max_shift >= self.geometry.columns:
            raise InvalidTemplate(
                f"max_shift {max_shift} must be below the {self.geometry.columns} columns"
            )

    def _snapshot(
        self,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], int, npt.NDArray[np.int64]]:
        with self._lock:
            n_blocks = -(-self._n_rows // self.lanes)
            return self._codes[:n_blocks], self._masks[:n_blocks], self._n_rows, self._row_ids

    def _rotations(
        self, code: BoolArray, mask: BoolArray, max_shift: int | None
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        shift = self.max_shift if max_shift is None else max_shift
        self._check_shift(shift)
        code, mask = validate_code_mask(
            code, mask, self.geometry, self.min_valid_bits, what="probe"
        )
        return probe_rotations(code, mask, self.geometry, int(shift), self.groups)

    @staticmethod
    def _check_k(k: object) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise InvalidTemplate(f"k must be a positive integer, got {k!r}")
        return int(k)

    def search(
        self,
        code: BoolArray,
        mask: BoolArray,
        k: int = 10,
        exact: bool = True,
        *,
        max_shift: int | None = None,
        coarse_threshold: float | None = None,
        with_bits: bool = False,
    ) -> (
        tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32]]
        | tuple[
            npt.NDArray[np.float64],
            npt.NDArray[np.int64],
            npt.NDArray[np.int32],
            npt.NDArray[np.int32],
        ]
    ):
        """The ``k`` nearest codes, ``(hd, ids, shifts)`` (+ ``n_bits`` if ``with_bits``).

        ``exact=True`` (default) compares every code at every rotation and returns the true top-k
        (ties by enrolment order). ``exact=False`` first screens the ``coarse_words``-word sample
        of every code and compares in full only those whose sample distance is below
        ``coarse_threshold`` at some rotation: several times faster, exact for every code it
        returns, but a code whose sample looks worse than the threshold is missed (the benchmark
        measures how often that happens to genuine mates). Missing places are padded with
        ``inf``/``-1``/``0``.
        """
        k = self._check_k(k)
        shifts, pc, pm = self._rotations(code, mask, max_shift)
        gc, gm, n_rows, row_ids = self._snapshot()
        if exact:
            hd, rows, sidx, bits = cpu.iris_scan_topk(
                gc, gm, n_rows, pc[None], pm[None], k, self.min_valid_bits
            )
            out = self._finish(hd[0], rows[0], sidx[0], bits[0], shifts, row_ids)
        else:
            out = self._fast(gc, gm, n_rows, row_ids, pc, pm, shifts, k, coarse_threshold)
        return out if with_bits else out[:3]

    def _fast(
        self,
        gc: npt.NDArray[np.uint64],
        gm: npt.NDArray[np.uint64],
        n_rows: int,
        row_ids: npt.NDArray[np.int64],
        pc: npt.NDArray[np.uint64],
        pm: npt.NDArray[np.uint64],
        shifts: npt.NDArray[np.int32],
        k: int,
        coarse_threshold: float | None,
    ) -> tuple[
        npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]
    ]:
        threshold = self.coarse_threshold if coarse_threshold is None else float(coarse_threshold)
        if not 0 < threshold < 1:
            raise InvalidTemplate(f"coarse_threshold must be in (0, 1), got {threshold}")
        screened = np.flatnonzero(shifts % self.coarse_shift_step == 0)
        screen = cpu.iris_scan_coarse(
            gc, gm, pc[screened], pm[screened], self.coarse_words, threshold
        )
        rows = np.flatnonzero(screen[:n_rows] < 0).astype(np.int64)
        hd, sidx, bits = cpu.iris_rows_exact(gc, gm, rows, pc, pm, self.min_valid_bits)
        order = np.lexsort((rows, hd))[:k]
        order = order[np.isfinite(hd[order])]
        pad = k - order.size
        return self._finish(
            np.concatenate([hd[order], np.full(pad, np.inf)]),
            np.concatenate([rows[order], np.full(pad, -1, np.int64)]),
            np.concatenate([sidx[order], np.zeros(pad, np.int32)]),
            np.concatenate([bits[order], np.zeros(pad, np.int32)]),
            shifts,
            row_ids,
        )

    @staticmethod
    def _finish(
        hd: npt.NDArray[np.float64],
        rows: npt.NDArray[np.int64],
        sidx: npt.NDArray[np.int32],
        bits: npt.NDArray[np.int32],
        shifts: npt.NDArray[np.int32],
        row_ids: npt.NDArray[np.int64],
    ) -> tuple[
        npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32]
    ]:
        found = rows >= 0
        safe = row_ids if row_ids.size else np.full(1, -1, np.int64)
        ids = np.where(found, safe[np.where(found, rows, 0)], -1).astype(np.int64)
        return (
            hd.astype(np.float64),
            ids,
            np.where(found, shifts[sidx], 0).astype(np.int32),
            np.where(found, bits, 0).astype(np.int32),
        )

    def score(
        self,
        code: BoolArray,
        mask: BoolArray,
        ids: object,
        *,
        max_shift: int | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """1:1 against enrolled ids: exact ``(hd, shifts, n_bits)`` per id, in the order given.

        ``hd`` is ``inf`` where no rotation has ``min_valid_bits`` valid bits in common. An id
        not in the gallery raises :class:`~matcher.errors.UnknownId`.
        """
        ids_a = as_ids(ids)
        shifts, pc, pm = self._rotations(code, mask, max_shift)
        with self._lock:
            rows = self._index.find(ids_a)
            gc, gm = self._codes, self._masks
            hd, sidx, bits = cpu.iris_rows_exact(gc, gm, rows, pc, pm, self.min_valid_bits)
        return hd.astype(np.float64), shifts[sidx].astype(np.int32), bits.astype(np.int32)

    def search_template(
        self, template: IrisTemplate, k: int = 10, exact: bool = True
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """:meth:`search` with a template; refuses one of the other eye (never matched across)."""
        if self.eye is not None and template.eye != self.eye:
            raise InvalidTemplate(
                f"probe is a {template.eye} eye; this gallery holds {self.eye} eyes"
            )
        result = self.search(template.code, template.mask, k, exact)
        return result[0], result[1], result[2]

    def search_batch(
        self,
        codes: BoolArray,
        masks: BoolArray,
        k: int = 10,
        exact: bool = True,
        *,
        max_shift: int | None = None,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """Top-k for a batch of probes ``(P, r, c, b)``: arrays ``(P, k)``.

        In exact mode the whole batch runs in one pass over the gallery: each block of codes is
        read from memory once and compared against every probe while it sits in cache.
        """
        k = self._check_k(k)
        codes, masks = validate_code_mask(
            codes, masks, self.geometry, self.min_valid_bits, batch=True, what="probe"
        )
        rotations = [self._rotations(c, m, max_shift) for c, m in zip(codes, masks, strict=True)]
        if not rotations:
            return np.zeros((0, k)), np.zeros((0, k), np.int64), np.zeros((0, k), np.int32)
        shifts = rotations[0][0]
        pc = np.stack([r[1] for r in rotations])
        pm = np.stack([r[2] for r in rotations])
        gc, gm, n_rows, row_ids = self._snapshot()
        if exact:
            hd, rows, sidx, bits = cpu.iris_scan_topk(
                gc, gm, n_rows, pc, pm, k, self.min_valid_bits
            )
            outs = [
                self._finish(hd[i], rows[i], sidx[i], bits[i], shifts, row_ids)
                for i in range(len(rotations))
            ]
        else:
            outs = [
                self._fast(gc, gm, n_rows, row_ids, pc[i], pm[i], shifts, k, None)
                for i in range(len(rotations))
            ]
        return (
            np.stack([o[0] for o in outs]),
            np.stack([o[1] for o in outs]),
            np.stack([o[2] for o in outs]),
        )

    def search_range(
        self, code: BoolArray, mask: BoolArray, threshold: float, *, max_shift: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """Every code with exact hd <= ``threshold``: ``(hd, ids, shifts)`` ascending by hd."""
        if not isinstance(threshold, float | int | np.floating) or not 0 <= float(threshold) <= 1:
            raise InvalidTemplate(f"threshold must be a number in [0, 1], got {threshold!r}")
        shifts, pc, pm = self._rotations(code, mask, max_shift)
        gc, gm, n_rows, row_ids = self._snapshot()
        hd, sidx, _ = cpu.iris_scan_all(gc, gm, pc, pm, self.min_valid_bits)
        rows = np.flatnonzero(hd[:n_rows] <= float(threshold))
        rows = rows[np.lexsort((rows, hd[rows]))]
        return hd[rows], row_ids[rows], shifts[sidx[rows]].astype(np.int32)

    # ----------------------------------------------------------------------------- save/load
    def state(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """Header and arrays that :meth:`from_state` rebuilds this gallery from. The arrays are
        copies, so they can be written out while the gallery goes on changing."""
        with self._lock:
            n_blocks = -(-self._n_rows // self.lanes)
            arrays = {
                "codes": self._codes[:n_blocks].copy(),
                "masks": self._masks[:n_blocks].copy(),
                "row_ids": self._row_ids[: self._n_rows].copy(),
                "alive": self._alive[: self._n_rows].copy(),
            }
            header: dict[str, Any] = {
                "version": _FILE_VERSION,
                "geometry": list(self.geometry.shape),
                "max_shift": self.max_shift,
                "min_valid_bits": self.min_valid_bits,
                "eye": self.eye,
                "coarse_words": self.coarse_words,
                "coarse_threshold": self.coarse_threshold,
                "coarse_shift_step": self.coarse_shift_step,
                "groups": self.groups,
                "lanes": self.lanes,
                "n_rows": self._n_rows,
            }
        return header, arrays

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the gallery to one file (atomically: a temporary file renamed over ``path``).

        Layout: magic, a length-prefixed JSON header, then the raw arrays at 64-byte offsets, so
        :meth:`load` reads them straight into place without parsing.
        """
        path = Path(path)
        header, arrays = self.state()
        header["arrays"] = {}
        offset = 0
        for name, arr in arrays.items():
            header["arrays"][name] = {
                "dtype": arr.dtype.str,
                "shape": list(arr.shape),
                "offset": offset,
            }
            offset += -(-arr.nbytes // _ALIGN) * _ALIGN
        head = json.dumps(header).encode()
        start = -(-(len(_FILE_MAGIC) + 8 + len(head)) // _ALIGN) * _ALIGN
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(_FILE_MAGIC + len(head).to_bytes(8, "little") + head)
            for name, arr in arrays.items():
                f.seek(start + header["arrays"][name]["offset"])
                f.write(np.ascontiguousarray(arr).data)
            f.truncate(start + offset)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    _FILE_DTYPES = {"codes": "<u8", "masks": "<u8", "row_ids": "<i8", "alive": "|b1"}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IrisGallery:
        """Read a file written by :meth:`save`; ``ValueError`` if it is not one or is damaged."""
        path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            magic = f.read(len(_FILE_MAGIC))
            if magic != _FILE_MAGIC:
                raise InvalidTemplate(f"{path} is not an iris gallery file (bad magic)")
            head_len = int.from_bytes(f.read(8), "little")
            if head_len > 1 << 20:
                raise InvalidTemplate(f"{path}: header length {head_len} is implausible")
            try:
                header = json.loads(f.read(head_len))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidTemplate(f"{path}: header is not valid JSON ({exc})") from exc
            start = -(-(len(_FILE_MAGIC) + 8 + head_len) // _ALIGN) * _ALIGN
            try:
                return cls._from_file(path, header, f, start, size)
            except InvalidTemplate:
                raise
            except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                raise InvalidTemplate(
                    f"{path}: damaged header ({type(exc).__name__}: {exc})"
                ) from exc

    @classmethod
    def _from_file(
        cls, path: Path, header: object, f: BinaryIO, start: int, size: int
    ) -> IrisGallery:
        if not isinstance(header, dict):
            raise InvalidTemplate(f"{path}: header is not a JSON object")
        specs = header["arrays"]
        if not isinstance(specs, dict) or set(specs) != set(cls._FILE_DTYPES):
            raise InvalidTemplate(f"{path}: expected the arrays {sorted(cls._FILE_DTYPES)}")
        arrays = {}
        for name, spec in specs.items():
            if spec["dtype"] != cls._FILE_DTYPES[name]:
                raise InvalidTemplate(
                    f"{path}: {name} has dtype {spec['dtype']!r}, not {cls._FILE_DTYPES[name]!r}"
                )
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(v) for v in spec["shape"])
            offset = int(spec["offset"])
            count = int(np.prod(shape, dtype=np.int64))
            if (
                min(shape, default=0) < 0
                or offset < 0
                or start + offset + count * dtype.itemsize > size
            ):
                raise InvalidTemplate(f"{path}: truncated ({name} runs past the end of the file)")
            f.seek(start + offset)
            arr = np.empty(shape, dtype)
            got = f.readinto(arr.reshape(-1).data.cast("B")) if arr.nbytes else 0  # type: ignore[attr-defined]
            if got != arr.nbytes:
                raise InvalidTemplate(f"{path}: truncated while reading {name}")
            arrays[name] = arr
        return cls.from_state(header, arrays, str(path))

    @classmethod
    def from_state(
        cls, header: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]], where: str
    ) -> IrisGallery:
        """The gallery :meth:`state` described; :class:`InvalidTemplate` naming ``where`` if the
        header or arrays are inconsistent."""
        path = where
        try:
            if header.get("version") != _FILE_VERSION:
                raise InvalidTemplate(
                    f"{path}: gallery file version {header.get('version')} is not {_FILE_VERSION}"
                )
            g = cls(
                IrisGeometry(*header["geometry"]),
                header["max_shift"],
                min_valid_bits=header["min_valid_bits"],
                eye=header["eye"],
                coarse_words=header["coarse_words"],
                coarse_threshold=header["coarse_threshold"],
                coarse_shift_step=header["coarse_shift_step"],
            )
            if g.groups != header["groups"] or g.lanes != header["lanes"]:
                raise InvalidTemplate(
                    f"{path}: layout (groups {header['groups']}, lanes {header['lanes']}) "
                    "differs from this build"
                )
            if set(arrays) != set(cls._FILE_DTYPES) or any(
                arrays[k].dtype != np.dtype(t) for k, t in cls._FILE_DTYPES.items()
            ):
                raise InvalidTemplate(f"{path}: expected the arrays {sorted(cls._FILE_DTYPES)}")
            n_rows = int(header["n_rows"])
            n_blocks = -(-n_rows // g.lanes)
            if (
                arrays["codes"].shape != (n_blocks, g.words, g.lanes)
                or arrays["masks"].shape != arrays["codes"].shape
            ):
                raise InvalidTemplate(f"{path}: code arrays have the wrong shape")
            if arrays["row_ids"].shape != (n_rows,) or arrays["alive"].shape != (n_rows,):
                raise InvalidTemplate(f"{path}: id arrays have the wrong length")
            g._codes, g._masks = arrays["codes"], arrays["masks"]
            g._row_ids = np.zeros(n_blocks * g.lanes, np.int64)
            g._alive = np.zeros(n_blocks * g.lanes, bool)
            g._row_ids[:n_rows] = arrays["row_ids"]
            g._alive[:n_rows] = arrays["alive"]
            g._n_rows = n_rows
            try:
                g._index.rebuild(g._row_ids, np.flatnonzero(g._alive[:n_rows]))
            except InvalidTemplate as exc:
                raise InvalidTemplate(f"{path}: {exc}") from exc
            return g
        except InvalidTemplate:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidTemplate(f"{path}: damaged header ({type(exc).__name__}: {exc})") from exc


from matcher.finger_gallery import FingerGallery  # noqa: E402  (one import path for both galleries)

__all__ = ["IrisGallery", "FingerGallery"]

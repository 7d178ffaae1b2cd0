"""Gallery snapshots: the engine's in-memory galleries on disk, so start-up need not rebuild them.

Rebuilding the galleries from the store means opening and decoding every template, building
every finger's cylinders (about 1 ms each: twenty minutes for a million fingers on 2 cores) and
the fingers' candidate index. A snapshot keeps the result, sealed with the store key
(:mod:`matcher.sealed_file`: it is derived biometric data), with the :class:`PersonStates` it was
taken at. Loading one, the engine compares the store's states now: persons gone or changed since
are dropped from the galleries, persons new or changed are read from the store. The galleries
equal the store whatever happened after the snapshot was written (a crash, later enrolments); a
snapshot that cannot be used (damaged, another key, another feature layout) is reported and
ignored, and the galleries are rebuilt from the store.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher import __version__, finger_params
from matcher.crypto import Sealer
from matcher.finger_index import FingerIndex
from matcher.gallery import IrisGallery
from matcher.person_gallery import POSITIONS, PersonFingerGallery
from matcher.sealed_file import SealedReader, SealedWriter, read_arrays, write_arrays
from matcher.store import PersonStates

FORMAT = 1
PURPOSE = b"amayesh gallery snapshot"


def features_id() -> str:
    """Names the finger feature layout: a snapshot from code with other cylinder constants (or
    another release) is not reused, since its cylinders would not be what this code builds."""
    constants = sorted(
        (k, repr(v))
        for k, v in vars(finger_params).items()
        if k.isupper() and not k.startswith("_")
    )
    return hashlib.sha256(repr((__version__, constants)).encode()).hexdigest()[:16]


class SnapshotUnusable(Exception):
    """The snapshot exists but cannot be used; the message says why (for the operator's log)."""


@dataclass
class Snapshot:
    """What the galleries held, and the store states they held it at."""

    states: PersonStates
    fingers: PersonFingerGallery
    irises: dict[str, IrisGallery]


@dataclass(frozen=True)
class Changes:
    """How the store moved on from a snapshot: rows to drop from the galleries (gone or changed)
    and rows to read from the store (new or changed), both int64 ascending."""

    drop: npt.NDArray[np.int64]
    load: npt.NDArray[np.int64]


def changes(taken: PersonStates, now: PersonStates) -> Changes:
    """Rows gone or changed (drop) and new or changed (load): a person changed when its
    ``person_id``, ``version`` or ``updated_us`` differ under the same ``row_id``."""
    common, i_old, i_new = np.intersect1d(
        taken.row_ids, now.row_ids, assume_unique=True, return_indices=True
    )
    changed = (
        (taken.versions[i_old] != now.versions[i_new])
        | (taken.updated_us[i_old] != now.updated_us[i_new])
        | np.fromiter(
            (taken.person_ids[i] != now.person_ids[j] for i, j in zip(i_old, i_new, strict=True)),
            bool,
            common.size,
        )
    )
    moved = common[changed]
    gone = np.setdiff1d(taken.row_ids, common, assume_unique=True)
    new = np.setdiff1d(now.row_ids, common, assume_unique=True)
    return Changes(drop=np.union1d(gone, moved), load=np.union1d(new, moved))


def write(
    path: str | os.PathLike[str],
    sealer: Sealer,
    states: PersonStates,
    fingers: Mapping[int, Mapping[str, npt.NDArray[Any]]],
    irises: Mapping[str, tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]],
) -> int:
    """Write a snapshot from the galleries' ``state()``s; returns the bytes of data written."""
    names = [p.encode() for p in states.person_ids]
    arrays: dict[str, npt.NDArray[Any]] = {
        "persons.row_ids": states.row_ids,
        "persons.versions": states.versions,
        "persons.updated_us": states.updated_us,
        "persons.id_ends": np.cumsum([len(b) for b in names], dtype=np.int64),
        "persons.ids": np.frombuffer(b"".join(names), np.uint8),
    }
    for pos, st in fingers.items():
        arrays.update({f"finger.{pos}.{k}": v for k, v in st.items()})
    iris_headers = {}
    for eye, (header, st) in irises.items():
        iris_headers[eye] = header
        arrays.update({f"iris.{eye}.{k}": v for k, v in st.items()})
    meta = {"format": FORMAT, "features": features_id(), "iris": iris_headers}
    with SealedWriter(path, sealer, PURPOSE) as w:
        write_arrays(w, meta, arrays)
        return w.bytes_written


def layout(iris_header: Mapping[str, Any]) -> dict[str, Any]:
    """An iris gallery header without its size: what must match for a snapshot to be reused."""
    return {k: v for k, v in iris_header.items() if k != "n_rows"}


def read(path: str | os.PathLike[str], sealer: Sealer, iris_layout: Mapping[str, Any]) -> Snapshot:
    """The snapshot at ``path``; :class:`SnapshotUnusable` (why) if it cannot be used here.
    ``iris_layout``: eye -> :func:`layout` of this engine's iris galleries (geometry, rotations,
    packing), which the snapshot's must equal."""
    from matcher.crypto import StoreIntegrityError
    from matcher.errors import InvalidTemplate

    where = str(path)
    try:
        with SealedReader(path, sealer, PURPOSE) as r:
            # The finger indexes (a third of the bytes) go straight into faiss.
            meta, arrays = read_arrays(
                r, {f"finger.{p}.index": FingerIndex.read for p in POSITIONS}
            )
    except FileNotFoundError:
        raise SnapshotUnusable(f"no snapshot at {where}") from None
    except (OSError, StoreIntegrityError, InvalidTemplate) as exc:
        raise SnapshotUnusable(str(exc)) from exc
    got = meta.get("format") if isinstance(meta, dict) else None
    if got != FORMAT:
        raise SnapshotUnusable(f"{where}: snapshot format {got!r}, not {FORMAT}")
    if meta.get("features") != features_id():
        raise SnapshotUnusable(f"{where}: taken by a release with other finger features")
    headers = meta.get("iris")
    if not isinstance(headers, dict) or {
        e: layout(h) for e, h in headers.items() if isinstance(h, dict)
    } != dict(iris_layout):
        raise SnapshotUnusable(f"{where}: taken with another iris geometry or gallery layout")
    try:
        ends = arrays.pop("persons.id_ends")
        blob = arrays.pop("persons.ids").tobytes()
        starts = np.concatenate([[0], ends[:-1]]) if ends.size else ends
        states = PersonStates(
            row_ids=arrays.pop("persons.row_ids"),
            person_ids=[blob[a:b].decode() for a, b in zip(starts, ends, strict=True)],
            versions=arrays.pop("persons.versions"),
            updated_us=arrays.pop("persons.updated_us"),
        )
        n = states.row_ids.size
        if states.versions.shape != (n,) or states.updated_us.shape != (n,) or ends.shape != (n,):
            raise SnapshotUnusable(f"{where}: person arrays disagree in length")
        finger_states: dict[int, dict[str, npt.NDArray[Any]]] = {p: {} for p in POSITIONS}
        iris_arrays: dict[str, dict[str, npt.NDArray[Any]]] = {e: {} for e in headers}
        for name, a in arrays.items():
            kind, part, key = name.split(".", 2)
            if kind == "finger":
                finger_states[int(part)][key] = a
            elif kind == "iris":
                iris_arrays[part][key] = a
            else:
                raise SnapshotUnusable(f"{where}: unexpected array {name}")
        fingers = PersonFingerGallery.from_state(finger_states, where)
        irises = {
            e: IrisGallery.from_state(headers[e], iris_arrays[e], f"{where}, iris {e}")
            for e in headers
        }
    except (KeyError, ValueError, UnicodeDecodeError, InvalidTemplate) as exc:
        raise SnapshotUnusable(f"{where}: inconsistent contents ({exc})") from exc
    return Snapshot(states, fingers, irises)

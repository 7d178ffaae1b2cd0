"""Large files sealed with the store key: a stream of AES-256-GCM chunks, and arrays inside it.

The galleries' snapshot (:mod:`matcher.snapshot`) holds derived biometric data (minutia
cylinders, iris codes), so it is sealed like every template in the store, but it is gigabytes:
it cannot be one AEAD message. The file is ``MAGIC | file id (16 random bytes)`` then chunks
``final flag (1 byte) | length (4 bytes LE) | sealed chunk``; each chunk's associated data binds
the purpose, the file id, the chunk's index and the final flag, so chunks cannot be reordered,
dropped, spliced from another file, or cut off after a chunk that was not the last.

Writing goes to a temporary file renamed over the target after ``fsync``: a reader sees the old
file or the whole new one. :func:`write_arrays` / :func:`read_arrays` put a JSON header and raw
numpy arrays (dtype and shape in the header) through such a stream.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.crypto import Sealer, StoreIntegrityError

MAGIC = b"AMAYESH SEALED 1"
CHUNK_BYTES = 8 << 20
_FILE_ID_BYTES = 16
_FRAME = 5  # final flag + length
CHUNK_OVERHEAD = 1 + 12 + 16  # the sealer's envelope: key id, nonce, tag
_MAX_SEALED = CHUNK_BYTES + CHUNK_OVERHEAD
_MAX_HEADER = 64 << 20


class SealedWriter:
    """Write-only sealed stream to ``path`` (atomically replaced on :meth:`close`)."""

    def __init__(self, path: str | os.PathLike[str], sealer: Sealer, purpose: bytes) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._sealer = sealer
        self._file_id = secrets.token_bytes(_FILE_ID_BYTES)
        self._purpose = purpose
        self._buf = bytearray()
        self._index = 0
        self._f = open(self._tmp, "wb")  # noqa: SIM115  (closed in close/abort)
        self._f.write(MAGIC + self._file_id)
        self.bytes_written = 0

    def _aad(self, index: int, final: bool) -> bytes:
        return b"%s|%s|%d|%d" % (self._purpose, self._file_id.hex().encode(), index, final)

    def _emit(self, plain: bytes, final: bool) -> None:
        blob = self._sealer.seal(plain, self._aad(self._index, final))
        self._f.write(bytes([final]) + len(blob).to_bytes(4, "little") + blob)
        self._index += 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.bytes_written += view.nbytes
        pos = 0
        while pos < view.nbytes:
            take = min(CHUNK_BYTES - len(self._buf), view.nbytes - pos)
            self._buf += view[pos : pos + take]
            pos += take
            if len(self._buf) == CHUNK_BYTES:
                self._emit(bytes(self._buf), final=False)
                self._buf.clear()

    def close(self) -> None:
        """Seal the last chunk, sync, and put the file in place."""
        self._emit(bytes(self._buf), final=True)
        self._buf.clear()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)
        try:  # the rename itself survives a power cut only once the directory is synced
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class SealedReader:
    """Read side of :class:`SealedWriter`. Any damage raises :class:`StoreIntegrityError`."""

    def __init__(self, path: str | os.PathLike[str], sealer: Sealer, purpose: bytes) -> None:
        self.path = Path(path)
        self._sealer = sealer
        self._purpose = purpose
        self._f = open(self.path, "rb")  # noqa: SIM115  (closed in close)
        self.size = os.fstat(self._f.fileno()).st_size
        head = self._f.read(len(MAGIC) + _FILE_ID_BYTES)
        if len(head) != len(MAGIC) + _FILE_ID_BYTES or not head.startswith(MAGIC):
            self._f.close()
            raise StoreIntegrityError(f"{self.path} is not a sealed amayesh file")
        self._file_id = head[len(MAGIC) :]
        # One buffer each for the sealed and the opened chunk, reused: fresh 8 MiB buffers per
        # chunk cost a page fault every 4 KiB, several times the decryption itself.
        self._sealed = bytearray(_MAX_SEALED)
        self._opened = bytearray(CHUNK_BYTES)
        self._plain = memoryview(self._opened)[:0]
        self._pos = 0
        self._index = 0
        self._final_seen = False

    def _next_chunk(self, into: memoryview | None = None) -> bool:
        """Read and open the next chunk: straight into ``into`` when it fills it exactly (returns
        True), else into the reader's buffer, then ``self._plain`` (returns False)."""
        if self._final_seen:
            raise StoreIntegrityError(f"{self.path}: read past the end of the sealed data")
        frame = self._f.read(_FRAME)
        if len(frame) != _FRAME or frame[0] not in (0, 1):
            raise StoreIntegrityError(f"{self.path}: truncated or damaged at chunk {self._index}")
        final = bool(frame[0])
        length = int.from_bytes(frame[1:], "little")
        blob = memoryview(self._sealed)[: min(length, _MAX_SEALED)]
        got = self._f.readinto(blob) if length <= _MAX_SEALED else 0
        if got != length or not length:
            raise StoreIntegrityError(f"{self.path}: truncated or damaged at chunk {self._index}")
        aad = b"%s|%s|%d|%d" % (self._purpose, self._file_id.hex().encode(), self._index, final)
        n = length - CHUNK_OVERHEAD
        direct = into is not None and n == into.nbytes
        target = into if into is not None and direct else memoryview(self._opened)
        if n > target.nbytes:
            raise StoreIntegrityError(f"{self.path}: chunk {self._index} is too long")
        try:
            self._sealer.open_into(blob, aad, target)
        except StoreIntegrityError:
            raise StoreIntegrityError(
                f"{self.path}: chunk {self._index} failed authentication (altered, from another "
                "file, or sealed with a different key)"
            ) from None
        self._plain = memoryview(self._opened)[: 0 if direct else n]
        self._pos = 0
        self._index += 1
        self._final_seen = final
        return direct

    def readinto(self, out: memoryview) -> None:
        """Fill ``out`` exactly, or raise."""
        out = out.cast("B")
        filled = 0
        while filled < out.nbytes:
            if self._pos == len(self._plain):
                rest = out.nbytes - filled
                # A whole chunk inside ``out`` is opened straight into it.
                if self._next_chunk(
                    out[filled : filled + CHUNK_BYTES] if rest >= CHUNK_BYTES else None
                ):
                    filled += CHUNK_BYTES
                continue
            take = min(len(self._plain) - self._pos, out.nbytes - filled)
            out[filled : filled + take] = self._plain[self._pos : self._pos + take]
            self._pos += take
            filled += take

    def read(self, n: int) -> bytes:
        out = bytearray(n)
        self.readinto(memoryview(out))
        return bytes(out)

    def check_end(self) -> None:
        """Everything was read: the final chunk seen and consumed, nothing after it."""
        if self._pos == len(self._plain) and not self._final_seen:
            self._next_chunk()  # an empty final chunk after a full one
        if not self._final_seen or self._pos != len(self._plain) or self._f.read(1):
            raise StoreIntegrityError(f"{self.path}: data continues past its declared end")

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SealedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_arrays(
    w: SealedWriter, meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]
) -> None:
    """A JSON header (``meta`` and each array's dtype and shape), then the arrays' raw bytes."""
    specs = []
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise ValueError(f"array {name} holds Python objects")
        specs.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape)})
    head = json.dumps({"meta": meta, "arrays": specs}).encode()
    w.write(len(head).to_bytes(8, "little") + head)
    for a in arrays.values():
        if a.nbytes:
            w.write(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)


def read_arrays(
    r: SealedReader, streamed: Mapping[str, Callable[[Callable[[int], bytes]], Any]] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What :func:`write_arrays` wrote; sizes are checked against the file before allocating.

    ``streamed``: for these array names, instead of an array, what the given function builds
    from the bytes, read through the ``read(n)`` it is handed (a serialised index read straight
    into its own structures, without a second in-memory copy); it must read them all."""
    head_len = int.from_bytes(r.read(8), "little")
    if head_len > _MAX_HEADER:
        raise StoreIntegrityError(f"{r.path}: header of {head_len} bytes is implausible")
    try:
        head = json.loads(r.read(head_len))
        specs = head["arrays"]
        meta = head["meta"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StoreIntegrityError(f"{r.path}: damaged header ({exc})") from exc
    budget = r.size
    arrays: dict[str, npt.NDArray[Any]] = {}
    for spec in specs:
        try:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(v) for v in spec["shape"])
            name = str(spec["name"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreIntegrityError(f"{r.path}: damaged array entry ({exc})") from exc
        if dtype.hasobject or min(shape, default=0) < 0:
            raise StoreIntegrityError(f"{r.path}: array {name} has an impossible type or shape")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        budget -= nbytes
        if budget < 0:
            raise StoreIntegrityError(f"{r.path}: array {name} runs past the end of the file")
        if streamed and name in streamed:
            left = [nbytes]

            def read(n: int, left: list[int] = left) -> bytes:
                n = min(int(n), left[0])
                left[0] -= n
                return r.read(n)

            arrays[name] = streamed[name](read)
            if left[0]:
                raise StoreIntegrityError(f"{r.path}: {name} left {left[0]} bytes unread")
            continue
        a = np.empty(shape, dtype)
        if nbytes:
            r.readinto(a.reshape(-1).view(np.uint8).data)
        arrays[name] = a
    r.check_end()
    return meta, arrays

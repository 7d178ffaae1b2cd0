"""Encryption at rest for templates and images: AES-256-GCM with row-bound associated data.

Every biometric value the store writes (a template blob, a source image) is sealed here first.
AES-GCM authenticates as well as encrypts, and the *associated data* (AAD) names the row the value
belongs to (``b"finger|<row id>|<position>|template"``): a ciphertext copied into another row, or
edited by one bit, fails to open with :class:`StoreIntegrityError` instead of silently yielding
someone else's fingerprint.

Sealed layout::

    key id (1 byte) | nonce (12 random bytes) | ciphertext | GCM tag (16 bytes)

The key id picks the key from the :class:`Sealer`'s ring, so keys can rotate: a new key gets a new
id and seals new data while old ids still open old rows (re-sealing them is a store job). The key
id byte is authenticated too (it is part of the AAD). A random 96-bit nonce per message is safe
for far more messages than a store ever writes with one key (NIST SP 800-38D, section 8.3: 2**32).

Keys are 32 random bytes, read by :func:`load_key` from a file (raw, hex or base64) or from the
environment; :func:`generate_key_file` writes a new one readable by its owner only. Losing the key
loses every template: back it up apart from the database.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from matcher.errors import MatcherError

__all__ = [
    "KEY_BYTES",
    "NONCE_BYTES",
    "TAG_BYTES",
    "KEY_ENV",
    "InvalidKey",
    "StoreIntegrityError",
    "Sealer",
    "parse_key",
    "load_key",
    "generate_key_file",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Environment variable :func:`load_key` reads when no key file is given.
KEY_ENV = "AMAYESH_STORE_KEY"
_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES


class StoreIntegrityError(MatcherError, RuntimeError):
    """Stored data failed authentication: tampered, moved to another row, or sealed with a key
    this store does not hold. Never an input error: the database itself is suspect."""


class InvalidKey(MatcherError, ValueError):
    """A store key is missing or malformed (wrong length or encoding)."""


def _check_key(key: object, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise InvalidKey(f"{what} must be bytes, got {type(key).__name__}")
    if len(key) != KEY_BYTES:
        raise InvalidKey(f"{what} must be {KEY_BYTES} bytes (AES-256), got {len(key)}")
    return bytes(key)


class Sealer:
    """Seals and opens byte strings with AES-256-GCM. Thread-safe (no mutable state).

    ``key`` seals new data under ``key_id`` (0-255); ``old_keys`` maps further ids to keys that
    only open data sealed before a rotation.
    """

    def __init__(
        self, key: bytes, key_id: int = 1, *, old_keys: Mapping[int, bytes] | None = None
    ) -> None:
        if isinstance(key_id, bool) or not isinstance(key_id, int) or not 0 <= key_id <= 255:
            raise InvalidKey(f"key id must be an integer in 0..255, got {key_id!r}")
        ring = {k: _check_key(v, f"old key {k}") for k, v in (old_keys or {}).items()}
        ring[key_id] = _check_key(key, "store key")
        self._key_id = key_id
        self._aead = {k: AESGCM(v) for k, v in ring.items()}

    @property
    def key_id(self) -> int:
        """The id new data is sealed under."""
        return self._key_id

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``key id | nonce | ciphertext | tag``; ``aad`` must be given again to open it."""
        head = bytes([self._key_id]) + secrets.token_bytes(NONCE_BYTES)
        return head + self._aead[self._key_id].encrypt(head[1:], plaintext, head[:1] + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext :meth:`seal` was given; :class:`StoreIntegrityError` if ``blob`` was
        altered, belongs to different ``aad`` (another row), or its key is not in the ring."""
        aead, nonce, body, full_aad = self._envelope(blob, aad)
        try:
            return aead.decrypt(nonce, bytes(body), full_aad)
        except InvalidTag:
            raise self._forged(aad) from None

    def open_into(self, blob: bytes | memoryview, aad: bytes, out: memoryview) -> int:
        """:meth:`open` into ``out`` (at least the plaintext's length); returns that length.
        For large files: no new buffer per call (fresh memory costs a page fault per 4 KiB)."""
        aead, nonce, body, full_aad = self._envelope(blob, aad)
        n = len(body) - TAG_BYTES
        try:
            decrypt_into = getattr(aead, "decrypt_into", None)
            if decrypt_into is not None:  # cryptography >= 45
                decrypt_into(nonce, body, full_aad, out[:n])
            else:
                out[:n] = aead.decrypt(nonce, bytes(body), full_aad)
        except InvalidTag:
            raise self._forged(aad) from None
        return n

    def _envelope(
        self, blob: bytes | memoryview, aad: bytes
    ) -> tuple[AESGCM, bytes, memoryview, bytes]:
        """Checks the envelope: ``(cipher of its key, nonce, ciphertext with tag, full aad)``."""
        if len(blob) < _OVERHEAD:
            raise StoreIntegrityError(
                f"stored value for {aad.decode(errors='replace')} is {len(blob)} bytes, shorter "
                f"than the {_OVERHEAD}-byte envelope: damaged"
            )
        aead = self._aead.get(blob[0])
        if aead is None:
            raise StoreIntegrityError(
                f"stored value for {aad.decode(errors='replace')} was sealed with key id "
                f"{blob[0]}, which this store's key ring lacks (known: {sorted(self._aead)})"
            )
        view = memoryview(blob)
        return (
            aead,
            bytes(view[1 : 1 + NONCE_BYTES]),
            view[1 + NONCE_BYTES :],
            bytes(view[:1]) + aad,
        )

    @staticmethod
    def _forged(aad: bytes) -> StoreIntegrityError:
        return StoreIntegrityError(
            f"stored value for {aad.decode(errors='replace')} failed authentication: it was "
            "altered, copied from another row or file, or sealed with a different key"
        )


def parse_key(data: bytes | str, source: str) -> bytes:
    """32 key bytes from raw bytes (exactly 32), 64 hex characters, or base64 of 32 bytes.

    Whitespace around (and, for text, inside) the encoded forms is ignored. ``source`` names
    where the key came from in the error message; the key itself is never echoed.
    """
    if isinstance(data, bytes) and len(data) == KEY_BYTES:
        return data
    raw = data.encode("latin-1", errors="replace") if isinstance(data, str) else data
    text = b"".join(raw.split())
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass  # 64 characters that are not hex: perhaps base64 of 48 bytes; reported below
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is not None and len(decoded) == KEY_BYTES:
        return decoded
    found = f"base64 of {len(decoded)} bytes" if decoded else f"{len(text)} non-space bytes"
    raise InvalidKey(
        f"{source}: a store key is {KEY_BYTES} raw bytes, {2 * KEY_BYTES} hex characters or "
        f"base64 of {KEY_BYTES} bytes; found {found}"
    )


def load_key(path: str | os.PathLike[str] | None = None, env: str = KEY_ENV) -> bytes:
    """The store key from the file ``path``, else from the environment variable ``env``.

    Raises :class:`InvalidKey` when neither is given, the file cannot be read, or the key has
    the wrong length or encoding. Logs a warning when the key file is readable by group or others.
    """
    if path is not None:
        p = Path(path)
        try:
            data = p.read_bytes()
            mode = p.stat().st_mode
        except OSError as exc:
            raise InvalidKey(f"cannot read store key file {p}: {exc.strerror or exc}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("store key file %s is accessible to group or others (chmod 600 it)", p)
        return parse_key(data, f"store key file {p}")
    value = os.environ.get(env)
    if value is None or not value.strip():
        raise InvalidKey(
            f"no store key: give a key file or set {env} (hex or base64 of {KEY_BYTES} bytes)"
        )
    return parse_key(value, f"environment variable {env}")


def generate_key_file(path: str | os.PathLike[str], *, overwrite: bool = False) -> bytes:
    """Write a new random key to ``path`` as 64 hex characters, mode 0600; return the key.

    Creates missing parent folders (mode 0700). Refuses to replace an existing file unless
    ``overwrite``: a replaced key makes every template sealed with it unreadable.
    """
    p = Path(path)
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise InvalidKey(
            f"store key file {p} already exists; refusing to replace it (data sealed with it "
            "would become unreadable)"
        ) from None
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by umask and ignored for existing files
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key

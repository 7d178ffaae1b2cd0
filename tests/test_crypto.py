"""matcher.crypto: AES-256-GCM sealing bound to a row, key files and key parsing."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from matcher.crypto import (
    KEY_BYTES,
    InvalidKey,
    Sealer,
    StoreIntegrityError,
    generate_key_file,
    load_key,
    parse_key,
)
from matcher.errors import MatcherError

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
AAD = b"finger|17|3|template"


def test_round_trip_and_layout() -> None:
    s = Sealer(KEY, key_id=7)
    for plain in (b"", b"x", bytes(range(256)) * 20):
        sealed = s.seal(plain, AAD)
        assert sealed[0] == 7
        assert len(sealed) == 1 + 12 + len(plain) + 16
        assert s.open(sealed, AAD) == plain
    a, b = s.seal(b"same", AAD), s.seal(b"same", AAD)
    assert a != b  # a fresh random nonce each time
    assert b"same" not in a


def test_every_tampered_byte_fails_authentication() -> None:
    s = Sealer(KEY)
    sealed = s.seal(b"minutiae of someone", AAD)
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(StoreIntegrityError):
            s.open(bytes(bad), AAD)
    for cut in (0, 1, 13, 28, len(sealed) - 1):
        with pytest.raises(StoreIntegrityError):
            s.open(sealed[:cut], AAD)


def test_wrong_row_or_key_fails() -> None:
    sealed = Sealer(KEY).seal(b"template", AAD)
    with pytest.raises(StoreIntegrityError, match="finger\\|18\\|3\\|template.*authentication"):
        Sealer(KEY).open(sealed, b"finger|18|3|template")
    with pytest.raises(StoreIntegrityError, match="authentication"):
        Sealer(OTHER).open(sealed, AAD)
    with pytest.raises(StoreIntegrityError, match="key id 1"):
        Sealer(KEY, key_id=2).open(sealed, AAD)
    err = StoreIntegrityError("x")
    assert isinstance(err, MatcherError) and isinstance(err, RuntimeError)


def test_key_rotation_opens_old_data_and_seals_with_the_new_key() -> None:
    old = Sealer(KEY, key_id=1)
    sealed_old = old.seal(b"enrolled last year", AAD)
    rotated = Sealer(OTHER, key_id=2, old_keys={1: KEY})
    assert rotated.open(sealed_old, AAD) == b"enrolled last year"
    sealed_new = rotated.seal(b"enrolled today", AAD)
    assert sealed_new[0] == 2 and rotated.key_id == 2
    with pytest.raises(StoreIntegrityError, match="key id 2"):
        old.open(sealed_new, AAD)
    # The key id byte is authenticated: relabelling a blob with another id fails.
    relabelled = bytes([1]) + sealed_new[1:]
    with pytest.raises(StoreIntegrityError):
        Sealer(OTHER, key_id=1, old_keys={2: OTHER}).open(relabelled, AAD)


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(33), "not bytes"])
def test_sealer_refuses_bad_keys(bad: object) -> None:
    with pytest.raises(InvalidKey, match="32 bytes|must be bytes"):
        Sealer(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey, match="key id"):
        Sealer(KEY, key_id=256)


@pytest.mark.parametrize(
    "data",
    [
        KEY,
        KEY.hex().encode(),
        KEY.hex().upper().encode() + b"\n",
        b"  " + KEY.hex()[:32].encode() + b"\n" + KEY.hex()[32:].encode() + b"\r\n",
        base64.b64encode(KEY),
        base64.b64encode(KEY) + b"\n",
        KEY.hex(),
        " " + base64.b64encode(KEY).decode() + "\n",
    ],
)
def test_key_encodings(data: bytes | str) -> None:
    assert parse_key(data, "test key") == KEY


@pytest.mark.parametrize(
    "data",
    [
        bytes(31),
        bytes(33),
        KEY.hex()[:-2],
        KEY.hex() + "00",
        base64.b64encode(bytes(16)),
        "zz" * 32,
    ],
)
def test_wrong_length_or_encoding_is_refused_without_echoing_the_key(data: bytes | str) -> None:
    with pytest.raises(InvalidKey, match="test key: a store key is 32 raw bytes") as info:
        parse_key(data, "test key")
    text = str(info.value)
    assert KEY.hex()[:16] not in text and "zzzz" not in text


def test_load_key_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)
    raw.chmod(0o600)
    assert load_key(raw) == KEY
    hexfile = tmp_path / "hex.key"
    hexfile.write_text(KEY.hex() + "\n")
    hexfile.chmod(0o600)
    assert load_key(str(hexfile)) == KEY
    monkeypatch.setenv("AMAYESH_TEST_KEY", base64.b64encode(OTHER).decode())
    assert load_key(env="AMAYESH_TEST_KEY") == OTHER
    monkeypatch.setenv("AMAYESH_TEST_KEY", OTHER.hex())
    assert load_key(env="AMAYESH_TEST_KEY") == OTHER
    assert load_key(hexfile, env="AMAYESH_TEST_KEY") == KEY  # the file wins
    monkeypatch.setenv("AMAYESH_TEST_KEY", "abcd")
    with pytest.raises(InvalidKey, match="environment variable AMAYESH_TEST_KEY"):
        load_key(env="AMAYESH_TEST_KEY")
    monkeypatch.delenv("AMAYESH_TEST_KEY")
    with pytest.raises(InvalidKey, match="no store key"):
        load_key(env="AMAYESH_TEST_KEY")
    with pytest.raises(InvalidKey, match="cannot read store key file"):
        load_key(tmp_path / "absent.key")
    short = tmp_path / "short.key"
    short.write_bytes(bytes(20))
    with pytest.raises(InvalidKey, match=f"short.key: a store key is {KEY_BYTES} raw bytes"):
        load_key(short)


def test_world_readable_key_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "open.key"
    p.write_text(KEY.hex())
    p.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="matcher.crypto"):
        assert load_key(p) == KEY
    assert "chmod 600" in caplog.text


def test_generate_key_file(tmp_path: Path) -> None:
    old_umask = os.umask(0o000)  # even a permissive umask must not widen the mode
    try:
        path = tmp_path / "data" / "dev" / "store.key"
        key = generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == key.hex() + "\n"
    assert load_key(path) == key
    with pytest.raises(InvalidKey, match="already exists"):
        generate_key_file(path)
    assert load_key(path) == key  # untouched
    again = generate_key_file(path, overwrite=True)
    assert again != key and load_key(path) == again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

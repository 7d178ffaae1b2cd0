"""Gallery snapshots: sealed array files, the store diff, and start-up from a snapshot that equals
a rebuild from the store whatever changed in between."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher import sealed_file, snapshot
from matcher.crypto import Sealer, StoreIntegrityError, generate_key_file, load_key
from matcher.engine import Engine
from matcher.store import Biometrics, PersonStates, Store
from tests.test_engine import ACTOR, PERSONS, World


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 1 KiB, so every test file spans many chunks."""
    monkeypatch.setattr(sealed_file, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(sealed_file, "_MAX_SEALED", 1024 + sealed_file.CHUNK_OVERHEAD)


SEALER = Sealer(bytes(range(32)))
ARRAYS = {
    "empty": np.zeros((0, 3), np.uint64),
    "scalar": np.array(7, np.int64),
    "flags": np.array([True, False, True]),
    "big": np.arange(5000, dtype=np.float64).reshape(50, 100),
}


def _write(path: Path) -> None:
    with sealed_file.SealedWriter(path, SEALER, b"test") as w:
        sealed_file.write_arrays(w, {"hello": ["world", 1]}, ARRAYS)


def _read(path: Path, sealer: Sealer = SEALER, purpose: bytes = b"test") -> tuple:
    with sealed_file.SealedReader(path, sealer, purpose) as r:
        return sealed_file.read_arrays(r)


def test_sealed_arrays_round_trip(tmp_path: Path, small_chunks: None) -> None:
    _write(tmp_path / "f")
    meta, arrays = _read(tmp_path / "f")
    assert meta == {"hello": ["world", 1]}
    assert list(arrays) == list(ARRAYS)
    for k, a in ARRAYS.items():
        assert arrays[k].dtype == a.dtype and np.array_equal(arrays[k], a)
    assert b"world" not in (tmp_path / "f").read_bytes()  # sealed, not merely framed
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_last_chunk", "append", "swap"])
def test_sealed_file_damage_is_detected(tmp_path: Path, small_chunks: None, damage: str) -> None:
    path = tmp_path / "f"
    _write(path)
    data = bytearray(path.read_bytes())
    head = len(sealed_file.MAGIC) + 16
    frames = []  # (start, end) of each chunk's frame
    pos = head
    while pos < len(data):
        end = pos + 5 + int.from_bytes(data[pos + 1 : pos + 5], "little")
        frames.append((pos, end))
        pos = end
    assert len(frames) > 5
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        del data[len(data) - 100 :]
    elif damage == "drop_last_chunk":
        del data[frames[-1][0] :]
    elif damage == "append":
        data += data[frames[1][0] : frames[1][1]]
    else:  # swap two chunks
        (a0, a1), (b0, b1) = frames[1], frames[2]
        data = data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]
    path.write_bytes(bytes(data))
    with pytest.raises(StoreIntegrityError):
        _read(path)


def test_sealed_file_needs_its_key_and_purpose(tmp_path: Path) -> None:
    _write(tmp_path / "f")
    with pytest.raises(StoreIntegrityError):
        _read(tmp_path / "f", Sealer(bytes(32)))
    with pytest.raises(StoreIntegrityError):
        _read(tmp_path / "f", purpose=b"other")
    (tmp_path / "g").write_bytes(b"not sealed at all")
    with pytest.raises(StoreIntegrityError):
        _read(tmp_path / "g")


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    _write(path)
    before = path.read_bytes()
    with pytest.raises(ValueError), sealed_file.SealedWriter(path, SEALER, b"test") as w:
        sealed_file.write_arrays(w, {}, {"objects": np.array([object()])})
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def _states(rows: list[tuple[int, str, int, int]]) -> PersonStates:
    return PersonStates(
        row_ids=np.array([r[0] for r in rows], np.int64),
        person_ids=[r[1] for r in rows],
        versions=np.array([r[2] for r in rows], np.int64),
        updated_us=np.array([r[3] for r in rows], np.int64),
    )


def test_changes_known_answer() -> None:
    taken = _states([(1, "A", 1, 10), (2, "B", 1, 10), (3, "C", 2, 30), (5, "E", 1, 50)])
    now = _states([(1, "A", 1, 10), (3, "C", 3, 31), (5, "X", 1, 50), (6, "F", 1, 60)])
    ch = snapshot.changes(taken, now)
    assert ch.drop.tolist() == [2, 3, 5]  # 2 deleted, 3 updated, 5 another person (restored db)
    assert ch.load.tolist() == [3, 5, 6]
    empty = snapshot.changes(now, now)
    assert empty.drop.size == 0 and empty.load.size == 0


def _engine(path: Path, world: World, snap: Path | None = None) -> tuple[Engine, object]:
    key_file = path / "key"
    key = load_key(key_file) if key_file.exists() else generate_key_file(key_file)
    e = Engine(Store.open(f"sqlite:///{path / 'store.db'}", key), world.thresholds)
    return e, e.load(snapshot_path=snap)


def _answers(e: Engine, world: World) -> list:
    out = []
    for k in range(PERSONS):
        res = e.identify(world.finger_probes[k], world.iris_probes[k])
        out.append([(c.person_id, c.scores) for c in res.candidates])
        for pos in world.positions:  # the finger index too, one finger at a time
            res = e.identify({pos: world.finger_probes[k][pos]}, {})
            out.append([(c.person_id, c.scores) for c in res.candidates])
    return out


def test_start_from_a_snapshot_then_the_changes_since(tmp_path: Path, world: World) -> None:
    snap = tmp_path / "galleries.snapshot"
    e, report = _engine(tmp_path, world, snap)
    assert report.source == "store" and "no snapshot" in report.note
    for k in range(8):
        e.enroll(f"P-{k}", world.bio(k, fingers=k % 4 != 1), ACTOR)
    saved = e.save_snapshot(snap)
    assert saved.persons == 8 and saved.bytes > 0 and e.changes_since_snapshot == 0
    # After the snapshot: enrolments, an update, a delete (a crash would lose no more than this).
    for k in range(8, PERSONS):
        e.enroll(f"P-{k}", world.bio(k), ACTOR)
    e.update("P-3", Biometrics(fingers={7: world.fingers[10][7]}), ACTOR)
    e.delete("P-6", ACTOR)
    assert e.changes_since_snapshot == PERSONS - 8 + 2
    expected, counts = _answers(e, world), e.counts()
    e.store.close()

    again, report = _engine(tmp_path, world, snap)
    assert report.source == "snapshot" and report.note == ""
    assert report.persons_dropped == 2  # P-3 (changed) and P-6 (gone)
    assert report.persons_read == PERSONS - 8 + 1  # the new ones and P-3 again
    assert again.counts() == counts
    assert _answers(again, world) == expected
    assert again.verify("P-3", {7: world.finger_probes[10][7]}, {}).match
    again.store.close()

    rebuilt, report = _engine(tmp_path, world)  # no snapshot: the yardstick
    assert report.source == "store" and report.persons_read == PERSONS - 1
    assert _answers(rebuilt, world) == expected
    rebuilt.store.close()


def test_an_unusable_snapshot_is_ignored(tmp_path: Path, world: World) -> None:
    snap = tmp_path / "galleries.snapshot"
    e, _ = _engine(tmp_path, world, snap)
    for k in range(4):
        e.enroll(f"P-{k}", world.bio(k), ACTOR)
    e.save_snapshot(snap)
    expected = _answers(e, world)
    e.store.close()
    good = snap.read_bytes()
    for at in (len(good) // 3, len(good) // 2, len(good) - 10):  # arrays, finger index, end
        data = bytearray(good)
        data[at] ^= 1
        snap.write_bytes(bytes(data))
        again, report = _engine(tmp_path, world, snap)
        assert report.source == "store" and "authentication" in report.note, report.note
        assert _answers(again, world) == expected
        again.store.close()
    # Another store's key cannot open it either.
    other = tmp_path / "other"
    other.mkdir()
    Sealer(load_key(tmp_path / "key"))  # the right key still parses
    stranger, _ = _engine(other, world)
    stranger.save_snapshot(other / "galleries.snapshot")
    stranger.store.close()
    (tmp_path / "galleries.snapshot").write_bytes((other / "galleries.snapshot").read_bytes())
    again, report = _engine(tmp_path, world, snap)
    assert report.source == "store" and "authentication" in report.note
    assert _answers(again, world) == expected
    again.store.close()


def test_server_restarts_from_its_snapshot(tmp_path: Path) -> None:
    """SIGTERM writes the snapshot; the next start reads no template from the store; after a
    kill -9 the next start reads only what changed since."""
    from matcher.client import MatcherClient
    from tests.reliability.harness import ADMIN_TOKEN, ServerProcess, calibrate, population

    people = population(6, seed=3)
    server = ServerProcess(tmp_path / "s", thresholds=calibrate(), max_workers=2)
    snap = server.workdir / "store.db.snapshot"

    def enroll(c: MatcherClient, k: int) -> None:
        c.enroll(f"S-{k}", fingers=people[k].records((1, 2)), irises=people[k].codes("LR"))

    def loaded_line() -> str:
        return next(
            line for line in server.stderr_path.read_text().splitlines() if " loaded " in line
        )

    server.start()
    try:
        with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=30) as c:
            for k in range(4):
                enroll(c, k)
        server.stop()
        assert snap.exists() and "snapshot of 4 persons written" in server.stderr_path.read_text()
        server.start()
        assert "from the snapshot; 0 read from the store, 0 dropped" in loaded_line()
        with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=30) as c:
            enroll(c, 4)
            enroll(c, 5)
            c.delete("S-1")
        server.kill()  # no snapshot at exit: the next start catches up from the store
        server.start()
        assert "from the snapshot; 2 read from the store, 1 dropped" in loaded_line()
        with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=30) as c:
            info = c.info()
            assert (info["persons"], info["finger_templates"], info["iris_templates"]) == (
                5,
                10,
                10,
            )
            for k in (0, 2, 3, 4, 5):
                d = c.verify(f"S-{k}", fingers=people[k].records((1, 2), probe=True))
                assert d.match
                top = c.identify(irises=people[k].codes("L", probe=True))
                assert top and top[0].person_id == f"S-{k}"
            assert all(cand.person_id != "S-1" for cand in c.identify(irises=people[1].codes("L")))
    finally:
        server.kill()


def test_finger_index_read_from_a_stream(world: World) -> None:
    from matcher.finger import features
    from matcher.finger_gallery import FingerGallery
    from matcher.finger_index import FingerIndex

    g = FingerGallery()
    g.add(list(range(PERSONS)), [world.fingers[k][1] for k in range(PERSONS)])
    blob = g.state()["index"].tobytes()
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        out = blob[pos : pos + n]
        pos += len(out)
        return out

    index = FingerIndex.read(read)
    assert pos == len(blob) and index.ntotal == g._index.ntotal  # noqa: SLF001
    probe = features(world.finger_probes[3][1])
    assert np.array_equal(index.search(probe.bits)[1], g._index.search(probe.bits)[1])  # noqa: SLF001

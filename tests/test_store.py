"""matcher.store on a real SQLite file and a real PostgreSQL server (no mocks).

Every store test runs twice: on SQLite in ``tmp_path`` and on PostgreSQL at 127.0.0.1:5432
(database ``test``, user ``postgres``, trust auth) in a fresh schema ``amayesh_t_<random>``
that is dropped afterwards. The PostgreSQL cases are skipped, saying why, when no server answers.
The crash test (kill -9 of a process in the middle of enrolling) runs on SQLite.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from matcher.crypto import Sealer, StoreIntegrityError
from matcher.errors import DuplicateId, InvalidTemplate, UnknownId
from matcher.formats import blob
from matcher.iris import IrisTemplate
from matcher.store import Actor, Biometrics, Store, StoreError, alembic_config
from matcher.templates import FingerTemplate

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
KEY = bytes.fromhex("8f" * 16 + "17" * 16)
CLERK = Actor("clerk-7", "caseworker")


# --- sample data ------------------------------------------------------------------------------


def finger(rng: np.random.Generator, position: int, n: int | None = None) -> FingerTemplate:
    n = int(rng.integers(12, 60)) if n is None else n
    return FingerTemplate(
        x=rng.uniform(0, 388, n),
        y=rng.uniform(0, 374, n),
        theta=rng.uniform(0, 2 * np.pi, n),
        kind=rng.integers(0, 3, n),
        quality=rng.integers(0, 101, n),
        width=388,
        height=374,
        dpi=500,
        position=position,
        impression=int(rng.integers(0, 4)),
    )


def iris(rng: np.random.Generator, eye: str) -> IrisTemplate:
    shape = (8, 128, 2)
    return IrisTemplate(code=rng.random(shape) < 0.5, mask=rng.random(shape) < 0.85, eye=eye)


def crash_bio(person_id: str) -> Biometrics:
    """What the crash child enrols for ``person_id``: 1-10 fingers, maybe irises, from a seed."""
    rng = np.random.default_rng(zlib.crc32(person_id.encode()))
    positions = sorted(rng.choice(np.arange(1, 11), size=int(rng.integers(1, 11)), replace=False))
    eyes = [e for e in "LR" if rng.random() < 0.5]
    return Biometrics(
        fingers={int(p): finger(rng, int(p), n=20) for p in positions},
        irises={e: iris(rng, e) for e in eyes},
        finger_images={int(positions[0]): rng.bytes(64)},
    )


def same_finger(a: FingerTemplate, b: FingerTemplate) -> bool:
    return a.equals(b) and all(
        np.array_equal(getattr(a, f).view(np.uint32), getattr(b, f).view(np.uint32))
        for f in ("x", "y", "theta")
    )


def same_iris(a: IrisTemplate, b: IrisTemplate) -> bool:
    return a.eye == b.eye and np.array_equal(a.code, b.code) and np.array_equal(a.mask, b.mask)


def assert_same_bio(got: Biometrics, want: Biometrics) -> None:
    assert sorted(got.fingers) == sorted(want.fingers)
    assert sorted(got.irises) == sorted(want.irises)
    for p, t in want.fingers.items():
        assert same_finger(got.fingers[p], t), p
    for e, it in want.irises.items():
        assert same_iris(got.irises[e], it), e
    assert dict(got.finger_images) == dict(want.finger_images)
    assert dict(got.iris_images) == dict(want.iris_images)


# --- the two databases ------------------------------------------------------------------------


@cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_URL} ({str(exc).strip().splitlines()[0]})"
    return None


@dataclass
class Target:
    """One database a store test runs against."""

    url: str
    schema: str | None = None

    @property
    def dialect(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    def open(self, key: bytes = KEY) -> Store:
        return Store.open(self.url, key, schema=self.schema)


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "sqlite":
        yield Target(f"sqlite:///{tmp_path}/store.db")
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(f"PostgreSQL store tests skipped: {problem}")
    schema = f"amayesh_t_{secrets.token_hex(6)}"
    _pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield Target(PG_URL, schema)
    finally:
        _pg_admin(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(target: Target) -> Iterator[Store]:
    s = target.open()
    try:
        yield s
    finally:
        s.close()


def sample_bio(seed: int = 1) -> Biometrics:
    rng = np.random.default_rng(seed)
    return Biometrics(
        fingers={1: finger(rng, 1), 2: finger(rng, 2), 7: finger(rng, 7)},
        irises={"L": iris(rng, "L"), "R": iris(rng, "R")},
        finger_images={1: b"\x89PNG\r\n\x1a\n" + rng.bytes(300), 7: b"BM" + bytes(5000)},
        iris_images={"R": rng.bytes(1000)},
    )


# --- persons ------------------------------------------------------------------------------------


def test_enroll_info_and_biometrics_round_trip(store: Store) -> None:
    bio = sample_bio()
    row_id = store.enroll("P-1", bio, CLERK, meta={"household": "H-0042", "round": 1404})
    info = store.info("P-1")
    assert info.row_id == row_id and info.person_id == "P-1" and info.version == 1
    assert info.meta == {"household": "H-0042", "round": 1404}
    assert info.finger_positions == (1, 2, 7) and info.eyes == ("L", "R")
    assert info.created_at == info.updated_at and info.created_at.tzinfo is not None
    assert abs(time.time() - info.created_at.timestamp()) < 120
    got_row, got = store.biometrics("P-1", CLERK)
    assert got_row == row_id
    assert_same_bio(got, bio)
    assert store.counts() == {"persons": 1, "fingers": 3, "irises": 2}
    log = store.audit_log("P-1")
    assert [r["action"] for r in log] == ["read_biometrics", "enroll"]  # newest first
    assert log[1]["actor"] == "clerk-7" and log[1]["role"] == "caseworker"
    assert "fingers 1,2,7" in log[1]["detail"] and "irises L,R" in log[1]["detail"]
    assert log[0]["seq"] > log[1]["seq"] and log[0]["at"] >= log[1]["at"]


def test_update_replaces_only_the_given_samples(store: Store) -> None:
    bio = sample_bio()
    row_id = store.enroll("P-1", bio, CLERK, meta={"household": "H-1"})
    rng = np.random.default_rng(99)
    new2, new_r = finger(rng, 2), iris(rng, "R")
    info = store.update(
        "P-1", Biometrics(fingers={2: new2, 4: finger(rng, 4)}, irises={"R": new_r}), CLERK
    )
    assert info.version == 2 and info.row_id == row_id
    assert info.updated_at >= info.created_at
    assert info.meta == {"household": "H-1"}  # meta=None keeps it
    assert info.finger_positions == (1, 2, 4, 7) and info.eyes == ("L", "R")
    _, got = store.biometrics("P-1", CLERK)
    assert same_finger(got.fingers[1], bio.fingers[1]) and same_finger(got.fingers[2], new2)
    assert same_finger(got.fingers[7], bio.fingers[7])
    assert same_iris(got.irises["L"], bio.irises["L"]) and same_iris(got.irises["R"], new_r)
    # A replaced sample loses its old image (it belonged to the old template); others keep theirs.
    assert got.finger_images == {1: bio.finger_images[1], 7: bio.finger_images[7]}
    assert got.iris_images == {}
    info = store.update("P-1", Biometrics(), CLERK, meta={"household": "H-2"})
    assert info.version == 3 and info.meta == {"household": "H-2"}
    actions = [r["action"] for r in store.audit_log("P-1")]
    assert actions.count("update") == 2


def test_delete_cascades_and_row_ids_are_never_reused(store: Store, target: Target) -> None:
    first = store.enroll("P-1", sample_bio(1), CLERK)
    second = store.enroll("P-2", sample_bio(2), CLERK)
    assert store.delete("P-2", CLERK) == second
    assert store.counts() == {"persons": 1, "fingers": 3, "irises": 2}
    with store.engine.connect() as conn:
        orphans = conn.execute(sa.text(f"SELECT count(*) FROM fingers WHERE row_id = {second}"))
        assert orphans.scalar_one() == 0
    with pytest.raises(UnknownId, match="P-2"):
        store.info("P-2")
    third = store.enroll("P-3", sample_bio(3), CLERK)
    assert third > second > first
    assert store.row_ids(["P-1", "P-2", "P-3"]) == {"P-1": first, "P-3": third}
    assert store.person_ids([first, second, third, 10**12]) == {first: "P-1", third: "P-3"}
    assert [r["action"] for r in store.audit_log("P-2")] == ["delete", "enroll"]


def test_duplicate_and_unknown_ids(store: Store) -> None:
    store.enroll("P-1", sample_bio(), CLERK)
    with pytest.raises(DuplicateId, match="P-1"):
        store.enroll("P-1", sample_bio(2), CLERK)
    assert [r["action"] for r in store.audit_log("P-1")] == ["enroll"]  # no trace of the refusal
    assert store.counts()["persons"] == 1
    bio = Biometrics(fingers={1: sample_bio().fingers[1]})
    for call in (
        lambda: store.info("P-9"),
        lambda: store.update("P-9", bio, CLERK),
        lambda: store.delete("P-9", CLERK),
        lambda: store.biometrics("P-9", CLERK),
    ):
        with pytest.raises(UnknownId, match="P-9"):
            call()
    assert store.audit_log("P-9") == []


def _race(store: Store, pid: str, threads: int) -> list[str]:
    """``threads`` threads enrol ``pid`` at the same moment; their outcomes."""
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def enrol(seed: int) -> None:
        bio = Biometrics(fingers={3: finger(np.random.default_rng(seed), 3)})
        barrier.wait()
        try:
            store.enroll(pid, bio, CLERK)
            outcome = "won"
        except DuplicateId:
            outcome = "duplicate"
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=enrol, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    return sorted(outcomes)


def test_concurrent_enrolls_of_one_id_have_exactly_one_winner(store: Store) -> None:
    for round_ in range(3):
        pid = f"RACE-{round_}"
        assert _race(store, pid, 4) == ["duplicate"] * 3 + ["won"]
        assert len(store.audit_log(pid)) == 1
    assert store.counts() == {"persons": 3, "fingers": 3, "irises": 0}


def test_concurrent_enrolls_of_distinct_ids_all_land(store: Store) -> None:
    def work(k: int) -> None:
        rng = np.random.default_rng(k)
        for i in range(5):
            store.enroll(f"T{k}-{i}", Biometrics(fingers={1: finger(rng, 1)}), CLERK)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert store.counts()["persons"] == 20
    assert len(store.audit_log(limit=100)) == 20


def test_a_failed_enroll_leaves_no_person_no_samples_and_no_audit_row(
    store: Store, target: Target
) -> None:
    # Make the database itself fail the last statement of the enrolment (its audit row).
    with store.engine.begin() as conn:
        if target.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER test_fail BEFORE INSERT ON audit WHEN NEW.person_id = 'P-FAIL' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.person_id = 'P-FAIL' THEN RAISE EXCEPTION 'injected failure'; END IF; "
                "RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER test_fail BEFORE INSERT ON audit "
                "FOR EACH ROW EXECUTE FUNCTION test_fail()"
            )
    store.enroll("P-OK", sample_bio(1), CLERK)
    with pytest.raises(sa.exc.DBAPIError, match="injected failure"):
        store.enroll("P-FAIL", sample_bio(2), CLERK)
    with pytest.raises(UnknownId):
        store.info("P-FAIL")
    assert store.counts() == {"persons": 1, "fingers": 3, "irises": 2}
    assert store.audit_log("P-FAIL") == []
    # The failed attempt left nothing behind that blocks a later, successful one.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER test_fail" + (" ON audit" if target.dialect == "postgresql" else "")
        )
    store.enroll("P-FAIL", sample_bio(2), CLERK)
    assert store.counts()["persons"] == 2


def test_the_database_refuses_to_change_or_delete_audit_rows(store: Store, target: Target) -> None:
    store.enroll("P-1", sample_bio(), CLERK)
    store.audit(CLERK, "identify", None, "1:N search, 3 candidates")
    statements = [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
        "DELETE FROM audit WHERE action = 'identify'",
    ]
    if target.dialect == "postgresql":
        statements.append("TRUNCATE audit")
    for sql in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with store.engine.begin() as conn:
                conn.exec_driver_sql(sql)
    log = store.audit_log()
    assert [(r["action"], r["actor"]) for r in log] == [
        ("identify", "clerk-7"),
        ("enroll", "clerk-7"),
    ]
    assert log[0]["person_id"] is None and log[0]["detail"] == "1:N search, 3 candidates"


def test_templates_and_images_are_not_readable_in_the_database_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    t = finger(rng, 1, n=40)
    eye = iris(rng, "L")
    image = b"\x89PNG\r\n\x1a\n" + b"RIDGES-OF-P1-" * 50
    plain = blob.encode_finger(t)
    patterns = {
        "finger blob": plain,
        "minutia x": t.x.tobytes(),
        "minutia theta": t.theta.tobytes(),
        "iris code": np.packbits(eye.code.ravel()).tobytes(),
        "image": b"RIDGES-OF-P1-",
    }
    assert t.x.tobytes() in plain and np.packbits(eye.code.ravel()).tobytes() in blob.encode_iris(
        eye
    )
    url = f"sqlite:///{tmp_path}/raw.db"
    with Store.open(url, KEY) as s:
        s.enroll(
            "P-1",
            Biometrics({1: t}, {"L": eye}, finger_images={1: image}),
            CLERK,
            meta={"household": "H-SEEN"},
        )
        files = sorted(tmp_path.glob("raw.db*"))
        raw = b"".join(p.read_bytes() for p in files)
        assert b"H-SEEN" in raw and b"P-1" in raw  # the grep does see plaintext
        for name, pattern in patterns.items():
            assert pattern not in raw, f"{name} is readable in {[p.name for p in files]}"


def test_a_blob_moved_to_another_row_fails_authentication(store: Store) -> None:
    a = store.enroll("P-A", sample_bio(1), CLERK)
    b = store.enroll("P-B", sample_bio(2), CLERK)
    with store.engine.begin() as conn:
        for table, slot in (("fingers", "position = 2"), ("irises", "eye = 'L'")):
            conn.exec_driver_sql(
                f"UPDATE {table} SET template = (SELECT template FROM {table} "
                f"WHERE row_id = {a} AND {slot}) WHERE row_id = {b} AND {slot}"
            )
    store.biometrics("P-A", CLERK)  # the source row is untouched
    with pytest.raises(StoreIntegrityError, match="failed authentication"):
        store.biometrics("P-B", CLERK)
    with pytest.raises(StoreIntegrityError):
        list(store.iter_fingers())
    with pytest.raises(StoreIntegrityError):
        list(store.iter_irises())
    # The refused read is on record.
    assert store.audit_log("P-B")[0]["action"] == "read_biometrics"
    # An image moved into a template column (same row, other part) fails too.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE fingers SET template = image WHERE row_id = {a} AND position = 1"
        )
    with pytest.raises(StoreIntegrityError):
        store.biometrics("P-A", CLERK)


def test_reopening_sees_everything_and_needs_the_key(target: Target) -> None:
    bios = {f"P-{i}": sample_bio(i) for i in range(4)}
    with target.open() as s:
        rows = {pid: s.enroll(pid, bio, CLERK, meta={"i": pid}) for pid, bio in bios.items()}
        s.delete("P-3", CLERK)
        job = s.create_job("dedup", {"threshold": 0.4})
    with target.open() as s:
        assert s.counts() == {"persons": 3, "fingers": 9, "irises": 6}
        for pid in ("P-0", "P-1", "P-2"):
            row_id, got = s.biometrics(pid, CLERK)
            assert row_id == rows[pid]
            assert_same_bio(got, bios[pid])
            assert s.info(pid).meta == {"i": pid}
        assert s.job(job)["params"] == {"threshold": 0.4}
    with target.open(key=bytes(32)) as wrong:
        assert wrong.info("P-0").row_id == rows["P-0"]  # metadata is not sealed
        with pytest.raises(StoreIntegrityError):
            wrong.biometrics("P-0", CLERK)


def test_bulk_iteration_returns_everything_in_row_order(store: Store) -> None:
    rng = np.random.default_rng(11)
    want_f: dict[tuple[int, int], FingerTemplate] = {}
    want_i: dict[tuple[int, str], IrisTemplate] = {}
    for k in range(25):
        positions = sorted(rng.choice(11, size=int(rng.integers(0, 5)), replace=False).tolist())
        eyes = [e for e in "RL" if rng.random() < 0.4]
        if not positions and not eyes:
            positions = [0]
        bio = Biometrics({p: finger(rng, p) for p in positions}, {e: iris(rng, e) for e in eyes})
        row_id = store.enroll(f"B-{k}", bio, CLERK)
        want_f.update({(row_id, p): t for p, t in bio.fingers.items()})
        want_i.update({(row_id, e): t for e, t in bio.irises.items()})
    gone = set(store.row_ids(["B-3", "B-4"]).values())  # two deletions leave a gap
    store.delete("B-3", CLERK)
    store.delete("B-4", CLERK)
    want_f = {k: v for k, v in want_f.items() if k[0] not in gone}
    want_i = {k: v for k, v in want_i.items() if k[0] not in gone}

    got_f: list[tuple[int, int, FingerTemplate]] = []
    for row_ids, positions, templates in store.iter_fingers(batch=7):
        assert row_ids.dtype == np.int64 and positions.dtype == np.uint8
        assert len(row_ids) == len(positions) == len(templates) <= 7
        got_f += zip(row_ids.tolist(), positions.tolist(), templates, strict=True)
    keys = [(r, p) for r, p, _ in got_f]
    assert keys == sorted(keys)
    assert set(keys) == set(want_f)
    for r, p, t in got_f:
        assert same_finger(t, want_f[(r, p)]) and t.position == p

    got_i: list[tuple[int, str, IrisTemplate]] = []
    for row_ids, eyes, templates in store.iter_irises(batch=4):
        got_i += zip(row_ids.tolist(), eyes, templates, strict=True)
    ikeys = [(r, e) for r, e, _ in got_i]
    assert ikeys == sorted(ikeys)
    assert set(ikeys) == set(want_i)
    for r, e, t in got_i:
        assert same_iris(t, want_i[(r, e)])
    counts = store.counts()
    assert counts["fingers"] == len(got_f) and counts["irises"] == len(got_i)


def test_bad_input_is_refused_before_anything_is_written(store: Store) -> None:
    rng = np.random.default_rng(2)
    good = Biometrics({1: finger(rng, 1)})
    for bad_id in ("", " P-1", "P-1 ", "x" * 65, "a\nb", 17, None):
        with pytest.raises(InvalidTemplate, match="person id"):
            store.enroll(bad_id, good, CLERK)  # type: ignore[arg-type]
    for bio, match in [
        (Biometrics(), "no finger or iris"),
        (Biometrics({11: finger(rng, 1)}), "position 11"),
        (Biometrics({True: finger(rng, 1)}), "position True"),
        (Biometrics({2: finger(rng, 1)}), "position 1"),
        (Biometrics({1: "minutiae"}), "not a FingerTemplate"),  # type: ignore[dict-item]
        (Biometrics(irises={"X": iris(rng, "L")}), "eye 'X'"),
        (Biometrics(irises={"R": iris(rng, "L")}), "eye 'L'"),
        (Biometrics({1: finger(rng, 1)}, finger_images={2: b"png"}), "no template"),
        (Biometrics({1: finger(rng, 1)}, finger_images={1: b""}), "non-empty"),
    ]:
        with pytest.raises(InvalidTemplate, match=match):
            store.enroll("P-1", bio, CLERK)
    with pytest.raises(InvalidTemplate, match="meta"):
        store.enroll("P-1", good, CLERK, meta={"photo": b"bytes"})
    with pytest.raises(InvalidTemplate, match="meta"):
        store.enroll("P-1", good, CLERK, meta={"notes": "x" * 5000})
    with pytest.raises(InvalidTemplate, match="actor"):
        Actor("", "caseworker")
    assert store.counts() == {"persons": 0, "fingers": 0, "irises": 0}
    assert store.audit_log() == []


# --- jobs ----------------------------------------------------------------------------------------


def test_jobs_crud_and_idempotent_results(store: Store) -> None:
    first = store.create_job("dedup", {"threshold": 0.42, "modalities": ["finger"]})
    time.sleep(0.01)
    second = store.create_job("dedup", {"threshold": 0.3})
    job = store.job(first)
    assert job["state"] == "queued" and job["kind"] == "dedup"
    assert job["params"] == {"threshold": 0.42, "modalities": ["finger"]}
    assert job["progress_done"] == 0 and job["checkpoint"] is None and job["error"] is None
    assert [j["job_id"] for j in store.jobs()] == [second, first]
    assert [j["job_id"] for j in store.jobs(limit=1)] == [second]

    store.update_job(first, state="running", total=1000)
    store.update_job(first, done=250, checkpoint={"block": 3, "row": 250})
    job = store.job(first)
    assert (job["state"], job["progress_done"], job["progress_total"]) == ("running", 250, 1000)
    assert job["checkpoint"] == {"block": 3, "row": 250}
    assert job["updated_at"] >= job["created_at"]

    rows = [(0, "P-1", 0.91), (0, "P-2", 0.91), (1, "P-7", 0.55)]
    store.add_job_results(first, rows)
    store.add_job_results(first, rows[1:] + [(1, "P-7", 0.57), (2, "P-9", 0.6)])  # a resume
    assert store.job_results(first) == [
        (0, "P-1", 0.91),
        (0, "P-2", 0.91),
        (1, "P-7", 0.57),
        (2, "P-9", 0.6),
    ]
    assert store.job_results(second) == []
    store.update_job(first, state="failed", error="worker lost")
    assert store.job(first)["error"] == "worker lost"

    with pytest.raises(InvalidTemplate, match="state"):
        store.update_job(first, state="exploded")
    with pytest.raises(InvalidTemplate, match="done"):
        store.update_job(first, done=-1)
    for call in (
        lambda: store.job("nope"),
        lambda: store.update_job("nope", state="done"),
        lambda: store.add_job_results("nope", rows),
        lambda: store.job_results("nope"),
    ):
        with pytest.raises(UnknownId, match="nope"):
            call()


# --- migrations ---------------------------------------------------------------------------------


def _schema_snapshot(store: Store, target: Target) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        if target.dialect == "sqlite":
            rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        else:
            rows = conn.exec_driver_sql(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
            )
        schema = [tuple(r) for r in rows]
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return schema + [("alembic", tuple(v[0] for v in versions))]


def test_opening_a_migrated_database_is_a_no_op(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="matcher.store"):
        first = target.open()
    assert "migrating the store" in caplog.text
    before = _schema_snapshot(first, target)
    assert before[-1] == ("alembic", ("0001",))
    first.enroll("P-1", sample_bio(), CLERK)
    first.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="matcher.store"):
        again = target.open()
    assert "migrating" not in caplog.text
    assert _schema_snapshot(again, target) == before
    assert again.counts()["persons"] == 1
    again.close()


def test_a_database_from_newer_code_is_refused_clearly(target: Target) -> None:
    with target.open() as s:
        with s.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0042_future'")
    with pytest.raises(StoreError, match="0042_future.*newer code") as info:
        target.open()
    assert "0001" in str(info.value)  # says which revision this code knows


def test_the_store_tables_match_the_migrations(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from matcher.store import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []  # tables, columns, types, nullability, keys, indexes
    assert alembic_config().get_main_option("script_location", "").endswith("migrations")


def test_sqlite_connections_are_durable_wal_with_foreign_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/s.db", KEY) as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 10_000


def test_a_rotated_key_ring_reads_old_rows_and_seals_new_ones(target: Target) -> None:
    new_key = bytes(range(32))
    with target.open() as s:
        s.enroll("P-OLD", sample_bio(1), CLERK)
    ring = Sealer(new_key, key_id=2, old_keys={1: KEY})
    with Store.open(target.url, ring, schema=target.schema) as s:
        assert_same_bio(s.biometrics("P-OLD", CLERK)[1], sample_bio(1))
        s.enroll("P-NEW", sample_bio(2), CLERK)
        assert_same_bio(s.biometrics("P-NEW", CLERK)[1], sample_bio(2))
    with target.open() as old_only:
        old_only.biometrics("P-OLD", CLERK)
        with pytest.raises(StoreIntegrityError, match="key id 2"):
            old_only.biometrics("P-NEW", CLERK)


def test_bad_urls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite:///... or postgresql://"):
        Store.open("mysql://x/y", KEY)
    with pytest.raises(StoreError, match="in-memory"):
        Store.open("sqlite://", KEY)
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(f"sqlite:///{tmp_path}/absent/dir/s.db", KEY)
    with pytest.raises(StoreError, match="schema"):
        Store.open(f"sqlite:///{tmp_path}/s.db", KEY, schema="x")
    with pytest.raises(StoreError, match="schema name"):
        Store.open(PG_URL, KEY, schema="Robert'); DROP TABLE persons;--")
    s = Store.open(f"sqlite:///{tmp_path}/s.db", KEY)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.counts()


# --- crash durability (SQLite) -----------------------------------------------------------------

CRASH_CHILD = """
import sys
sys.path.insert(0, sys.argv[4])
from matcher.store import Actor, Store
from tests.test_store import crash_bio
store = Store.open(sys.argv[1], bytes.fromhex(sys.argv[2]))
actor = Actor("crash-test", "capture")
i = 0
while True:
    pid = f"{sys.argv[3]}-{i}"
    store.enroll(pid, crash_bio(pid), actor)
    print(pid, flush=True)  # acknowledged: enroll returned, so it committed
    i += 1
"""


def test_kill_9_loses_nothing_acknowledged_and_leaves_no_partial_person(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crash.db"
    with Store.open(url, KEY):
        pass  # migrate once up front, so every child spends its time enrolling
    rng = np.random.default_rng()
    acked: list[str] = []
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, url, KEY.hex(), f"R{round_}", str(REPO_ROOT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[bytes] = []
        reader = threading.Thread(
            target=lambda p=proc, out=lines: out.extend(p.stdout), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 60
        while not lines and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if not lines:
            proc.kill()
            pytest.fail(f"crash child acknowledged nothing: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(float(rng.uniform(0.05, 1.5)))  # kill at a random moment mid-stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        acked += [ln.decode().strip() for ln in lines if ln.endswith(b"\n")]

    assert len(acked) >= 3
    with Store.open(url, KEY) as s:
        stored_rows: dict[int, dict[str, set[object]]] = {}
        for row_ids, positions, _ in s.iter_fingers():
            for r, p in zip(row_ids.tolist(), positions.tolist(), strict=True):
                stored_rows.setdefault(r, {"f": set(), "i": set()})["f"].add(p)
        for row_ids, eyes, _ in s.iter_irises():
            for r, e in zip(row_ids.tolist(), eyes, strict=True):
                stored_rows.setdefault(r, {"f": set(), "i": set()})["i"].add(e)
        names = s.person_ids(list(stored_rows))
        # Every acknowledged person is there, with exactly the biometrics the child wrote.
        for pid in acked:
            _, got = s.biometrics(pid, CLERK)
            assert_same_bio(got, crash_bio(pid))
        # Nobody, acknowledged or caught between commit and print, is partially written.
        assert s.counts()["persons"] == len(names)
        for row_id, have in stored_rows.items():
            want = crash_bio(names[row_id])
            assert have["f"] == set(want.fingers) and have["i"] == set(want.irises), names[row_id]
        unacked = set(names.values()) - set(acked)
        assert len(unacked) <= 3, unacked  # at most the one in flight per kill
        print(f"crash test: {len(acked)} acknowledged, {len(unacked)} committed unacknowledged")


def test_enroll_many_is_one_all_or_nothing_transaction(store: Store) -> None:
    rows = store.enroll_many(
        [("B-1", sample_bio(1), None), ("B-2", sample_bio(2), {"household": "H-9"})], CLERK
    )
    assert rows == [store.info("B-1").row_id, store.info("B-2").row_id] and rows[0] < rows[1]
    assert store.info("B-2").meta == {"household": "H-9"}
    assert [r["action"] for r in store.audit_log("B-2")] == ["enroll"]
    _, got = store.biometrics("B-1", CLERK)
    assert_same_bio(got, sample_bio(1))
    before = store.counts()
    with pytest.raises(DuplicateId, match="B-2"):
        store.enroll_many([("B-3", sample_bio(3), None), ("B-2", sample_bio(4), None)], CLERK)
    assert store.counts() == before  # B-3 went back with the failed batch
    with pytest.raises(UnknownId):
        store.info("B-3")
    with pytest.raises(InvalidTemplate):
        store.enroll_many([("B-4", Biometrics(), None)], CLERK)

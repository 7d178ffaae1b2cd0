"""The durable store: persons, their sealed templates and images, the audit log and batch jobs.

SQLAlchemy Core over SQLite (the default, one office) or PostgreSQL (a province or a nation).
DESIGN.md, "Durability": every write is one transaction and a method returns only after it has
committed, so whatever the caller acknowledges survives ``kill -9`` and no person is ever half
written. On SQLite that takes WAL mode with ``synchronous=FULL`` (each commit is fsynced); on
PostgreSQL the server's own WAL.

Security (DESIGN.md, "Security"): template blobs (:mod:`matcher.formats.blob`) and source images
are sealed with AES-256-GCM (:mod:`matcher.crypto`) whose associated data names the row, so the
raw database reveals no biometrics and a blob moved to another row fails to open with
:class:`~matcher.crypto.StoreIntegrityError`. Every change of a person, and every read of
biometrics, appends an ``audit`` row *in the same transaction*; the database itself refuses
UPDATE and DELETE on ``audit`` (triggers), so the log is append-only even for a bug or a DBA.

Schema (revision ``0001`` in ``matcher/migrations/``)
-----------------------------------------------------
``persons``      ``row_id`` (int64, never reused: the id the in-memory galleries use),
                 ``person_id`` (external id, unique), created/updated (UTC), ``version`` (bumped by
                 every update), ``meta`` (JSON of non-biometric labels).
``fingers``      (``row_id`` -> persons ON DELETE CASCADE, ``position`` 0-10): sealed template,
                 sealed source image (NULL when none was kept), template format version.
``irises``       (``row_id``, ``eye`` 'L'/'R'): the same for iris codes.
``audit``        append-only: ``seq``, ``at``, ``actor``, ``role``, ``action``, ``person_id``,
                 ``detail`` (words and sample positions, never biometric bytes).
``jobs``         batch jobs (dedup): state, params, progress, resume checkpoint, error.
``job_results``  (``job_id``, ``cluster``, ``person_id``) -> ``score``.

:meth:`Store.open` migrates the database to the newest revision with Alembic and refuses, with
:class:`StoreError`, a database that a newer version of the code has migrated past.

Threads: a :class:`Store` is safe to share; each call takes its own pooled connection. SQLite
writers queue on the database lock (``BEGIN IMMEDIATE``, 30 s busy timeout); readers never wait.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine

from matcher.crypto import Sealer, StoreIntegrityError
from matcher.errors import DuplicateId, InvalidTemplate, MatcherError, UnknownId
from matcher.formats.blob import (
    decode_finger,
    decode_fingers,
    decode_iris,
    encode_finger,
    encode_iris,
)
from matcher.iris import IrisTemplate
from matcher.templates import MAX_FINGER_POSITION, FingerTemplate

__all__ = [
    "Actor",
    "Biometrics",
    "PersonInfo",
    "Store",
    "StoreError",
    "StoreIntegrityError",
    "JOB_STATES",
    "MAX_PERSON_ID_CHARS",
    "MAX_META_BYTES",
    "MAX_IMAGE_BYTES",
    "alembic_config",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MAX_PERSON_ID_CHARS = 64
#: Serialised JSON size of a person's ``meta``: labels, not documents.
MAX_META_BYTES = 4096
#: Largest JSON of a job's params or checkpoint.
MAX_JOB_JSON_BYTES = 1 << 20
#: Largest source image kept, in bytes as received.
MAX_IMAGE_BYTES = 32 << 20
MAX_AUDIT_DETAIL_CHARS = 2000
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
EYES = ("L", "R")
#: SQLite waits this long for another writer's lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0
_MICROSECOND = timedelta(microseconds=1)
_IN_CHUNK = 500  # ids per IN (...) query: well under every driver's parameter limit

# Image encodings stored inside the sealed value: one tag byte, then the bytes.
_IMAGE_AS_IS = 0
_IMAGE_ZLIB = 1
# Uncompressed image containers worth deflating (BMP, binary PGM/PPM, TIFF); PNG, JPEG, WSQ and
# JPEG 2000 are compressed already and kept as received.
_RAW_IMAGE_MAGIC = (b"BM", b"P5", b"P6", b"II*\x00", b"MM\x00*")


class StoreError(MatcherError, RuntimeError):
    """The store cannot be used as asked: bad URL, missing folder, a database schema newer than
    this code, or a closed store. Operator-facing; the message says what to do."""


# --- tables: mirror the migrations (the source of truth); tests compare them with alembic ------

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC_TIME = sa.DateTime(timezone=True)
metadata = sa.MetaData()

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("row_id", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("person_id", sa.String(64), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("updated_at", _UTC_TIME, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("meta", sa.Text(), nullable=False),
    sa.UniqueConstraint("person_id", name="uq_persons_person_id"),
    sqlite_autoincrement=True,
)


def _sample_table(name: str, slot: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "row_id",
            _ROW_ID,
            sa.ForeignKey("persons.row_id", ondelete="CASCADE", name=f"fk_{name}_person"),
            primary_key=True,
        ),
        slot,
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("format_version", sa.SmallInteger(), nullable=False),
    )


fingers = _sample_table("fingers", sa.Column("position", sa.SmallInteger(), primary_key=True))
irises = _sample_table("irises", sa.Column("eye", sa.String(1), primary_key=True))
audit_table = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", _ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("at", _UTC_TIME, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("person_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_audit_person", "person_id", "seq"),
    sqlite_autoincrement=True,
)
jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("params", sa.Text(), nullable=False),
    sa.Column("progress_done", sa.BigInteger(), nullable=False),
    sa.Column("progress_total", sa.BigInteger(), nullable=False),
    sa.Column("checkpoint", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("updated_at", _UTC_TIME, nullable=False),
    sa.Index("ix_jobs_created", "created_at"),
)
job_results_table = sa.Table(
    "job_results",
    metadata,
    sa.Column(
        "job_id",
        sa.String(64),
        sa.ForeignKey("jobs.job_id", ondelete="CASCADE", name="fk_job_results_job"),
        primary_key=True,
    ),
    sa.Column("cluster", sa.Integer(), primary_key=True),
    sa.Column("person_id", sa.String(64), primary_key=True),
    sa.Column("score", sa.Float(), nullable=False),
)


# --- the value types of the API -------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who asks: a user or station ``name`` and its ``role`` (as the service's token maps it)."""

    name: str
    role: str

    def __post_init__(self) -> None:
        _check_text("actor name", self.name, 128)
        _check_text("actor role", self.role, 64)


@dataclass(frozen=True)
class Biometrics:
    """One person's samples. ``fingers`` maps ISO position (0-10) to a template whose
    ``position`` equals the key; ``irises`` maps "L"/"R" to a template of that eye. The image
    dicts hold the source image bytes as received (PNG, WSQ, BMP, ...) for samples present in
    the template dicts; they are optional."""

    fingers: Mapping[int, FingerTemplate] = field(default_factory=dict)
    irises: Mapping[str, IrisTemplate] = field(default_factory=dict)
    finger_images: Mapping[int, bytes] = field(default_factory=dict)
    iris_images: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonInfo:
    """A person's record without biometrics: safe to show and to log."""

    person_id: str
    row_id: int
    created_at: datetime
    updated_at: datetime
    version: int
    meta: dict[str, Any]
    finger_positions: tuple[int, ...]
    eyes: tuple[str, ...]


@dataclass(frozen=True)
class PersonStates:
    """Every person's identity and revision, in ``row_id`` order: what a gallery snapshot is
    checked against. ``(row_id, person_id, version, updated_us)`` change together on every
    enrolment and update, and ``row_id`` is never reused after a delete."""

    row_ids: npt.NDArray[np.int64]  # (n,) ascending
    person_ids: list[str]
    versions: npt.NDArray[np.int64]  # (n,)
    updated_us: npt.NDArray[np.int64]  # (n,) microseconds since 1970-01-01 UTC


# --- input checks ---------------------------------------------------------------------------


def _check_text(what: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        raise InvalidTemplate(f"{what} must be a string of 1 to {max_chars} characters")
    if not value.isprintable() or value != value.strip():
        raise InvalidTemplate(
            f"{what} {value!r} must be printable, without leading or trailing spaces"
        )
    return value


def check_person_id(person_id: object) -> str:
    """``person_id`` if it is a valid external id: 1-64 printable characters, no outer spaces."""
    return _check_text("person id", person_id, MAX_PERSON_ID_CHARS)


def _json_text(what: str, value: object, max_bytes: int) -> str:
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidTemplate(f"{what} must be JSON-serialisable: {exc}") from exc
    if len(text.encode()) > max_bytes:
        raise InvalidTemplate(
            f"{what} is {len(text.encode())} bytes as JSON; the limit is {max_bytes}"
        )
    return text


def _meta_text(meta: object) -> str:
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise InvalidTemplate("meta must be a dict with string keys")
    return _json_text("meta", dict(meta), MAX_META_BYTES)


def _pack_image(what: str, data: object) -> bytes:
    """The plaintext stored for an image: a tag byte and the bytes (deflated if raw pixels)."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes) or not data:
        raise InvalidTemplate(f"{what} must be non-empty bytes (the image file as received)")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidTemplate(f"{what} is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    if data.startswith(_RAW_IMAGE_MAGIC):
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            return bytes([_IMAGE_ZLIB]) + packed
    return bytes([_IMAGE_AS_IS]) + data


def _unpack_image(plain: bytes, where: str) -> bytes:
    if plain[:1] == bytes([_IMAGE_AS_IS]):
        return plain[1:]
    if plain[:1] == bytes([_IMAGE_ZLIB]):
        return zlib.decompress(plain[1:])
    raise StoreIntegrityError(f"stored image for {where} has an unknown encoding tag")


@dataclass(frozen=True)
class _Samples:
    """Validated, encoded (not yet sealed: the AAD needs the row id) samples of one call."""

    fingers: dict[int, tuple[bytes, bytes | None, int]]  # position -> (blob, image, version)
    irises: dict[str, tuple[bytes, bytes | None, int]]

    def describe(self) -> str:
        parts = []
        if self.fingers:
            parts.append("fingers " + ",".join(map(str, sorted(self.fingers))))
        if self.irises:
            parts.append("irises " + ",".join(sorted(self.irises)))
        images = sum(v[1] is not None for v in (*self.fingers.values(), *self.irises.values()))
        if images:
            parts.append(f"{images} image(s)")
        return "; ".join(parts) or "no samples"


def _prepare(bio: object) -> _Samples:
    if not isinstance(bio, Biometrics):
        raise InvalidTemplate(f"biometrics must be a Biometrics, got {type(bio).__name__}")
    out_f: dict[int, tuple[bytes, bytes | None, int]] = {}
    for pos, t in bio.fingers.items():
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= MAX_FINGER_POSITION:
            raise InvalidTemplate(f"finger position {pos!r} is not an ISO code 0..10")
        if not isinstance(t, FingerTemplate):
            raise InvalidTemplate(f"fingers[{pos}] is a {type(t).__name__}, not a FingerTemplate")
        if t.position != pos:
            raise InvalidTemplate(
                f"fingers[{pos}] holds a template for position {t.position}; the key and "
                "FingerTemplate.position must agree (dataclasses.replace(t, position=...))"
            )
        out_f[pos] = (encode_finger(t), None, t.format_version)
    for pos, img in bio.finger_images.items():
        if pos not in out_f:
            raise InvalidTemplate(f"finger_images[{pos!r}] has no template in fingers")
        blob, _, version = out_f[pos]
        out_f[pos] = (blob, _pack_image(f"finger_images[{pos}]", img), version)
    out_i: dict[str, tuple[bytes, bytes | None, int]] = {}
    for eye, it in bio.irises.items():
        if eye not in EYES:
            raise InvalidTemplate(f"iris eye {eye!r} is not 'L' or 'R'")
        if not isinstance(it, IrisTemplate):
            raise InvalidTemplate(f"irises[{eye}] is a {type(it).__name__}, not an IrisTemplate")
        if it.eye != eye:
            raise InvalidTemplate(f"irises[{eye!r}] holds a template of eye {it.eye!r}")
        out_i[eye] = (encode_iris(it), None, it.format_version)
    for eye, img in bio.iris_images.items():
        if eye not in out_i:
            raise InvalidTemplate(f"iris_images[{eye!r}] has no template in irises")
        blob, _, version = out_i[eye]
        out_i[eye] = (blob, _pack_image(f"iris_images[{eye}]", img), version)
    return _Samples(out_f, out_i)


def _aad(modality: str, row_id: int, slot: object, part: str) -> bytes:
    """Associated data binding a sealed value to its row, sample slot and column."""
    return f"{modality}|{row_id}|{slot}|{part}".encode()


def _utc(value: datetime) -> datetime:
    """Timestamps come back naive from SQLite (stored UTC) and zoned from PostgreSQL."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


# --- engine and migrations -----------------------------------------------------------------


def database_url(url: str) -> URL:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"store URL {url!r} is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise StoreError(f"SQLite stores use the standard driver; got {parsed.drivername}")
        if not parsed.database or parsed.database == ":memory:":
            raise StoreError("an in-memory SQLite store is not durable; give a file path")
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            raise StoreError(f"folder {folder} of the SQLite store does not exist; create it")
        return parsed
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"store URL must be sqlite:///... or postgresql://..., got {backend}://")


def check_schema(schema: str | None, backend: str) -> None:
    if schema is None:
        return
    if backend != "postgresql":
        raise StoreError("a schema can be given only for a PostgreSQL store")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise StoreError(
            f"schema name {schema!r} must be 1-63 lower-case ASCII letters, digits or _, "
            "not starting with a digit"
        )


def create_engine(url: URL, schema: str | None) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("SQLite store could not switch to WAL (journal_mode=%s)", mode)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers take the lock up front: a deferred transaction that upgrades from read to
            # write can fail at once with "database is locked" instead of waiting its turn.
            write = conn.get_execution_options().get("amayesh_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if schema is not None:
        connect_args["options"] = f"-c search_path={schema}"
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of the store's migrations (no alembic.ini), running on
    ``connection``. For a new revision: ``alembic.command.revision(alembic_config(), "msg")``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def _migrate(conn: Connection, where: str) -> None:
    """Bring the schema to head inside the caller's transaction; refuse a newer database."""
    cfg = alembic_config(conn)
    script = ScriptDirectory.from_config(cfg)
    known = {s.revision for s in script.walk_revisions()}
    heads = set(script.get_heads())
    current = set(MigrationContext.configure(conn).get_current_heads())
    unknown = sorted(current - known)
    if unknown:
        raise StoreError(
            f"the store at {where} has schema revision {', '.join(unknown)}, which this version "
            f"of amayesh does not know (its newest is {', '.join(sorted(heads))}): the database "
            "was written by newer code. Run that newer version, or restore a backup taken "
            "before the upgrade; do not edit the schema by hand."
        )
    if current == heads:
        return
    log.info("migrating the store at %s from %s to %s", where, current or "empty", heads)
    command.upgrade(cfg, "head")


# --- the store --------------------------------------------------------------------------------


class Store:
    """Durable, encrypted, audited storage of persons and their biometric samples.

    Open with :meth:`open`; share one instance between threads; :meth:`close` at shut-down.
    Each write is one transaction, returned from only after commit. Errors: bad input raises
    :class:`~matcher.errors.InvalidTemplate`, an existing id :class:`~matcher.errors.
    DuplicateId`, a missing one :class:`~matcher.errors.UnknownId`; a stored value that fails
    authentication :class:`~matcher.crypto.StoreIntegrityError`; database failures propagate
    as SQLAlchemy errors.
    """

    def __init__(self, engine: Engine, sealer: Sealer, where: str) -> None:
        """Use :meth:`open`; this does not migrate."""
        self._engine = engine
        self._sealer = sealer
        self._where = where
        self._closed = False
        if engine.dialect.name == "sqlite":
            self._upsert_insert: Any = sqlite_dialect.insert
        else:
            self._upsert_insert = pg_dialect.insert

    @classmethod
    def open(cls, url: str, key: bytes | Sealer, *, schema: str | None = None) -> Store:
        """Connect to ``url``, migrate the schema to head, and return the store.

        ``url``: ``sqlite:///relative/path.db``, ``sqlite:////abs/path.db`` or
        ``postgresql://user@host:port/db`` (driven by psycopg 3). ``key``: the 32-byte store key
        (:func:`matcher.crypto.load_key`) or a :class:`~matcher.crypto.Sealer` with a key ring.
        ``schema``: a PostgreSQL schema to keep the tables in (created if absent), e.g. to
        isolate tests. Raises :class:`StoreError` for a bad URL or a database newer than this
        code.
        """
        db_url = database_url(url)
        backend = db_url.get_backend_name()
        check_schema(schema, backend)
        sealer = key if isinstance(key, Sealer) else Sealer(key)
        where = db_url.render_as_string(hide_password=True)
        if schema:
            where += f" (schema {schema})"
        engine = create_engine(db_url, schema)
        try:
            with engine.connect() as conn:
                conn.execution_options(amayesh_write=True)
                with conn.begin():
                    if backend == "postgresql":
                        if schema is not None:
                            ensure_pg_schema(conn, schema)
                        # Two servers starting at once must not both create the tables.
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                            {"k": f"amayesh.store.migrate.{schema or ''}"},
                        )
                    _migrate(conn, where)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, sealer, where)

    def close(self) -> None:
        """Release the connections. Idempotent; the store refuses calls afterwards."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for operators' tools and tests. Writing through it bypasses
        sealing and audit; the audit table refuses changes either way."""
        return self._engine

    @property
    def sealer(self) -> Sealer:
        """The store key's sealer: files derived from the store (gallery snapshots) are sealed
        with it too."""
        return self._sealer

    def __repr__(self) -> str:
        return f"Store({self._where})"

    # --- connections ---

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed")
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction that commits on leaving the block (rolls back on an exception)."""
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed")
        with self._engine.connect() as conn:
            conn.execution_options(amayesh_write=True)
            with conn.begin():
                yield conn

    # --- persons ---

    def enroll(
        self,
        person_id: str,
        bio: Biometrics,
        actor: Actor,
        meta: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a new person with at least one sample; return its ``row_id``.

        One transaction: the person, its samples and an ``enroll`` audit row. Raises
        :class:`DuplicateId` if ``person_id`` exists, also when another thread or process
        enrols it at the same moment (the UNIQUE constraint decides; exactly one wins).
        """
        return self.enroll_many([(person_id, bio, meta)], actor)[0]

    def enroll_many(
        self, people: Sequence[tuple[str, Biometrics, Mapping[str, Any] | None]], actor: Actor
    ) -> list[int]:
        """Bulk import (migrating an existing database, benchmarks): :meth:`enroll` for each
        ``(person_id, biometrics, meta)``, all in one transaction, all or nothing; the row ids
        in order. One audit row per person, as for single enrolments."""
        _check_actor(actor)
        prepared = []
        for person_id, bio, meta in people:
            pid = check_person_id(person_id)
            samples = _prepare(bio)
            if not samples.fingers and not samples.irises:
                raise InvalidTemplate(f"enrolling {pid!r}: no finger or iris templates given")
            prepared.append((pid, samples, _meta_text(meta or {})))
        now = _now()
        rows = []
        with self._write() as conn:
            for pid, samples, meta_text in prepared:
                try:
                    row_id = conn.execute(
                        persons.insert()
                        .values(
                            person_id=pid, created_at=now, updated_at=now, version=1, meta=meta_text
                        )
                        .returning(persons.c.row_id)
                    ).scalar_one()
                except sa.exc.IntegrityError:
                    raise DuplicateId(f"person {pid!r} is already enrolled") from None
                self._put_samples(conn, int(row_id), samples)
                self._append_audit(conn, actor, "enroll", pid, samples.describe(), now)
                rows.append(int(row_id))
        return rows

    def update(
        self,
        person_id: str,
        bio: Biometrics,
        actor: Actor,
        meta: Mapping[str, Any] | None = None,
    ) -> PersonInfo:
        """Replace the given fingers and eyes (template and image together), keep the others,
        replace ``meta`` if given, bump ``version``; return the new record. One transaction with
        an ``update`` audit row. :class:`UnknownId` if the person is absent."""
        pid = check_person_id(person_id)
        _check_actor(actor)
        values: dict[str, Any] = {"version": persons.c.version + 1, "updated_at": _now()}
        if meta is not None:
            values["meta"] = _meta_text(meta)
        samples = _prepare(bio)
        with self._write() as conn:
            row_id = conn.execute(
                persons.update()
                .where(persons.c.person_id == pid)
                .values(**values)
                .returning(persons.c.row_id)
            ).scalar_one_or_none()
            if row_id is None:
                raise UnknownId(f"person {pid!r} is not enrolled")
            if samples.fingers:
                conn.execute(
                    fingers.delete().where(
                        fingers.c.row_id == row_id, fingers.c.position.in_(list(samples.fingers))
                    )
                )
            if samples.irises:
                conn.execute(
                    irises.delete().where(
                        irises.c.row_id == row_id, irises.c.eye.in_(list(samples.irises))
                    )
                )
            self._put_samples(conn, int(row_id), samples)
            detail = samples.describe() + ("; meta" if meta is not None else "")
            self._append_audit(conn, actor, "update", pid, detail, values["updated_at"])
            return self._info(conn, pid)

    def delete(self, person_id: str, actor: Actor) -> int:
        """Remove a person and (cascading) every sample; return the freed ``row_id``, which is
        never reused. One transaction with a ``delete`` audit row. :class:`UnknownId` if absent."""
        pid = check_person_id(person_id)
        _check_actor(actor)
        with self._write() as conn:
            row_id = conn.execute(
                persons.delete().where(persons.c.person_id == pid).returning(persons.c.row_id)
            ).scalar_one_or_none()
            if row_id is None:
                raise UnknownId(f"person {pid!r} is not enrolled")
            self._append_audit(conn, actor, "delete", pid, f"row {row_id}", _now())
        return int(row_id)

    def info(self, person_id: str) -> PersonInfo:
        """The person's record and which samples it has (no biometrics, not audited)."""
        pid = check_person_id(person_id)
        with self._read() as conn:
            return self._info(conn, pid)

    def biometrics(self, person_id: str, actor: Actor) -> tuple[int, Biometrics]:
        """``(row_id, samples)`` decrypted, images included. The read is audited
        (``read_biometrics``) and committed before any biometric leaves this method."""
        pid = check_person_id(person_id)
        _check_actor(actor)
        with self._write() as conn:
            row_id = conn.execute(
                sa.select(persons.c.row_id).where(persons.c.person_id == pid)
            ).scalar_one_or_none()
            if row_id is None:
                raise UnknownId(f"person {pid!r} is not enrolled")
            f_rows = conn.execute(
                sa.select(fingers.c.position, fingers.c.template, fingers.c.image)
                .where(fingers.c.row_id == row_id)
                .order_by(fingers.c.position)
            ).all()
            i_rows = conn.execute(
                sa.select(irises.c.eye, irises.c.template, irises.c.image)
                .where(irises.c.row_id == row_id)
                .order_by(irises.c.eye)
            ).all()
            read = [f"fingers {','.join(str(r[0]) for r in f_rows)}"] if f_rows else []
            read += [f"irises {','.join(str(r[0]) for r in i_rows)}"] if i_rows else []
            self._append_audit(conn, actor, "read_biometrics", pid, "; ".join(read), _now())
        # Opened after the audit row is committed: a failed authentication is on record too.
        rid = int(row_id)
        f_t: dict[int, FingerTemplate] = {}
        f_img: dict[int, bytes] = {}
        for pos, blob, image in f_rows:
            plain = self._sealer.open(blob, _aad("finger", rid, pos, "template"))
            f_t[pos] = _decoded(decode_finger, plain, f"finger {pos} of {pid!r}")
            if image is not None:
                plain = self._sealer.open(image, _aad("finger", rid, pos, "image"))
                f_img[pos] = _unpack_image(plain, f"finger {pos} of {pid!r}")
        i_t: dict[str, IrisTemplate] = {}
        i_img: dict[str, bytes] = {}
        for eye, blob, image in i_rows:
            plain = self._sealer.open(blob, _aad("iris", rid, eye, "template"))
            i_t[eye] = _decoded(decode_iris, plain, f"iris {eye} of {pid!r}")
            if image is not None:
                plain = self._sealer.open(image, _aad("iris", rid, eye, "image"))
                i_img[eye] = _unpack_image(plain, f"iris {eye} of {pid!r}")
        return rid, Biometrics(f_t, i_t, f_img, i_img)

    def row_ids(self, person_ids: Iterable[str]) -> dict[str, int]:
        """``person_id -> row_id`` for those of ``person_ids`` that are enrolled (others are
        left out)."""
        wanted = list(dict.fromkeys(check_person_id(p) for p in person_ids))
        out: dict[str, int] = {}
        with self._read() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(persons.c.person_id, persons.c.row_id).where(
                        persons.c.person_id.in_(chunk)
                    )
                )
                out.update({p: int(r) for p, r in rows})
        return out

    def person_ids(self, row_ids: Iterable[int]) -> dict[int, str]:
        """``row_id -> person_id`` for those of ``row_ids`` that exist (others are left out)."""
        wanted = list(dict.fromkeys(int(r) for r in row_ids))
        out: dict[int, str] = {}
        with self._read() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(persons.c.row_id, persons.c.person_id).where(
                        persons.c.row_id.in_(chunk)
                    )
                )
                out.update({int(r): p for r, p in rows})
        return out

    def person_states(self) -> PersonStates:
        """Every person's :class:`PersonStates` row, from one read (not audited: no biometrics)."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    persons.c.row_id, persons.c.person_id, persons.c.version, persons.c.updated_at
                ).order_by(persons.c.row_id)
            ).all()
        n = len(rows)
        return PersonStates(
            row_ids=np.fromiter((r[0] for r in rows), np.int64, n),
            person_ids=[str(r[1]) for r in rows],
            versions=np.fromiter((r[2] for r in rows), np.int64, n),
            updated_us=np.fromiter(
                ((_utc(r[3]) - epoch) // _MICROSECOND for r in rows), np.int64, n
            ),
        )

    def _partitions(
        self, table: sa.Table, slot: sa.Column[Any], batch: int, rows: Iterable[int] | None
    ) -> Iterator[Sequence[Any]]:
        """``(row_id, slot, template)`` of every sample, or of those of ``rows``, in batches."""
        _check_batch(batch)
        query = sa.select(table.c.row_id, slot, table.c.template).order_by(table.c.row_id, slot)
        with self._read() as conn:
            if rows is None:
                result = conn.execution_options(yield_per=batch).execute(query)
                yield from result.partitions()
                return
            wanted = sorted({int(r) for r in rows})
            part: list[Any] = []
            for chunk in _chunks(wanted):
                part.extend(conn.execute(query.where(table.c.row_id.in_(chunk))).all())
                if len(part) >= batch:
                    yield part
                    part = []
            if part:
                yield part

    def iter_fingers(
        self, batch: int = 10_000, rows: Iterable[int] | None = None
    ) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8], list[FingerTemplate]]]:
        """Every finger template in ``(row_id, position)`` order, in batches of up to ``batch``:
        ``(row_ids int64 (b,), positions uint8 (b,), templates)``. For loading galleries at
        start-up: one streamed query in one read transaction (a consistent snapshot), decrypted
        and decoded per row. Holds a connection until exhausted or closed. Not audited: the
        server's own load, not a person's read. ``rows``: only these persons' fingers (bringing a
        gallery snapshot up to date)."""
        for part in self._partitions(fingers, fingers.c.position, batch, rows):
            row_ids = np.fromiter((r[0] for r in part), np.int64, len(part))
            positions = np.fromiter((r[1] for r in part), np.uint8, len(part))
            opened = self._sealer.open
            plains = [opened(blob, _aad("finger", rid, pos, "template")) for rid, pos, blob in part]
            try:
                templates = decode_fingers(plains)
            except InvalidTemplate:
                # Authenticated but undecodable: a codec bug, not an attacker. Name the row.
                for (rid, pos, _), plain in zip(part, plains, strict=True):
                    _decoded(decode_finger, plain, f"finger {pos} of row {rid}")
                raise
            yield row_ids, positions, templates

    def iter_irises(
        self, batch: int = 10_000, rows: Iterable[int] | None = None
    ) -> Iterator[tuple[npt.NDArray[np.int64], list[str], list[IrisTemplate]]]:
        """Every iris template in ``(row_id, eye)`` order, in batches: ``(row_ids int64 (b,),
        eyes, templates)``. As :meth:`iter_fingers`."""
        for part in self._partitions(irises, irises.c.eye, batch, rows):
            row_ids = np.fromiter((r[0] for r in part), np.int64, len(part))
            eyes = [str(r[1]) for r in part]
            templates = [
                _decoded(
                    decode_iris,
                    self._sealer.open(blob, _aad("iris", rid, eye, "template")),
                    f"iris {eye} of row {rid}",
                )
                for rid, eye, blob in part
            ]
            yield row_ids, eyes, templates

    def counts(self) -> dict[str, int]:
        """``{"persons": ..., "fingers": ..., "irises": ...}`` from one snapshot."""
        with self._read() as conn:
            return {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                for name, t in (("persons", persons), ("fingers", fingers), ("irises", irises))
            }

    # --- audit ---

    def audit(self, actor: Actor, action: str, person_id: str | None, detail: str = "") -> None:
        """Append an audit row in its own transaction (e.g. a 1:N search that read templates
        from the in-memory galleries). ``detail`` is words, never biometric data."""
        _check_actor(actor)
        with self._write() as conn:
            self._append_audit(conn, actor, action, person_id, detail, _now())

    def audit_log(self, person_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` audit rows (of ``person_id`` if given), newest first, as dicts
        with ``seq, at, actor, role, action, person_id, detail``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidTemplate(f"limit must be a positive integer, got {limit!r}")
        query = sa.select(audit_table).order_by(audit_table.c.seq.desc()).limit(limit)
        if person_id is not None:
            query = query.where(audit_table.c.person_id == check_person_id(person_id))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "at": _utc(row["at"])} for row in rows]

    # --- jobs ---

    def create_job(self, kind: str, params: Mapping[str, Any]) -> str:
        """A new ``queued`` job; returns its id (32 hex characters)."""
        kind = _check_text("job kind", kind, 64)
        if not isinstance(params, Mapping):
            raise InvalidTemplate("job params must be a dict")
        text = _json_text("job params", dict(params), MAX_JOB_JSON_BYTES)
        job_id = uuid.uuid4().hex
        now = _now()
        with self._write() as conn:
            conn.execute(
                jobs_table.insert().values(
                    job_id=job_id,
                    kind=kind,
                    state="queued",
                    params=text,
                    progress_done=0,
                    progress_total=0,
                    checkpoint=None,
                    error=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as a dict: ``job_id, kind, state, params, progress_done, progress_total,
        checkpoint (dict or None), error, created_at, updated_at``. :class:`UnknownId` if absent."""
        with self._read() as conn:
            row = (
                conn.execute(sa.select(jobs_table).where(jobs_table.c.job_id == str(job_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise UnknownId(f"job {job_id!r} does not exist")
        return _job_dict(row)

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first (dicts as :meth:`job`)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidTemplate(f"limit must be a positive integer, got {limit!r}")
        with self._read() as conn:
            rows = (
                conn.execute(
                    sa.select(jobs_table)
                    .order_by(jobs_table.c.created_at.desc(), jobs_table.c.job_id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
        return [_job_dict(r) for r in rows]

    def update_job(
        self,
        job_id: str,
        *,
        state: str | None = None,
        done: int | None = None,
        total: int | None = None,
        checkpoint: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Set the given fields (others unchanged) and ``updated_at``. ``state`` is one of
        :data:`JOB_STATES`; ``done``/``total`` count work units; ``checkpoint`` is the JSON
        resume point. :class:`UnknownId` if the job is absent."""
        values: dict[str, Any] = {"updated_at": _now()}
        if state is not None:
            if state not in JOB_STATES:
                raise InvalidTemplate(f"job state {state!r} is not one of {', '.join(JOB_STATES)}")
            values["state"] = state
        counts = (("done", "progress_done", done), ("total", "progress_total", total))
        for name, column, value in counts:
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise InvalidTemplate(f"job {name} must be a non-negative integer")
                values[column] = value
        if checkpoint is not None:
            if not isinstance(checkpoint, Mapping):
                raise InvalidTemplate("job checkpoint must be a dict")
            values["checkpoint"] = _json_text(
                "job checkpoint", dict(checkpoint), MAX_JOB_JSON_BYTES
            )
        if error is not None:
            values["error"] = str(error)[:MAX_AUDIT_DETAIL_CHARS]
        with self._write() as conn:
            hit = conn.execute(
                jobs_table.update().where(jobs_table.c.job_id == str(job_id)).values(**values)
            ).rowcount
            if not hit:
                raise UnknownId(f"job {job_id!r} does not exist")

    def add_job_results(self, job_id: str, rows: Sequence[tuple[int, str, float]]) -> None:
        """Record ``(cluster, person_id, score)`` rows of a job. Idempotent: a row already there
        (a resumed job writing its last block again) has its score replaced, never duplicated.
        :class:`UnknownId` if the job is absent."""
        unique: dict[tuple[int, str], float] = {}
        for row in rows:
            cluster, pid, score = row
            if isinstance(cluster, bool) or not isinstance(cluster, int | np.integer):
                raise InvalidTemplate(f"job result cluster must be an integer, got {cluster!r}")
            unique[(int(cluster), check_person_id(pid))] = float(score)
        with self._write() as conn:
            exists = conn.execute(
                sa.select(jobs_table.c.job_id).where(jobs_table.c.job_id == str(job_id))
            ).first()
            if exists is None:
                raise UnknownId(f"job {job_id!r} does not exist")
            if not unique:
                return
            stmt = self._upsert_insert(job_results_table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["job_id", "cluster", "person_id"],
                set_={"score": stmt.excluded.score},
            )
            conn.execute(
                stmt,
                [
                    {"job_id": str(job_id), "cluster": c, "person_id": p, "score": s}
                    for (c, p), s in unique.items()
                ],
            )

    def job_results(self, job_id: str) -> list[tuple[int, str, float]]:
        """The job's ``(cluster, person_id, score)`` rows by cluster, then person id.
        :class:`UnknownId` if the job is absent."""
        with self._read() as conn:
            exists = conn.execute(
                sa.select(jobs_table.c.job_id).where(jobs_table.c.job_id == str(job_id))
            ).first()
            if exists is None:
                raise UnknownId(f"job {job_id!r} does not exist")
            rows = conn.execute(
                sa.select(
                    job_results_table.c.cluster,
                    job_results_table.c.person_id,
                    job_results_table.c.score,
                )
                .where(job_results_table.c.job_id == str(job_id))
                .order_by(job_results_table.c.cluster, job_results_table.c.person_id)
            ).all()
        return [(int(c), str(p), float(s)) for c, p, s in rows]

    # --- internals ---

    def _seal(
        self, data: bytes | None, modality: str, row_id: int, slot: object, part: str
    ) -> bytes | None:
        return None if data is None else self._sealer.seal(data, _aad(modality, row_id, slot, part))

    def _put_samples(self, conn: Connection, row_id: int, samples: _Samples) -> None:
        for table, modality, slot_key, by_slot in (
            (fingers, "finger", "position", samples.fingers),
            (irises, "iris", "eye", samples.irises),
        ):
            if not by_slot:
                continue
            conn.execute(
                table.insert(),
                [
                    {
                        "row_id": row_id,
                        slot_key: slot,
                        "template": self._seal(blob, modality, row_id, slot, "template"),
                        "image": self._seal(image, modality, row_id, slot, "image"),
                        "format_version": version,
                    }
                    for slot, (blob, image, version) in by_slot.items()
                ],
            )

    def _append_audit(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        person_id: str | None,
        detail: str,
        at: datetime,
    ) -> None:
        _check_text("audit action", action, 64)
        if person_id is not None:
            check_person_id(person_id)
        if not isinstance(detail, str):
            raise InvalidTemplate("audit detail must be a string")
        conn.execute(
            audit_table.insert().values(
                at=at,
                actor=actor.name,
                role=actor.role,
                action=action,
                person_id=person_id,
                detail=detail[:MAX_AUDIT_DETAIL_CHARS],
            )
        )

    def _info(self, conn: Connection, pid: str) -> PersonInfo:
        row = conn.execute(sa.select(persons).where(persons.c.person_id == pid)).first()
        if row is None:
            raise UnknownId(f"person {pid!r} is not enrolled")
        positions = conn.execute(
            sa.select(fingers.c.position)
            .where(fingers.c.row_id == row.row_id)
            .order_by(fingers.c.position)
        ).scalars()
        eyes = conn.execute(
            sa.select(irises.c.eye).where(irises.c.row_id == row.row_id).order_by(irises.c.eye)
        ).scalars()
        return PersonInfo(
            person_id=row.person_id,
            row_id=int(row.row_id),
            created_at=_utc(row.created_at),
            updated_at=_utc(row.updated_at),
            version=int(row.version),
            meta=json.loads(row.meta),
            finger_positions=tuple(int(p) for p in positions),
            eyes=tuple(str(e) for e in eyes),
        )


def ensure_pg_schema(conn: Connection, schema: str) -> None:
    """Create the schema only when absent: CREATE SCHEMA IF NOT EXISTS still needs the CREATE
    privilege on the database, which a least-privilege service role lacks."""
    found = conn.execute(
        sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}
    ).first()
    if found is None:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))  # name checked by check_schema


def _decoded(decode: Callable[[bytes], T], plain: bytes, where: str) -> T:
    """``decode(plain)``; a stored blob that authenticates but does not decode is an integrity
    failure of the store (a codec bug or a key misuse), never the caller's bad input."""
    try:
        return decode(plain)
    except InvalidTemplate as exc:
        raise StoreIntegrityError(f"stored template for {where} does not decode: {exc}") from exc


def _check_actor(actor: object) -> None:
    if not isinstance(actor, Actor):
        raise InvalidTemplate(f"actor must be an Actor, got {type(actor).__name__}")


def _check_batch(batch: object) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidTemplate(f"batch must be a positive integer, got {batch!r}")


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def _job_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["params"] = json.loads(out["params"])
    out["checkpoint"] = None if out["checkpoint"] is None else json.loads(out["checkpoint"])
    out["created_at"] = _utc(out["created_at"])
    out["updated_at"] = _utc(out["updated_at"])
    out["progress_done"] = int(out["progress_done"])
    out["progress_total"] = int(out["progress_total"])
    return out

"""The card workflow's durable store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Same habits as :mod:`matcher.store` (and the same engine set-up: WAL with ``synchronous=FULL`` and
``BEGIN IMMEDIATE`` writers on SQLite, a schema per test on PostgreSQL): every workflow operation is
one transaction that changes the file, checks the state it started from, and appends an
``enr_audit`` row (who, role, when, household, transition, detail) before it commits. The database
refuses UPDATE and DELETE on ``enr_audit`` (triggers). The card workflow keeps its own tables (all
named ``enr_*``) and never reads or writes the matcher's: biometrics go through the matching
service's API.

Schema: this first version creates the tables with ``metadata.create_all`` and records
:data:`SCHEMA_VERSION` in ``enr_schema``; a database with a newer version is refused. The move to
Alembic revisions (as ``matcher/migrations``) is left for the integration.

Tables (one line each; dates are Gregorian ``DATE``, instants UTC):
``enr_offices`` daily capacity, working hours (minutes after midnight), working weekdays;
``enr_rounds`` one per Jalali year, with its first and last day (1-3 weeks);
``enr_households`` code, head, phone, office; ``enr_members`` person id (the matching service's),
names, birth date, document kind/number/expiry, enrolled-before flag;
``enr_applications`` one per household and round, with ``state`` and an optimistic ``version``;
``enr_application_members`` who is in the file (included / refused / removed) and why;
``enr_recalls``, ``enr_appointments``, ``enr_payments``, ``enr_documents``, ``enr_vital_events``,
``enr_captures``, ``enr_adjudications``, ``enr_details``, ``enr_decisions``, ``enr_cards``;
``enr_outbox`` SMS with attempts and retry times; ``enr_audit`` append-only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from enrollment.errors import InvalidInput, NotFound, WorkflowError
from matcher.crypto import Sealer
from matcher.store import (
    Actor,
    StoreError,
    check_schema,
    create_engine,
    database_url,
    ensure_pg_schema,
)

__all__ = [
    "Application",
    "EnrollmentStore",
    "ConcurrentChange",
    "SCHEMA_VERSION",
    "metadata",
    "now_utc",
]

SCHEMA_VERSION = 1
MAX_DETAIL_CHARS = 2000
AUDIT_REFUSAL = "enr_audit is append-only"

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC_TIME = sa.DateTime(timezone=True)
_WHO = sa.String(128)
_PID = sa.String(64)
_CODE = sa.String(32)

metadata = sa.MetaData()


def _fk(column: str, ondelete: str | None = None) -> sa.ForeignKey:
    return sa.ForeignKey(column, ondelete=ondelete)


schema_table = sa.Table("enr_schema", metadata, sa.Column("version", sa.Integer(), nullable=False))
offices = sa.Table(
    "enr_offices",
    metadata,
    sa.Column("office_id", _CODE, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("daily_capacity", sa.Integer(), nullable=False),
    sa.Column("opens_min", sa.SmallInteger(), nullable=False),
    sa.Column("closes_min", sa.SmallInteger(), nullable=False),
    sa.Column("working_weekdays", sa.String(7), nullable=False),  # Python weekdays, "01256"
    sa.Column("payment_instructions", sa.Text(), nullable=False),
)
rounds = sa.Table(
    "enr_rounds",
    metadata,
    sa.Column("jalali_year", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("starts_on", sa.Date(), nullable=False),
    sa.Column("ends_on", sa.Date(), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
)
households = sa.Table(
    "enr_households",
    metadata,
    sa.Column("household_code", _CODE, primary_key=True),
    sa.Column("head_person_id", _PID, nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("office_id", _CODE, _fk("enr_offices.office_id"), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
)
members = sa.Table(
    "enr_members",
    metadata,
    sa.Column("person_id", _PID, primary_key=True),
    sa.Column(
        "household_code", _CODE, _fk("enr_households.household_code"), nullable=False, index=True
    ),
    sa.Column("given_name", sa.String(100), nullable=False),
    sa.Column("family_name", sa.String(100), nullable=False),
    sa.Column("father_name", sa.String(100), nullable=False),
    sa.Column("birth_date", sa.Date(), nullable=True),
    sa.Column("sex", sa.String(1), nullable=False),
    sa.Column("relation", sa.String(16), nullable=False),
    sa.Column("document_kind", sa.String(16), nullable=False),
    sa.Column("document_number", sa.String(32), nullable=True),
    sa.Column("document_expiry", sa.Date(), nullable=True),
    sa.Column("enrolled_before", sa.Boolean(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
)
applications = sa.Table(
    "enr_applications",
    metadata,
    sa.Column("application_id", _ID, primary_key=True, autoincrement=True),
    sa.Column("jalali_year", sa.Integer(), _fk("enr_rounds.jalali_year"), nullable=False),
    sa.Column("household_code", _CODE, _fk("enr_households.household_code"), nullable=False),
    sa.Column("office_id", _CODE, _fk("enr_offices.office_id"), nullable=False),
    sa.Column("state", sa.String(24), nullable=False, index=True),
    sa.Column("resume_state", sa.String(24), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("updated_at", _UTC_TIME, nullable=False),
    sa.UniqueConstraint("jalali_year", "household_code", name="uq_enr_app_round_household"),
    sqlite_autoincrement=True,
)


def _app_fk() -> sa.Column[Any]:
    return sa.Column(
        "application_id",
        _ID,
        _fk("enr_applications.application_id"),
        nullable=False,
        index=True,
    )


def _serial(name: str) -> sa.Column[Any]:
    return sa.Column(name, _ID, primary_key=True, autoincrement=True)


application_members = sa.Table(
    "enr_application_members",
    metadata,
    sa.Column("application_id", _ID, _fk("enr_applications.application_id"), primary_key=True),
    sa.Column("person_id", _PID, _fk("enr_members.person_id"), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # included / refused / removed
    sa.Column("reason", sa.Text(), nullable=False),
)
recalls = sa.Table(
    "enr_recalls",
    metadata,
    _serial("recall_id"),
    _app_fk(),
    sa.Column("channel", sa.String(8), nullable=False),  # sms / phone
    sa.Column("at", _UTC_TIME, nullable=False),
    sa.Column("by_actor", _WHO, nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("message_id", _ID, nullable=True),
    sqlite_autoincrement=True,
)
appointments = sa.Table(
    "enr_appointments",
    metadata,
    _serial("appointment_id"),
    sa.Column(
        "application_id", _ID, _fk("enr_applications.application_id"), nullable=False, unique=True
    ),
    sa.Column("office_id", _CODE, _fk("enr_offices.office_id"), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("slot", sa.SmallInteger(), nullable=False),
    sa.Column("starts_min", sa.SmallInteger(), nullable=False),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("by_actor", _WHO, nullable=False),
    sa.UniqueConstraint("office_id", "day", "slot", name="uq_enr_appointment_slot"),
    sqlite_autoincrement=True,
)
payments = sa.Table(
    "enr_payments",
    metadata,
    _serial("payment_id"),
    _app_fk(),
    sa.Column("receipt_number", sa.String(64), nullable=False, unique=True),
    sa.Column("amount_rials", sa.BigInteger(), nullable=False),
    sa.Column("paid_on", sa.Date(), nullable=False),
    sa.Column("recorded_by", _WHO, nullable=False),
    sa.Column("recorded_at", _UTC_TIME, nullable=False),
    sqlite_autoincrement=True,
)
documents = sa.Table(
    "enr_documents",
    metadata,
    _serial("document_id"),
    _app_fk(),
    sa.Column("person_id", _PID, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("expiry", sa.Date(), nullable=True),
    sa.Column("collected_by", _WHO, nullable=False),
    sa.Column("collected_at", _UTC_TIME, nullable=False),
    sqlite_autoincrement=True,
)
vital_events = sa.Table(
    "enr_vital_events",
    metadata,
    _serial("event_id"),
    _app_fk(),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("person_id", _PID, nullable=True),
    sa.Column("new_member", sa.Text(), nullable=True),  # JSON of a member joining (birth, ...)
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("reported_by", _WHO, nullable=False),
    sa.Column("reported_at", _UTC_TIME, nullable=False),
    sa.Column("recorded_by", _WHO, nullable=True),
    sa.Column("recorded_at", _UTC_TIME, nullable=True),
    sa.Column("record_note", sa.Text(), nullable=True),
    sqlite_autoincrement=True,
)
captures = sa.Table(
    "enr_captures",
    metadata,
    sa.Column("application_id", _ID, _fk("enr_applications.application_id"), primary_key=True),
    sa.Column("person_id", _PID, primary_key=True),
    sa.Column("captured_by", _WHO, nullable=False),
    sa.Column("captured_at", _UTC_TIME, nullable=False),
    sa.Column("verification", sa.String(16), nullable=False),  # match/no_match/not_found/none
    sa.Column("biometric_write", sa.String(8), nullable=False),  # enroll / update / none
    sa.Column("scores", sa.Text(), nullable=False),
    sa.Column("fingers", sa.String(32), nullable=False),  # positions captured, "1,2,...,10"
    sa.Column("missing_fingers", sa.Text(), nullable=False),  # JSON {position: reason}
    sa.Column("photo", sa.LargeBinary(), nullable=False),
    sa.Column("photo_sha256", sa.String(64), nullable=False),
)
adjudications = sa.Table(
    "enr_adjudications",
    metadata,
    _serial("adjudication_id"),
    _app_fk(),
    sa.Column("person_id", _PID, nullable=False),
    sa.Column("candidate_person_id", _PID, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # identify / verify
    sa.Column("scores", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending / same_person / different_person
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("resolved_by", _WHO, nullable=True),
    sa.Column("resolved_at", _UTC_TIME, nullable=True),
    sqlite_autoincrement=True,
)
details = sa.Table(
    "enr_details",
    metadata,
    sa.Column("application_id", _ID, _fk("enr_applications.application_id"), primary_key=True),
    sa.Column("person_id", _PID, primary_key=True),
    sa.Column("address", sa.Text(), nullable=False),
    sa.Column("occupation", sa.String(100), nullable=False),
    sa.Column("mobile", sa.String(20), nullable=False),
    sa.Column("landline", sa.String(20), nullable=False),
    sa.Column("workshop_code", sa.String(32), nullable=False),
    sa.Column("extra", sa.Text(), nullable=False),
    sa.Column("recorded_by", _WHO, nullable=False),
    sa.Column("recorded_at", _UTC_TIME, nullable=False),
)
decisions = sa.Table(
    "enr_decisions",
    metadata,
    _serial("decision_id"),
    _app_fk(),
    sa.Column("decision", sa.String(16), nullable=False),  # approved / rejected
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("excluded", sa.Text(), nullable=False),  # JSON {person_id: reason}
    sa.Column("by_actor", _WHO, nullable=False),
    sa.Column("at", _UTC_TIME, nullable=False),
    sqlite_autoincrement=True,
)
cards = sa.Table(
    "enr_cards",
    metadata,
    sa.Column("card_number", sa.String(24), primary_key=True),
    _app_fk(),
    sa.Column("person_id", _PID, nullable=False),
    sa.Column("valid_from", sa.Date(), nullable=False),
    sa.Column("valid_to", sa.Date(), nullable=False),
    sa.Column("issued_by", _WHO, nullable=False),
    sa.Column("issued_at", _UTC_TIME, nullable=False),
    sa.Column("handed_over_to", _PID, nullable=True),
    sa.Column("handed_over_by", _WHO, nullable=True),
    sa.Column("handed_over_at", _UTC_TIME, nullable=True),
    sa.UniqueConstraint("application_id", "person_id", name="uq_enr_card_member"),
)
outbox = sa.Table(
    "enr_outbox",
    metadata,
    _serial("message_id"),
    sa.Column("application_id", _ID, nullable=True),
    sa.Column("to_phone", sa.String(20), nullable=False),
    sa.Column("template", sa.String(32), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("state", sa.String(8), nullable=False, index=True),  # pending / sent / failed
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("created_at", _UTC_TIME, nullable=False),
    sa.Column("next_attempt_at", _UTC_TIME, nullable=False),
    sa.Column("sent_at", _UTC_TIME, nullable=True),
    sqlite_autoincrement=True,
)
audit = sa.Table(
    "enr_audit",
    metadata,
    _serial("seq"),
    sa.Column("at", _UTC_TIME, nullable=False),
    sa.Column("actor", _WHO, nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("household_code", _CODE, nullable=True),
    sa.Column("application_id", _ID, nullable=True),
    sa.Column("action", sa.String(48), nullable=False),
    sa.Column("from_state", sa.String(24), nullable=True),
    sa.Column("to_state", sa.String(24), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_enr_audit_application", "application_id", "seq"),
    sqlite_autoincrement=True,
)


class ConcurrentChange(WorkflowError, RuntimeError):
    """Another operation changed the file between this one's read and its write; read it
    again and retry. (The service maps it to ABORTED.)"""


@dataclass(frozen=True)
class Application:
    """One household's file in one round, as read at the start of an operation."""

    application_id: int
    jalali_year: int
    household_code: str
    office_id: str
    state: str
    resume_state: str | None
    version: int


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc(value: dt.datetime) -> dt.datetime:
    """Timestamps come back naive from SQLite (stored UTC) and zoned from PostgreSQL."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def to_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def _photo_aad(application_id: int, person_id: str) -> bytes:
    return f"photo|{int(application_id)}|{person_id}".encode()


class EnrollmentStore:
    """Open with :meth:`open`; share between threads; one transaction per :meth:`write` block."""

    def __init__(self, engine: Engine, where: str, sealer: Sealer) -> None:
        self._engine = engine
        self._where = where
        self._sealer = sealer
        self._closed = False

    @classmethod
    def open(cls, url: str, *, key: bytes | Sealer, schema: str | None = None) -> EnrollmentStore:
        """Connect to ``url`` (``sqlite:///path.db`` or ``postgresql://...``), create the tables
        if the database is new, and return the store. ``key``: the store's AES-256 key (the
        matching store's, :mod:`matcher.crypto`); live photos are sealed with it, like every
        other biometric sample. ``schema``: a PostgreSQL schema to keep the tables in (created
        if absent), e.g. to isolate tests. :class:`StoreError` for a bad URL or a schema newer
        than this code."""
        sealer = key if isinstance(key, Sealer) else Sealer(key)
        db_url = database_url(url)
        backend = db_url.get_backend_name()
        check_schema(schema, backend)
        where = db_url.render_as_string(hide_password=True) + (
            f" (schema {schema})" if schema else ""
        )
        engine = create_engine(db_url, schema)
        try:
            with engine.connect() as conn:
                conn.execution_options(amayesh_write=True)
                with conn.begin():
                    if backend == "postgresql":
                        if schema is not None:
                            ensure_pg_schema(conn, schema)
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                            {"k": f"amayesh.enrollment.create.{schema or ''}"},
                        )
                    _create_schema(conn, where)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, where, sealer)

    def seal_photo(self, application_id: int, person_id: str, photo: bytes) -> bytes:
        """The photo sealed for its row (application, member): unreadable without the key, and
        refused if copied to another row."""
        return self._sealer.seal(photo, _photo_aad(application_id, person_id))

    def open_photo(self, application_id: int, person_id: str, blob: bytes) -> bytes:
        return self._sealer.open(blob, _photo_aad(application_id, person_id))

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> EnrollmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"EnrollmentStore({self._where})"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if self._closed:
            raise StoreError(f"the enrollment store at {self._where} is closed")
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that commits on leaving the block (rolls back on an exception)."""
        if self._closed:
            raise StoreError(f"the enrollment store at {self._where} is closed")
        with self._engine.connect() as conn:
            conn.execution_options(amayesh_write=True)
            with conn.begin():
                yield conn


# --- helpers used inside one transaction -------------------------------------------------------


def application(conn: Connection, application_id: int) -> Application:
    row = conn.execute(
        sa.select(applications).where(applications.c.application_id == application_id)
    ).first()
    if row is None:
        raise NotFound(f"application {application_id} does not exist")
    return Application(
        int(row.application_id),
        int(row.jalali_year),
        row.household_code,
        row.office_id,
        row.state,
        row.resume_state,
        int(row.version),
    )


def row_or_missing(conn: Connection, table: sa.Table, what: str, **key: Any) -> Any:
    query = sa.select(table)
    for column, value in key.items():
        query = query.where(table.c[column] == value)
    row = conn.execute(query).first()
    if row is None:
        described = ", ".join(f"{k} {v!r}" for k, v in key.items())
        raise NotFound(f"{what} with {described} does not exist")
    return row


def move(
    conn: Connection,
    app: Application,
    to_state: str,
    actor: Actor,
    action: str,
    detail: str = "",
    resume_state: str | None | bool = False,
) -> Application:
    """Move ``app`` to ``to_state`` if nobody changed it since it was read (its ``version``),
    and append the audit row of the transition in the same transaction. ``resume_state``: a
    state to remember (blocking events), None to clear it, False to leave it."""
    now = now_utc()
    values: dict[str, Any] = {
        "state": to_state,
        "version": applications.c.version + 1,
        "updated_at": now,
    }
    if resume_state is not False:
        values["resume_state"] = resume_state
    done = conn.execute(
        applications.update()
        .where(
            applications.c.application_id == app.application_id,
            applications.c.version == app.version,
        )
        .values(**values)
    )
    if done.rowcount != 1:
        raise ConcurrentChange(
            f"application {app.application_id} was changed by another operation; "
            "read it again and retry"
        )
    append_audit(
        conn,
        actor,
        action,
        app.household_code,
        app.application_id,
        app.state,
        to_state,
        detail,
        now,
    )
    new_resume = app.resume_state if resume_state is False else resume_state
    return Application(
        app.application_id,
        app.jalali_year,
        app.household_code,
        app.office_id,
        to_state,
        new_resume if isinstance(new_resume, str) else None,
        app.version + 1,
    )


def append_audit(
    conn: Connection,
    actor: Actor,
    action: str,
    household_code: str | None,
    application_id: int | None,
    from_state: str | None,
    to_state: str | None,
    detail: str,
    at: dt.datetime | None = None,
) -> None:
    conn.execute(
        audit.insert().values(
            at=at or now_utc(),
            actor=actor.name,
            role=actor.role,
            household_code=household_code,
            application_id=application_id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            detail=detail[:MAX_DETAIL_CHARS],
        )
    )


def queue_sms(
    conn: Connection,
    application_id: int | None,
    to_phone: str,
    template: str,
    body: str,
    at: dt.datetime | None = None,
) -> int:
    """Put a message in the outbox inside the caller's transaction (the transactional outbox:
    a message exists exactly when the change that caused it committed)."""
    now = at or now_utc()
    return int(
        conn.execute(
            outbox.insert()
            .values(
                application_id=application_id,
                to_phone=to_phone,
                template=template,
                body=body,
                state="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
            .returning(outbox.c.message_id)
        ).scalar_one()
    )


def audit_rows(conn: Connection, application_id: int | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first (of one application if given)."""
    query = sa.select(audit).order_by(audit.c.seq)
    if application_id is not None:
        query = query.where(audit.c.application_id == application_id)
    out = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        item["at"] = utc(item["at"])
        out.append(item)
    return out


def json_mapping(text: str) -> Mapping[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise InvalidInput("stored JSON is not an object")
    return value


# --- schema creation -----------------------------------------------------------------------


def _create_schema(conn: Connection, where: str) -> None:
    inspector = sa.inspect(conn)
    if inspector.has_table("enr_schema"):
        found = conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
        if found is not None and int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"the enrollment store at {where} has schema version {found}, newer than this "
                f"code's {SCHEMA_VERSION}: run the newer version or restore a backup"
            )
        if found is not None:
            return
    metadata.create_all(conn)
    _audit_append_only(conn)
    conn.execute(schema_table.insert().values(version=SCHEMA_VERSION))


def _audit_append_only(conn: Connection) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE) of audit rows in the database itself."""
    if conn.dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS enr_audit_no_{event.lower()} BEFORE {event} "
                f"ON enr_audit BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSAL}'); END"
            )
        return
    conn.exec_driver_sql(
        "CREATE OR REPLACE FUNCTION enr_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        f"AS $$ BEGIN RAISE EXCEPTION '{AUDIT_REFUSAL}' USING ERRCODE = "
        "'insufficient_privilege'; END $$"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER enr_audit_no_change BEFORE UPDATE OR DELETE ON enr_audit "
        "FOR EACH ROW EXECUTE FUNCTION enr_audit_refuse_change()"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER enr_audit_no_truncate BEFORE TRUNCATE ON enr_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION enr_audit_refuse_change()"
    )

"""Initial store schema: persons, fingers, irises, audit (append-only), jobs, job_results.

Revision ID: 0001
Revises:
Create Date: 2026-05-10

A frozen snapshot: later changes get their own revision; never edit this one after release.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite needs INTEGER PRIMARY KEY (the rowid) for autoincrement; it is 64-bit there too.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

AUDIT_REFUSAL = "audit log is append-only"


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("row_id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.UniqueConstraint("person_id", name="uq_persons_person_id"),
        sqlite_autoincrement=True,  # never reuse a deleted person's row id
    )
    op.create_table(
        "fingers",
        sa.Column(
            "row_id",
            ROW_ID,
            sa.ForeignKey("persons.row_id", ondelete="CASCADE", name="fk_fingers_person"),
            nullable=False,
        ),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("format_version", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("row_id", "position", name="pk_fingers"),
        sa.CheckConstraint("position BETWEEN 0 AND 10", name="ck_fingers_position"),
    )
    op.create_table(
        "irises",
        sa.Column(
            "row_id",
            ROW_ID,
            sa.ForeignKey("persons.row_id", ondelete="CASCADE", name="fk_irises_person"),
            nullable=False,
        ),
        sa.Column("eye", sa.String(1), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("format_version", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("row_id", "eye", name="pk_irises"),
        sa.CheckConstraint("eye IN ('L', 'R')", name="ck_irises_eye"),
    )
    op.create_table(
        "audit",
        sa.Column("seq", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_person", "audit", ["person_id", "seq"])
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_jobs_state"
        ),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_table(
        "job_results",
        sa.Column(
            "job_id",
            sa.String(64),
            sa.ForeignKey("jobs.job_id", ondelete="CASCADE", name="fk_job_results_job"),
            nullable=False,
        ),
        sa.Column("cluster", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "cluster", "person_id", name="pk_job_results"),
    )
    _audit_append_only(op.get_bind().dialect.name)


def _audit_append_only(dialect: str) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE) of audit rows in the database itself."""
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit "
                f"BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSAL}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{AUDIT_REFUSAL}' USING ERRCODE = 'insufficient_privilege'; "
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    else:
        raise RuntimeError(f"the store supports SQLite and PostgreSQL, not {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_no_change ON audit")
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    for table in ("job_results", "jobs", "audit", "irises", "fingers", "persons"):
        op.drop_table(table)

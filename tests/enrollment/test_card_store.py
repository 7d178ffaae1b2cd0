"""enrollment.store: schema creation, refusal of a newer schema, optimistic state changes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from enrollment import store as db
from enrollment.store import ConcurrentChange, EnrollmentStore
from matcher.store import Actor, StoreError

TEST_KEY = bytes(range(32))  # the store key (AES-256) of these tests

CLERK = Actor("clerk-1", "caseworker")


def _seed(s: EnrollmentStore) -> int:
    now = db.now_utc()
    with s.write() as conn:
        conn.execute(
            db.offices.insert().values(
                office_id="Q",
                name="Qom",
                phone="0253",
                daily_capacity=3,
                opens_min=480,
                closes_min=840,
                working_weekdays="56012",
                payment_instructions="bank",
            )
        )
        conn.execute(
            db.rounds.insert().values(
                jalali_year=1403,
                starts_on=dt.date(2024, 5, 4),
                ends_on=dt.date(2024, 5, 17),
                created_at=now,
            )
        )
        conn.execute(
            db.households.insert().values(
                household_code="HH",
                head_person_id="P",
                phone="09120000000",
                office_id="Q",
                created_at=now,
            )
        )
        return int(
            conn.execute(
                db.applications.insert()
                .values(
                    jalali_year=1403,
                    household_code="HH",
                    office_id="Q",
                    state="imported",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
                .returning(db.applications.c.application_id)
            ).scalar_one()
        )


def test_reopening_keeps_the_data_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with EnrollmentStore.open(url, key=TEST_KEY) as s:
        app_id = _seed(s)
    with EnrollmentStore.open(url, key=TEST_KEY) as s, s.read() as conn:
        assert db.application(conn, app_id).state == "imported"
        assert conn.execute(sa.select(db.schema_table.c.version)).scalars().all() == [1]
    with EnrollmentStore.open(url, key=TEST_KEY) as s, s.write() as conn:
        conn.execute(db.schema_table.insert().values(version=db.SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="newer"):
        EnrollmentStore.open(url, key=TEST_KEY)
    with pytest.raises(StoreError, match="in-memory"):
        EnrollmentStore.open("sqlite:///:memory:", key=TEST_KEY)


def test_a_state_change_from_a_stale_read_is_refused(tmp_path: Path) -> None:
    with EnrollmentStore.open(f"sqlite:///{tmp_path / 'e.db'}", key=TEST_KEY) as s:
        app_id = _seed(s)
        with s.read() as conn:
            stale = db.application(conn, app_id)
        with s.write() as conn:
            db.move(conn, stale, "recalled", CLERK, "recall")
        with pytest.raises(ConcurrentChange), s.write() as conn:
            db.move(conn, stale, "recalled", CLERK, "recall")
        with s.read() as conn:
            assert db.application(conn, app_id).state == "recalled"
            log = db.audit_rows(conn, app_id)
        assert [(r["from_state"], r["to_state"], r["actor"], r["role"]) for r in log] == [
            ("imported", "recalled", "clerk-1", "caseworker")
        ]

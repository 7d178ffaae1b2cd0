"""Read-only views of the card round: one file, one household, and the offices' daily reports.

Plain functions over :class:`~enrollment.store.EnrollmentStore` returning dicts of Python values
(dates as ``datetime.date``, instants UTC); the gRPC layer (:mod:`enrollment.service`) renders them
with both calendars. Nothing here changes the store or checks roles: the service authorises.

Days of events (a card issued, a file submitted) are the offices' local days: Iran Standard Time,
UTC+03:30 all year (daylight saving time was abolished in 2022).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import sqlalchemy as sa

from enrollment import store as db
from enrollment.calendar import CARD_FEE_RIALS
from enrollment.errors import InvalidInput
from enrollment.store import EnrollmentStore, utc
from enrollment.workflow import NEXT_STEP, MemberRecord

__all__ = [
    "OFFICE_TZ",
    "MAX_REPORT_DAYS",
    "local_day",
    "application_view",
    "household_view",
    "daily_report",
    "event_application",
    "adjudication_application",
]

OFFICE_TZ = dt.timezone(dt.timedelta(hours=3, minutes=30), "IRST")
MAX_REPORT_DAYS = 366


def local_day(instant: dt.datetime) -> dt.date:
    """The office's calendar day of a stored instant."""
    return utc(instant).astimezone(OFFICE_TZ).date()


def application_view(store: EnrollmentStore, application_id: int) -> dict[str, Any]:
    """Everything a caseworker sees of one file: state, members with their status in the file,
    the appointment, fees, adjudication items and cards."""
    with store.read() as conn:
        app = db.application(conn, application_id)
        hh = db.row_or_missing(conn, db.households, "household", household_code=app.household_code)
        members = [
            (_member(r), str(r["status"]), str(r["reason"]))
            for r in conn.execute(
                sa.select(
                    db.members, db.application_members.c.status, db.application_members.c.reason
                )
                .join(
                    db.application_members,
                    db.application_members.c.person_id == db.members.c.person_id,
                )
                .where(db.application_members.c.application_id == application_id)
                .order_by(db.members.c.person_id)
            ).mappings()
        ]
        appointment = (
            conn.execute(
                sa.select(db.appointments).where(db.appointments.c.application_id == application_id)
            )
            .mappings()
            .first()
        )
        included = sum(1 for _, status, _ in members if status == "included")
        paid = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(db.payments.c.amount_rials), 0)).where(
                db.payments.c.application_id == application_id
            )
        ).scalar_one()
        adjudications = [
            dict(r)
            for r in conn.execute(
                sa.select(db.adjudications)
                .where(db.adjudications.c.application_id == application_id)
                .order_by(db.adjudications.c.adjudication_id)
            ).mappings()
        ]
        cards = [
            dict(r)
            for r in conn.execute(
                sa.select(db.cards)
                .where(db.cards.c.application_id == application_id)
                .order_by(db.cards.c.card_number)
            ).mappings()
        ]
    return {
        "application_id": app.application_id,
        "state": app.state,
        "next_step": NEXT_STEP[app.state],
        "jalali_year": app.jalali_year,
        "household_code": app.household_code,
        "head_person_id": str(hh.head_person_id),
        "office_id": app.office_id,
        "members": members,
        "appointment": dict(appointment) if appointment is not None else None,
        "due_rials": included * CARD_FEE_RIALS,
        "paid_rials": int(paid),
        "adjudications": adjudications,
        "cards": cards,
    }


def household_view(store: EnrollmentStore, household_code: str) -> dict[str, Any]:
    """A household as imported (active members) and its files in every round."""
    with store.read() as conn:
        hh = db.row_or_missing(conn, db.households, "household", household_code=household_code)
        members = [
            _member(r)
            for r in conn.execute(
                sa.select(db.members)
                .where(
                    db.members.c.household_code == household_code,
                    db.members.c.active.is_(True),
                )
                .order_by(db.members.c.person_id)
            ).mappings()
        ]
        apps = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    db.applications.c.application_id,
                    db.applications.c.jalali_year,
                    db.applications.c.state,
                )
                .where(db.applications.c.household_code == household_code)
                .order_by(db.applications.c.jalali_year)
            ).mappings()
        ]
    return {
        "household_code": str(hh.household_code),
        "head_person_id": str(hh.head_person_id),
        "phone": str(hh.phone),
        "office_id": str(hh.office_id),
        "members": members,
        "applications": apps,
    }


def daily_report(
    store: EnrollmentStore, first: dt.date, last: dt.date, office_id: str | None = None
) -> dict[str, Any]:
    """Counts per office and day from ``first`` through ``last`` (both inclusive):
    ``appointments`` booked for that day, ``cards_issued`` that day (local time), and the files
    waiting in the ministry inbox now (``ministry_waiting``), by the day each arrived there.
    Each list holds ``(office_id, day, count)`` sorted by day, then office."""
    if last < first:
        raise InvalidInput(f"a report runs forward in time; {last} is before {first}")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
    # Instants are stored UTC: widen the window by a day each side, then keep local days.
    lo = dt.datetime.combine(first - dt.timedelta(days=1), dt.time(), dt.UTC)
    hi = dt.datetime.combine(last + dt.timedelta(days=2), dt.time(), dt.UTC)
    with store.read() as conn:
        q = sa.select(db.appointments.c.office_id, db.appointments.c.day).where(
            db.appointments.c.day.between(first, last)
        )
        if office_id:
            q = q.where(db.appointments.c.office_id == office_id)
        appointments = Counter((str(o), d) for o, d in conn.execute(q))
        q = (
            sa.select(db.applications.c.office_id, db.cards.c.issued_at)
            .join(db.applications, db.applications.c.application_id == db.cards.c.application_id)
            .where(db.cards.c.issued_at >= lo, db.cards.c.issued_at < hi)
        )
        if office_id:
            q = q.where(db.applications.c.office_id == office_id)
        issued = Counter(
            (str(o), day) for o, at in conn.execute(q) if first <= (day := local_day(at)) <= last
        )
        q = sa.select(db.applications.c.office_id, db.applications.c.updated_at).where(
            db.applications.c.state == "submitted"
        )
        if office_id:
            q = q.where(db.applications.c.office_id == office_id)
        waiting = Counter((str(o), local_day(at)) for o, at in conn.execute(q))
    return {
        "first_day": first,
        "last_day": last,
        "appointments": _rows(appointments),
        "cards_issued": _rows(issued),
        "ministry_waiting": sum(waiting.values()),
        "ministry_waiting_by_day": _rows(waiting),
    }


def event_application(store: EnrollmentStore, event_id: int) -> int:
    """The file a vital event belongs to."""
    with store.read() as conn:
        row = db.row_or_missing(conn, db.vital_events, "vital event", event_id=event_id)
    return int(row.application_id)


def adjudication_application(store: EnrollmentStore, adjudication_id: int) -> int:
    """The file an adjudication item belongs to."""
    with store.read() as conn:
        row = db.row_or_missing(
            conn, db.adjudications, "adjudication", adjudication_id=adjudication_id
        )
    return int(row.application_id)


def _rows(counts: Counter[tuple[str, dt.date]]) -> list[tuple[str, dt.date, int]]:
    return [(o, d, n) for (o, d), n in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _member(row: Any) -> MemberRecord:
    return MemberRecord(**{k: row[k] for k in MemberRecord.__dataclass_fields__})

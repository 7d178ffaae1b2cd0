"""The card round as a state machine over the enrollment store and the matching service's API.

States of one household's file in one round, and the operation (and role) that leaves each::

    imported ──recall──▶ recalled ──schedule──▶ scheduled ──record_payment (in full)──▶ paid
    scheduled | paid | event_recorded ──report_vital_event──▶ blocked_by_event
    blocked_by_event ──record_vital_event (unit_officer; the last one)──▶ event_recorded
    paid | event_recorded ──capture (first member)──▶ capturing
    capturing ──capture (last member)──▶ captured | adjudication_pending
    adjudication_pending ──resolve_adjudication (the last item)──▶ captured
    captured | returned ──record_details──▶ details_recorded ──submit──▶ submitted
    submitted ──decide (approver)──▶ approved | returned (rejected: back to the caseworker)
    approved ──issue_cards──▶ cards_issued ──hand_over──▶ delivered

Every operation checks the actor's role, the file's state and its inputs, and refuses a step out of
order with :class:`StepOutOfOrder` naming the missing step; a change and its audit row (who, role,
when, household, from and to state, detail) commit in one transaction, and a state change is
applied only if the file is still at the version the operation read (else
:class:`~enrollment.store.ConcurrentChange`). SMS go to the outbox in the same transaction.

Biometrics go only through the matching service's API (an injected :class:`BiometricService`, e.g.
:class:`matcher.client.MatcherClient` with a ``station`` token): members enrolled before are
verified 1:1 against their last templates; everyone is searched 1:N against the province; every
candidate that is another person, and every failed 1:1, becomes an adjudication item that a
caseworker resolves (``same_person`` / ``different_person``) with a written reason. Nothing is
accepted or rejected automatically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from enrollment import store as db
from enrollment.appointments import Office, Round, Slot, first_free_slot
from enrollment.calendar import CARD_FEE_RIALS, card_validity, to_jalali_numeric
from enrollment.errors import (
    AlreadyDone,
    BiometricServiceError,
    InvalidInput,
    NotEligible,
    NotFound,
    NotPermitted,
    StepOutOfOrder,
)
from enrollment.sms import EVENT_NAMES_FA, normalise_mobile, render
from enrollment.store import Application, EnrollmentStore, now_utc
from matcher.store import Actor

__all__ = [
    "Workflow",
    "MemberRecord",
    "MemberDetails",
    "CaptureSample",
    "CaptureResult",
    "BiometricService",
    "STATES",
    "NEXT_STEP",
    "ROLES",
    "eligibility",
]

ROLES = ("caseworker", "unit_officer", "approver", "admin")
_CASEWORK = frozenset({"caseworker", "admin"})
_UNIT = frozenset({"unit_officer"})
_APPROVE = frozenset({"approver"})
_ADMIN = frozenset({"admin"})

#: What must happen next for a file at each state (the "missing step" of a refusal).
NEXT_STEP: Mapping[str, str] = {
    "imported": "recall (SMS and phone call to the household head)",
    "recalled": "appointment",
    "scheduled": "fees paid",
    "paid": "capture",
    "blocked_by_event": "vital event recorded by the authorised unit of the directorate",
    "event_recorded": "capture",
    "capturing": "capture of every member",
    "adjudication_pending": "adjudication resolved by a caseworker",
    "captured": "details recorded",
    "returned": "details corrected after the ministry's rejection",
    "details_recorded": "submission to the ministry inbox",
    "submitted": "ministry decision",
    "approved": "cards issued",
    "cards_issued": "cards handed over to the household head",
    "delivered": "",
}
STATES = tuple(NEXT_STEP)
_RANK = {
    "imported": 0,
    "recalled": 1,
    "scheduled": 2,
    "paid": 3,
    "blocked_by_event": 3,
    "event_recorded": 3,
    "capturing": 4,
    "adjudication_pending": 4,
    "captured": 5,
    "returned": 5,
    "details_recorded": 6,
    "submitted": 7,
    "approved": 8,
    "cards_issued": 9,
    "delivered": 10,
}
DOCUMENT_KINDS = ("amayesh_card", "travel_permit", "none")
EVENT_KINDS = ("birth", "death", "marriage", "divorce", "member_left", "member_joined")
_JOINING = ("birth", "member_joined")
_LEAVING = ("death", "member_left")
ALL_FINGERS = tuple(range(1, 11))
EYES = ("L", "R")
MAX_PHOTO_BYTES = 4 << 20
MIN_REASON_CHARS = 10
DECISIONS = ("same_person", "different_person")


class BiometricService(Protocol):
    """What the workflow needs of :class:`matcher.client.MatcherClient`."""

    def enroll(
        self, person_id: str, fingers: Any = None, irises: Any = None, labels: Any = None
    ) -> Any: ...

    def update(
        self, person_id: str, fingers: Any = None, irises: Any = None, labels: Any = None
    ) -> Any: ...

    def verify(self, person_id: str, fingers: Any = None, irises: Any = None) -> Any: ...

    def identify(
        self, fingers: Any = None, irises: Any = None, *, max_results: int = 10
    ) -> Any: ...


@dataclass(frozen=True)
class MemberRecord:
    """A household member as imported. ``person_id`` is the id the matching service knows the
    person by; ``enrolled_before``: templates of an earlier round are there to verify against."""

    person_id: str
    given_name: str
    family_name: str
    father_name: str
    sex: str
    relation: str
    document_kind: str
    document_number: str | None = None
    document_expiry: dt.date | None = None
    birth_date: dt.date | None = None
    enrolled_before: bool = False

    def check(self) -> None:
        _text("person id", self.person_id, 64)
        for what in ("given_name", "family_name", "father_name"):
            _text(what.replace("_", " "), getattr(self, what), 100)
        if self.sex not in ("M", "F"):
            raise InvalidInput(f"member {self.person_id}: sex is 'M' or 'F'")
        _text("relation", self.relation, 16)
        if self.document_kind not in DOCUMENT_KINDS:
            raise InvalidInput(
                f"member {self.person_id}: document kind is one of {', '.join(DOCUMENT_KINDS)}"
            )
        if self.document_kind != "none" and (
            not self.document_number or self.document_expiry is None
        ):
            raise InvalidInput(
                f"member {self.person_id}: a {self.document_kind} needs its number and expiry"
            )


@dataclass(frozen=True)
class MemberDetails:
    """Step 6: what is recorded of each member besides biometrics."""

    address: str
    occupation: str
    mobile: str
    landline: str = ""
    workshop_code: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureSample:
    """One member's capture: the household code read at the station, ten fingers (ISO position ->
    what :class:`~matcher.client.MatcherClient` accepts: minutiae record bytes, image bytes or a
    FingerTemplate), both irises ("L"/"R" -> (code, mask) or image bytes) and a live photo.
    A finger that cannot be taken (amputated, bandaged) is listed in ``missing_fingers`` with
    the reason instead."""

    household_code: str
    fingers: Mapping[int, Any]
    irises: Mapping[str, Any]
    photo: bytes
    missing_fingers: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureResult:
    person_id: str
    verification: str  # match / no_match / not_found / none (not enrolled before)
    biometric_write: str  # enroll / update / none
    adjudications: tuple[int, ...]
    state: str


def eligibility(member: MemberRecord, on: dt.date) -> str | None:
    """Why ``member`` may not take part in a round opening ``on``, or None if they may: a valid
    (unexpired on that day) Amayesh card or travel permit is required."""
    if member.document_kind == "none":
        return "holds neither an Amayesh card nor a travel permit"
    kind = "Amayesh card" if member.document_kind == "amayesh_card" else "travel permit"
    if member.document_expiry is None or member.document_expiry < on:
        return f"the {kind} {member.document_number} expired on {member.document_expiry}"
    return None


class Workflow:
    """The card round. ``store``: where files live; ``matcher``: the matching service's client;
    ``today``: the office's local date (tests pin it). Safe to share between threads."""

    def __init__(
        self,
        store: EnrollmentStore,
        matcher: BiometricService,
        today: Callable[[], dt.date] = dt.date.today,
        identify_max_results: int = 10,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self.today = today
        self.identify_max_results = identify_max_results

    # --- set-up (admin) -------------------------------------------------------------------

    def add_office(self, actor: Actor, office: Office) -> None:
        _role(actor, _ADMIN, "add an office")
        with self.store.write() as conn:
            try:
                conn.execute(db.offices.insert().values(**asdict(office)))
            except sa.exc.IntegrityError:
                raise AlreadyDone(f"office {office.office_id} exists already") from None
            db.append_audit(conn, actor, "add_office", None, None, None, None, office.office_id)

    def open_round(self, actor: Actor, round_: Round) -> None:
        _role(actor, _ADMIN, "open a round")
        with self.store.write() as conn:
            try:
                conn.execute(db.rounds.insert().values(**asdict(round_), created_at=now_utc()))
            except sa.exc.IntegrityError:
                raise AlreadyDone(f"the round of {round_.jalali_year} exists already") from None
            db.append_audit(
                conn,
                actor,
                "open_round",
                None,
                None,
                None,
                None,
                f"{round_.jalali_year}: {round_.starts_on}..{round_.ends_on}",
            )

    def import_household(
        self,
        actor: Actor,
        household_code: str,
        head_person_id: str,
        phone: str,
        office_id: str,
        members: Sequence[MemberRecord],
    ) -> None:
        """Register a household and its members (from the directorate's records)."""
        _role(actor, _CASEWORK, "import a household")
        _text("household code", household_code, 32)
        mobile = normalise_mobile(phone)
        for m in members:
            m.check()
        ids = [m.person_id for m in members]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"household {household_code}: a person id is repeated")
        if head_person_id not in ids:
            raise InvalidInput(
                f"household {household_code}: the head {head_person_id} is not among its members"
            )
        now = now_utc()
        with self.store.write() as conn:
            db.row_or_missing(conn, db.offices, "office", office_id=office_id)
            try:
                conn.execute(
                    db.households.insert().values(
                        household_code=household_code,
                        head_person_id=head_person_id,
                        phone=mobile,
                        office_id=office_id,
                        created_at=now,
                    )
                )
                conn.execute(
                    db.members.insert(),
                    [_member_row(m, household_code, now) for m in members],
                )
            except sa.exc.IntegrityError:
                raise AlreadyDone(
                    f"household {household_code} or one of its person ids exists already"
                ) from None
            db.append_audit(
                conn,
                actor,
                "import_household",
                household_code,
                None,
                None,
                None,
                f"{len(members)} members",
            )

    def open_application(self, actor: Actor, jalali_year: int, household_code: str) -> int:
        """Put the household into the round (state ``imported``); return the application id.
        Each member is checked for eligibility on the round's first day: members without a
        valid card or permit are refused with the reason (kept in the file); a household whose
        head, or all of whose members, are not eligible is refused with :class:`NotEligible`."""
        _role(actor, _CASEWORK, "open an application")
        now = now_utc()
        with self.store.write() as conn:
            rnd = db.row_or_missing(conn, db.rounds, "round", jalali_year=jalali_year)
            hh = db.row_or_missing(conn, db.households, "household", household_code=household_code)
            people = _household_members(conn, household_code)
            verdicts = {m.person_id: eligibility(m, rnd.starts_on) for m in people}
            refused = {p: why for p, why in verdicts.items() if why is not None}
            if hh.head_person_id in refused or len(refused) == len(people):
                reasons = "; ".join(f"{p}: {why}" for p, why in sorted(refused.items()))
                raise NotEligible(f"household {household_code} is not eligible: {reasons}")
            try:
                app_id = int(
                    conn.execute(
                        db.applications.insert()
                        .values(
                            jalali_year=jalali_year,
                            household_code=household_code,
                            office_id=hh.office_id,
                            state="imported",
                            version=1,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(db.applications.c.application_id)
                    ).scalar_one()
                )
            except sa.exc.IntegrityError:
                raise AlreadyDone(
                    f"household {household_code} is in the round of {jalali_year} already"
                ) from None
            conn.execute(
                db.application_members.insert(),
                [
                    {
                        "application_id": app_id,
                        "person_id": p,
                        "status": "refused" if why else "included",
                        "reason": why or "valid document",
                    }
                    for p, why in verdicts.items()
                ],
            )
            detail = f"{len(people) - len(refused)} included" + (
                f"; refused {', '.join(sorted(refused))}" if refused else ""
            )
            db.append_audit(
                conn,
                actor,
                "open_application",
                household_code,
                app_id,
                None,
                "imported",
                detail,
                now,
            )
        return app_id

    # --- 1. recall ------------------------------------------------------------------------

    def recall(self, actor: Actor, application_id: int, call_note: str) -> None:
        """Call the head by SMS (queued) and by the office's phone (``call_note``: who answered,
        what was said); both are logged. imported -> recalled."""
        _role(actor, _CASEWORK, "recall a household")
        _text("call note", call_note, 2000)
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"imported"}, "recall the household")
            hh, office = _household_and_office(conn, app)
            body = render(
                "recall",
                household=app.household_code,
                year=app.jalali_year,
                office=office.name,
                office_phone=office.phone,
            )
            now = now_utc()
            message_id = db.queue_sms(conn, app.application_id, hh.phone, "recall", body, now)
            conn.execute(
                db.recalls.insert(),
                [
                    _recall_row(app, "sms", actor, now, f"queued to {hh.phone}", message_id),
                    _recall_row(app, "phone", actor, now, call_note, None),
                ],
            )
            db.move(conn, app, "recalled", actor, "recall", f"sms #{message_id}; phone logged")

    # --- 2. appointment -------------------------------------------------------------------

    def schedule(
        self,
        actor: Actor,
        application_id: int,
        office_id: str | None = None,
        on_or_after: dt.date | None = None,
        exact_day: bool = False,
    ) -> Slot:
        """Give the household the first free slot (at its office unless another is named),
        within the round, and text the head the date, the legal fees and how to pay them.
        recalled -> scheduled; :class:`CapacityExceeded` when nothing is free."""
        _role(actor, _CASEWORK, "schedule an appointment")
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"recalled"}, "schedule an appointment")
            hh = db.row_or_missing(
                conn, db.households, "household", household_code=app.household_code
            )
            office = _office(conn, office_id or app.office_id)
            rnd = _round(conn, app.jalali_year)
            booked: dict[dt.date, set[int]] = {}
            for day, slot in conn.execute(
                sa.select(db.appointments.c.day, db.appointments.c.slot).where(
                    db.appointments.c.office_id == office.office_id,
                    db.appointments.c.day.between(rnd.starts_on, rnd.ends_on),
                )
            ):
                booked.setdefault(day, set()).add(int(slot))
            slot = first_free_slot(office, rnd, booked, on_or_after, exact_day)
            conn.execute(
                db.appointments.insert().values(
                    application_id=app.application_id,
                    office_id=office.office_id,
                    day=slot.day,
                    slot=slot.slot,
                    starts_min=slot.starts_min,
                    created_at=now_utc(),
                    by_actor=actor.name,
                )
            )
            cards = len(_included(conn, app.application_id))
            body = render(
                "appointment",
                household=app.household_code,
                date=slot.day,
                time=slot.time_text,
                office=office.name,
                cards=cards,
                fee=CARD_FEE_RIALS,
                total=cards * CARD_FEE_RIALS,
                how_to_pay=office.payment_instructions,
            )
            message_id = db.queue_sms(conn, app.application_id, hh.phone, "appointment", body)
            if office.office_id != app.office_id:
                conn.execute(
                    db.applications.update()
                    .where(db.applications.c.application_id == app.application_id)
                    .values(office_id=office.office_id)
                )
            db.move(
                conn,
                app,
                "scheduled",
                actor,
                "schedule",
                f"{office.office_id} {slot.day} {slot.time_text}; sms #{message_id}",
            )
        return slot

    # --- 3. fees and documents ------------------------------------------------------------

    def fees_due(self, application_id: int) -> tuple[int, int]:
        """``(due, paid)`` in rials: one card fee per member in the file, and receipts so far."""
        with self.store.read() as conn:
            return _fees(conn, application_id)

    def record_payment(
        self,
        actor: Actor,
        application_id: int,
        receipt_number: str,
        amount_rials: int,
        paid_on: dt.date | None = None,
    ) -> tuple[int, int]:
        """Keep a bank receipt; when the fees are paid in full a scheduled file becomes ``paid``.
        Refuses a receipt seen before and an amount beyond what is due. Returns (due, paid)."""
        _role(actor, _CASEWORK, "record a payment")
        _text("receipt number", receipt_number, 64)
        if isinstance(amount_rials, bool) or not isinstance(amount_rials, int):
            raise InvalidInput(f"money is integer rials, got {amount_rials!r}")
        if amount_rials <= 0:
            raise InvalidInput("a payment is a positive number of rials")
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(
                app, {"scheduled", "paid", "blocked_by_event", "event_recorded"}, "record a payment"
            )
            due, paid = _fees(conn, app.application_id)
            if paid + amount_rials > due:
                raise InvalidInput(
                    f"{amount_rials} rials would exceed the fees: {due} due, {paid} paid"
                )
            try:
                conn.execute(
                    db.payments.insert().values(
                        application_id=app.application_id,
                        receipt_number=receipt_number,
                        amount_rials=amount_rials,
                        paid_on=paid_on or self.today(),
                        recorded_by=actor.name,
                        recorded_at=now_utc(),
                    )
                )
            except sa.exc.IntegrityError:
                raise AlreadyDone(f"receipt {receipt_number} is recorded already") from None
            paid += amount_rials
            detail = f"receipt {receipt_number}: {amount_rials} rials ({paid} of {due})"
            to = "paid" if app.state == "scheduled" and paid == due else app.state
            db.move(conn, app, to, actor, "record_payment", detail)
        return due, paid

    def collect_documents(self, actor: Actor, application_id: int) -> list[dict[str, Any]]:
        """Collect every document the household's members hold (old cards, permits, expired or
        about to be replaced) and list them."""
        _role(actor, _CASEWORK, "collect documents")
        now = now_utc()
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(
                app,
                {"scheduled", "paid", "blocked_by_event", "event_recorded"},
                "collect documents",
            )
            if _documents_collected(conn, app.application_id):
                raise AlreadyDone(f"application {application_id}: documents are collected already")
            held = [
                m for m in _household_members(conn, app.household_code) if m.document_kind != "none"
            ]
            rows = [
                {
                    "application_id": app.application_id,
                    "person_id": m.person_id,
                    "kind": m.document_kind,
                    "number": m.document_number,
                    "expiry": m.document_expiry,
                    "collected_by": actor.name,
                    "collected_at": now,
                }
                for m in held
            ]
            if rows:
                conn.execute(db.documents.insert(), rows)
            marker = f"{len(rows)} document(s): " + ", ".join(
                f"{r['kind']} {r['number']}" for r in rows
            )
            db.move(conn, app, app.state, actor, "collect_documents", marker)
        return [{k: r[k] for k in ("person_id", "kind", "number", "expiry")} for r in rows]

    # --- 4. household changes -------------------------------------------------------------

    def report_vital_event(
        self,
        actor: Actor,
        application_id: int,
        kind: str,
        note: str,
        person_id: str | None = None,
        new_member: MemberRecord | None = None,
    ) -> int:
        """A birth, death, marriage, divorce, or a member leaving or joining, seen at the office:
        the head is sent to the authorised unit (SMS) and capture is blocked until a unit officer
        records it. Returns the event id."""
        _role(actor, _CASEWORK, "report a vital event")
        if kind not in EVENT_KINDS:
            raise InvalidInput(f"a vital event is one of {', '.join(EVENT_KINDS)}, not {kind!r}")
        _text("note", note, 2000)
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(
                app,
                {"scheduled", "paid", "blocked_by_event", "event_recorded"},
                "report a vital event",
            )
            hh, office = _household_and_office(conn, app)
            if kind in _JOINING:
                if new_member is None or person_id is not None:
                    raise InvalidInput(
                        f"a {kind} names the new member (new_member), not a person id"
                    )
                new_member.check()
                if (
                    conn.execute(
                        sa.select(db.members.c.person_id).where(
                            db.members.c.person_id == new_member.person_id
                        )
                    ).first()
                    is not None
                ):
                    raise AlreadyDone(f"person {new_member.person_id} exists already")
            else:
                if person_id is None or new_member is not None:
                    raise InvalidInput(f"a {kind} names the member concerned (person_id)")
                _file_member(conn, app.application_id, person_id)
                if kind in _LEAVING and person_id == hh.head_person_id:
                    raise InvalidInput(
                        f"the head {person_id} cannot leave the file; the directorate names a "
                        "new head first"
                    )
            event_id = int(
                conn.execute(
                    db.vital_events.insert()
                    .values(
                        application_id=app.application_id,
                        kind=kind,
                        person_id=person_id,
                        new_member=None
                        if new_member is None
                        else db.to_json(_jsonable(asdict(new_member))),
                        note=note,
                        reported_by=actor.name,
                        reported_at=now_utc(),
                    )
                    .returning(db.vital_events.c.event_id)
                ).scalar_one()
            )
            body = render(
                "event_referral",
                household=app.household_code,
                event=EVENT_NAMES_FA[kind],
                office=office.name,
            )
            db.queue_sms(conn, app.application_id, hh.phone, "event_referral", body)
            resume = app.resume_state if app.state == "blocked_by_event" else app.state
            db.move(
                conn,
                app,
                "blocked_by_event",
                actor,
                "report_vital_event",
                f"event {event_id}: {kind}",
                resume_state=resume,
            )
        return event_id

    def record_vital_event(self, actor: Actor, event_id: int, note: str) -> str:
        """The authorised unit records the change (a unit officer only): a birth or a joining
        member enters the household and the file (one more card fee), a death or a leaving
        member leaves the file. When no event is left, the file is ``event_recorded`` and the
        household returns to the office. Returns the file's state."""
        _role(actor, _UNIT, "record a vital event")
        _text("note", note, 2000)
        now = now_utc()
        with self.store.write() as conn:
            event = db.row_or_missing(conn, db.vital_events, "vital event", event_id=event_id)
            if event.recorded_at is not None:
                raise AlreadyDone(f"vital event {event_id} is recorded already")
            app = db.application(conn, int(event.application_id))
            _require(app, {"blocked_by_event"}, "record a vital event")
            if event.kind in _JOINING:
                m = MemberRecord(**_member_fields(db.json_mapping(event.new_member)))
                conn.execute(db.members.insert().values(**_member_row(m, app.household_code, now)))
                conn.execute(
                    db.application_members.insert().values(
                        application_id=app.application_id,
                        person_id=m.person_id,
                        status="included",
                        reason=f"{event.kind} recorded by the authorised unit",
                    )
                )
            elif event.kind in _LEAVING:
                conn.execute(
                    db.members.update()
                    .where(db.members.c.person_id == event.person_id)
                    .values(active=False)
                )
                conn.execute(
                    db.application_members.update()
                    .where(
                        db.application_members.c.application_id == app.application_id,
                        db.application_members.c.person_id == event.person_id,
                    )
                    .values(status="removed", reason=f"{event.kind} recorded by the unit")
                )
            conn.execute(
                db.vital_events.update()
                .where(db.vital_events.c.event_id == event_id)
                .values(recorded_by=actor.name, recorded_at=now, record_note=note)
            )
            pending = conn.execute(
                sa.select(sa.func.count()).where(
                    db.vital_events.c.application_id == app.application_id,
                    db.vital_events.c.recorded_at.is_(None),
                )
            ).scalar_one()
            to = "blocked_by_event" if pending else "event_recorded"
            app = db.move(
                conn,
                app,
                to,
                actor,
                "record_vital_event",
                f"event {event_id}: {event.kind}; {pending} still pending",
                resume_state=app.resume_state if pending else None,
            )
        return app.state

    # --- 5. capture -----------------------------------------------------------------------

    def capture(
        self, actor: Actor, application_id: int, person_id: str, sample: CaptureSample
    ) -> CaptureResult:
        """Capture one member and check their identity through the matching service.

        Preconditions, each refused with :class:`StepOutOfOrder` naming it: fees paid in full,
        documents collected, no vital event waiting for the unit. Then: 1:1 against the last
        templates for a member enrolled before; 1:N against the province for everyone; any
        candidate that is another person, and a failed 1:1, becomes an adjudication item. The
        new templates are enrolled (first capture) or replace the last ones (1:1 matched); after
        a failed 1:1 the stored templates are kept until an adjudicator has looked.
        """
        _role(actor, _CASEWORK, "capture")
        _check_sample(sample)
        capturable = {"paid", "event_recorded", "capturing", "adjudication_pending"}
        with self.store.read() as conn:
            app = db.application(conn, application_id)
            self._capture_preconditions(conn, app, capturable)
            if sample.household_code != app.household_code:
                raise InvalidInput(
                    f"the household code read at the station ({sample.household_code}) is not "
                    f"this file's ({app.household_code})"
                )
            member = _file_member(conn, app.application_id, person_id)
            if (
                conn.execute(
                    sa.select(db.captures.c.person_id).where(
                        db.captures.c.application_id == app.application_id,
                        db.captures.c.person_id == person_id,
                    )
                ).first()
                is not None
            ):
                raise AlreadyDone(f"{person_id} is captured already in this file")
        fingers = dict(sample.fingers)
        irises = dict(sample.irises)
        labels = {"household": app.household_code, "round": str(app.jalali_year)}

        verification = "none"
        scores: dict[str, float] = {}
        if member.enrolled_before:
            verification, scores = self._verify(person_id, fingers, irises)
        candidates = self._call(
            "identify",
            self.matcher.identify,
            fingers=fingers,
            irises=irises,
            max_results=self.identify_max_results,
        )
        others = [c for c in candidates if c.person_id != person_id]
        if verification in ("none", "not_found"):
            write = self._enroll(person_id, fingers, irises, labels)
        elif verification == "match":
            self._call(
                "update",
                self.matcher.update,
                person_id,
                fingers=fingers,
                irises=irises,
                labels=labels,
            )
            write = "update"
        else:
            write = "none"

        now = now_utc()
        with self.store.write() as conn:
            fresh = db.application(conn, application_id)
            self._capture_preconditions(conn, fresh, capturable)
            try:
                conn.execute(
                    db.captures.insert().values(
                        application_id=application_id,
                        person_id=person_id,
                        captured_by=actor.name,
                        captured_at=now,
                        verification=verification,
                        biometric_write=write,
                        scores=db.to_json(scores),
                        fingers=",".join(str(p) for p in sorted(fingers)),
                        missing_fingers=db.to_json(
                            {str(k): v for k, v in sample.missing_fingers.items()}
                        ),
                        photo=self.store.seal_photo(application_id, person_id, bytes(sample.photo)),
                        photo_sha256=hashlib.sha256(sample.photo).hexdigest(),
                    )
                )
            except sa.exc.IntegrityError:
                raise AlreadyDone(f"{person_id} is captured already in this file") from None
            items = []
            if verification == "no_match":
                items.append(
                    _adjudication(conn, application_id, person_id, person_id, "verify", scores, now)
                )
            for c in others:
                items.append(
                    _adjudication(
                        conn,
                        application_id,
                        person_id,
                        c.person_id,
                        "identify",
                        dict(c.scores),
                        now,
                    )
                )
            if write != "none":
                conn.execute(
                    db.members.update()
                    .where(db.members.c.person_id == person_id)
                    .values(enrolled_before=True)
                )
            to = _after_capture(conn, application_id)
            detail = (
                f"{person_id}: 1:1 {verification}, {len(others)} other candidate(s), "
                f"templates {write}"
            )
            fresh = db.move(conn, fresh, to, actor, "capture", detail)
        return CaptureResult(person_id, verification, write, tuple(items), fresh.state)

    def resolve_adjudication(
        self, actor: Actor, adjudication_id: int, decision: str, reason: str
    ) -> str:
        """A caseworker's decision on one item, ``same_person`` or ``different_person``, with a
        written reason. When the last item of a fully captured file is resolved the file is
        ``captured``. Returns the file's state."""
        _role(actor, _CASEWORK, "resolve an adjudication")
        if decision not in DECISIONS:
            raise InvalidInput(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_CHARS:
            raise InvalidInput(
                f"an adjudication needs a written reason of at least {MIN_REASON_CHARS} characters"
            )
        with self.store.write() as conn:
            item = db.row_or_missing(
                conn, db.adjudications, "adjudication", adjudication_id=adjudication_id
            )
            if item.state != "pending":
                raise AlreadyDone(f"adjudication {adjudication_id} is resolved already")
            app = db.application(conn, int(item.application_id))
            _require(app, {"capturing", "adjudication_pending"}, "resolve an adjudication")
            conn.execute(
                db.adjudications.update()
                .where(db.adjudications.c.adjudication_id == adjudication_id)
                .values(
                    state=decision,
                    reason=reason.strip(),
                    resolved_by=actor.name,
                    resolved_at=now_utc(),
                )
            )
            to = _after_capture(conn, app.application_id)
            app = db.move(
                conn,
                app,
                to,
                actor,
                "resolve_adjudication",
                f"#{adjudication_id} {item.person_id} vs {item.candidate_person_id}: "
                f"{decision}: {reason.strip()}",
            )
        return app.state

    # --- 6. details -----------------------------------------------------------------------

    def record_details(
        self, actor: Actor, application_id: int, details: Mapping[str, MemberDetails]
    ) -> None:
        """Address, occupation, phones, workshop code and other fields of every member in the
        file. captured | returned -> details_recorded (a second call replaces the first)."""
        _role(actor, _CASEWORK, "record details")
        now = now_utc()
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"captured", "returned"}, "record details")
            wanted = set(_included(conn, app.application_id))
            if set(details) != wanted:
                missing = sorted(wanted - set(details))
                extra = sorted(set(details) - wanted)
                raise InvalidInput(
                    "details are recorded for exactly the members in the file"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; not in the file {', '.join(extra)}" if extra else "")
                )
            rows = []
            for pid, d in sorted(details.items()):
                _text(f"{pid} address", d.address, 1000)
                _text(f"{pid} occupation", d.occupation, 100)
                rows.append(
                    {
                        "application_id": app.application_id,
                        "person_id": pid,
                        "address": d.address,
                        "occupation": d.occupation,
                        "mobile": normalise_mobile(d.mobile),
                        "landline": d.landline,
                        "workshop_code": d.workshop_code,
                        "extra": db.to_json(dict(d.extra)),
                        "recorded_by": actor.name,
                        "recorded_at": now,
                    }
                )
            conn.execute(
                db.details.delete().where(db.details.c.application_id == app.application_id)
            )
            conn.execute(db.details.insert(), rows)
            db.move(
                conn, app, "details_recorded", actor, "record_details", f"{len(rows)} member(s)"
            )

    # --- 7. ministry inbox ----------------------------------------------------------------

    def submit(self, actor: Actor, application_id: int) -> None:
        """Send the file to the Ministry of Interior's inbox. details_recorded -> submitted."""
        _role(actor, _CASEWORK, "submit a file")
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"details_recorded"}, "submit the file to the ministry")
            db.move(conn, app, "submitted", actor, "submit", "to the ministry inbox")

    def ministry_inbox(self, actor: Actor) -> list[dict[str, Any]]:
        """Files waiting for a ministry decision, oldest first."""
        _role(actor, _APPROVE | _ADMIN, "read the ministry inbox")
        return self._files_in("submitted")

    def caseworker_inbox(self, actor: Actor) -> list[dict[str, Any]]:
        """Files the ministry returned, with the rejection reason, oldest first."""
        _role(actor, _CASEWORK, "read the caseworker inbox")
        files = self._files_in("returned")
        with self.store.read() as conn:
            for f in files:
                f["rejection"] = (
                    conn.execute(
                        sa.select(db.decisions.c.reason)
                        .where(
                            db.decisions.c.application_id == f["application_id"],
                            db.decisions.c.decision == "rejected",
                        )
                        .order_by(db.decisions.c.decision_id.desc())
                    )
                    .scalars()
                    .first()
                )
        return files

    def decide(
        self,
        actor: Actor,
        application_id: int,
        approve: bool,
        reason: str = "",
        excluded: Mapping[str, str] | None = None,
    ) -> None:
        """The approver's decision. Approving may exclude members, each with a reason (they get
        no card); rejecting needs a reason and returns the file to the caseworker.
        submitted -> approved | returned."""
        _role(actor, _APPROVE, "decide on a file")
        excluded = dict(excluded or {})
        if not approve and (not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_CHARS):
            raise InvalidInput(
                f"a rejection needs a reason of at least {MIN_REASON_CHARS} characters"
            )
        if not approve and excluded:
            raise InvalidInput("members are excluded only from an approved file")
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"submitted"}, "decide on the file")
            included = set(_included(conn, app.application_id))
            unknown = sorted(set(excluded) - included)
            if unknown:
                raise InvalidInput(f"not in the file: {', '.join(unknown)}")
            if any(not isinstance(why, str) or not why.strip() for why in excluded.values()):
                raise InvalidInput("each excluded member needs a reason")
            if approve and included and set(excluded) == included:
                raise InvalidInput("excluding every member is a rejection; reject with a reason")
            decision = "approved" if approve else "rejected"
            conn.execute(
                db.decisions.insert().values(
                    application_id=app.application_id,
                    decision=decision,
                    reason=reason.strip(),
                    excluded=db.to_json(excluded),
                    by_actor=actor.name,
                    at=now_utc(),
                )
            )
            db.move(
                conn,
                app,
                "approved" if approve else "returned",
                actor,
                decision,
                reason.strip() + (f"; excluded {', '.join(sorted(excluded))}" if excluded else ""),
            )

    # --- 8. cards -------------------------------------------------------------------------

    def issue_cards(self, actor: Actor, application_id: int) -> list[dict[str, Any]]:
        """New card numbers for the approved members, valid from Khordad 31 of the round's year
        through Khordad 30 of the next (shown in Jalali). approved -> cards_issued."""
        _role(actor, _CASEWORK, "issue cards")
        now = now_utc()
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"approved"}, "issue cards")
            hh = db.row_or_missing(
                conn, db.households, "household", household_code=app.household_code
            )
            excluded = db.json_mapping(
                conn.execute(
                    sa.select(db.decisions.c.excluded)
                    .where(
                        db.decisions.c.application_id == app.application_id,
                        db.decisions.c.decision == "approved",
                    )
                    .order_by(db.decisions.c.decision_id.desc())
                )
                .scalars()
                .first()
                or "{}"
            )
            people = [p for p in sorted(_included(conn, app.application_id)) if p not in excluded]
            first, last = card_validity(app.jalali_year)
            rows = [
                {
                    "card_number": f"{app.jalali_year}{app.application_id:07d}{i + 1:02d}",
                    "application_id": app.application_id,
                    "person_id": pid,
                    "valid_from": first,
                    "valid_to": last,
                    "issued_by": actor.name,
                    "issued_at": now,
                }
                for i, pid in enumerate(people)
            ]
            conn.execute(db.cards.insert(), rows)
            body = render(
                "cards_ready",
                household=app.household_code,
                cards=len(rows),
                valid_from=first,
                valid_to=last,
            )
            db.queue_sms(conn, app.application_id, hh.phone, "cards_ready", body)
            db.move(
                conn,
                app,
                "cards_issued",
                actor,
                "issue_cards",
                f"{len(rows)} card(s) valid {first}..{last}",
            )
        return [_card_view(r) for r in rows]

    def hand_over(self, actor: Actor, application_id: int, received_by: str) -> None:
        """Hand the cards to the household head (``received_by`` must be the head); who handed
        them over and when is recorded. cards_issued -> delivered."""
        _role(actor, _CASEWORK, "hand over cards")
        now = now_utc()
        with self.store.write() as conn:
            app = db.application(conn, application_id)
            _require(app, {"cards_issued"}, "hand over the cards")
            hh = db.row_or_missing(
                conn, db.households, "household", household_code=app.household_code
            )
            if received_by != hh.head_person_id:
                raise InvalidInput(
                    f"cards are handed to the household head ({hh.head_person_id}), "
                    f"not to {received_by}"
                )
            conn.execute(
                db.cards.update()
                .where(db.cards.c.application_id == app.application_id)
                .values(handed_over_to=received_by, handed_over_by=actor.name, handed_over_at=now)
            )
            db.move(conn, app, "delivered", actor, "hand_over", f"to {received_by}")

    # --- reading --------------------------------------------------------------------------

    def state(self, application_id: int) -> str:
        with self.store.read() as conn:
            return db.application(conn, application_id).state

    def cards(self, application_id: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = (
                conn.execute(
                    sa.select(db.cards)
                    .where(db.cards.c.application_id == application_id)
                    .order_by(db.cards.c.card_number)
                )
                .mappings()
                .all()
            )
        return [_card_view(dict(r)) for r in rows]

    def adjudications(self, application_id: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = (
                conn.execute(
                    sa.select(db.adjudications)
                    .where(db.adjudications.c.application_id == application_id)
                    .order_by(db.adjudications.c.adjudication_id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def members(self, application_id: int) -> dict[str, tuple[str, str]]:
        """person id -> (status in the file, reason)."""
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    db.application_members.c.person_id,
                    db.application_members.c.status,
                    db.application_members.c.reason,
                ).where(db.application_members.c.application_id == application_id)
            ).all()
        return {r.person_id: (r.status, r.reason) for r in rows}

    def audit_log(self, application_id: int | None = None) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return db.audit_rows(conn, application_id)

    # --- internals ------------------------------------------------------------------------

    def _files_in(self, state: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = (
                conn.execute(
                    sa.select(
                        db.applications.c.application_id,
                        db.applications.c.household_code,
                        db.applications.c.jalali_year,
                        db.applications.c.office_id,
                        db.applications.c.updated_at,
                    )
                    .where(db.applications.c.state == state)
                    .order_by(db.applications.c.updated_at, db.applications.c.application_id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def _capture_preconditions(
        self, conn: Connection, app: Application, capturable: Collection[str]
    ) -> None:
        _require(app, capturable, "capture")
        due, paid = _fees(conn, app.application_id)
        if paid < due:
            raise StepOutOfOrder(
                f"cannot capture: fees paid first ({paid} of {due} rials received)", "fees paid"
            )
        if not _documents_collected(conn, app.application_id):
            raise StepOutOfOrder("cannot capture: documents collected first", "documents collected")

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise _service_error(what, exc) from exc

    def _verify(
        self, person_id: str, fingers: Mapping[int, Any], irises: Mapping[str, Any]
    ) -> tuple[str, dict[str, float]]:
        try:
            d = self.matcher.verify(person_id, fingers=fingers, irises=irises)
        except grpc.RpcError as exc:
            if _status(exc) == "NOT_FOUND":
                return "not_found", {}
            raise _service_error("verify", exc) from exc
        return ("match" if d.match else "no_match"), dict(d.scores)

    def _enroll(
        self,
        person_id: str,
        fingers: Mapping[int, Any],
        irises: Mapping[str, Any],
        labels: Mapping[str, str],
    ) -> str:
        try:
            self.matcher.enroll(person_id, fingers=fingers, irises=irises, labels=labels)
            return "enroll"
        except grpc.RpcError as exc:
            if _status(exc) != "ALREADY_EXISTS":
                raise _service_error("enroll", exc) from exc
        # Enrolled by an earlier attempt whose local commit did not happen: the same person
        # only if these samples match what is stored; otherwise nothing is overwritten.
        verification, _ = self._verify(person_id, fingers, irises)
        if verification != "match":
            raise BiometricServiceError(
                f"person {person_id} is enrolled in the matching service with other biometrics; "
                "refusing to overwrite",
                "ALREADY_EXISTS",
            )
        self._call(
            "update", self.matcher.update, person_id, fingers=fingers, irises=irises, labels=labels
        )
        return "update"


# --- module helpers ---------------------------------------------------------------------------


def _role(actor: Actor, roles: frozenset[str], doing: str) -> None:
    if not isinstance(actor, Actor):
        raise InvalidInput(f"actor must be an Actor, got {type(actor).__name__}")
    if actor.role not in roles:
        raise NotPermitted(
            f"role {actor.role!r} may not {doing} (allowed: {', '.join(sorted(roles))})"
        )


def _require(app: Application, allowed: Collection[str], doing: str) -> None:
    """Refuse ``doing`` unless the file is in one of ``allowed`` states, naming what is missing."""
    if app.state in allowed:
        return
    if _RANK[app.state] > max(_RANK[s] for s in allowed):
        raise StepOutOfOrder(
            f"cannot {doing}: application {app.application_id} is already at "
            f"'{app.state}', past that step",
            "none (already past this step)",
        )
    missing = NEXT_STEP[app.state]
    raise StepOutOfOrder(
        f"cannot {doing}: {missing} first (application {app.application_id} is at '{app.state}')",
        missing,
    )


def _text(what: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        raise InvalidInput(f"{what} must be non-empty text of at most {max_chars} characters")
    return value


def _status(exc: grpc.RpcError) -> str:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _service_error(what: str, exc: grpc.RpcError) -> BiometricServiceError:
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    status = _status(exc)
    return BiometricServiceError(
        f"the matching service refused {what} ({status}): {details}", status
    )


def _check_sample(sample: CaptureSample) -> None:
    if not isinstance(sample, CaptureSample):
        raise InvalidInput("a capture is a CaptureSample")
    _text("household code", sample.household_code, 32)
    given = set(sample.fingers)
    missing = set(sample.missing_fingers)
    if given & missing:
        raise InvalidInput(f"fingers {sorted(given & missing)} are both given and missing")
    if given | missing != set(ALL_FINGERS):
        lacking = sorted(set(ALL_FINGERS) - given - missing)
        raise InvalidInput(
            f"ten fingers are captured (positions 1-10); missing {lacking} without a reason"
        )
    if not given:
        raise InvalidInput("at least one finger is captured")
    if any(not isinstance(r, str) or not r.strip() for r in sample.missing_fingers.values()):
        raise InvalidInput("every missing finger needs a reason")
    if set(sample.irises) != set(EYES):
        raise InvalidInput("both irises (L and R) are captured")
    if not isinstance(sample.photo, bytes) or not sample.photo:
        raise InvalidInput("a live photo (image bytes) is captured")
    if len(sample.photo) > MAX_PHOTO_BYTES:
        raise InvalidInput(f"the photo is over {MAX_PHOTO_BYTES} bytes")


def _member_row(m: MemberRecord, household_code: str, now: dt.datetime) -> dict[str, Any]:
    row = asdict(m)
    row.update(household_code=household_code, active=True, created_at=now)
    return row


def _member_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for key in ("document_expiry", "birth_date"):
        if out.get(key):
            out[key] = dt.date.fromisoformat(out[key])
    return out


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


def _recall_row(
    app: Application,
    channel: str,
    actor: Actor,
    at: dt.datetime,
    note: str,
    message_id: int | None,
) -> dict[str, Any]:
    return {
        "application_id": app.application_id,
        "channel": channel,
        "at": at,
        "by_actor": actor.name,
        "note": note,
        "message_id": message_id,
    }


def _household_members(conn: Connection, household_code: str) -> list[MemberRecord]:
    rows = (
        conn.execute(
            sa.select(db.members)
            .where(db.members.c.household_code == household_code, db.members.c.active.is_(True))
            .order_by(db.members.c.person_id)
        )
        .mappings()
        .all()
    )
    names = MemberRecord.__dataclass_fields__
    return [MemberRecord(**{k: r[k] for k in names}) for r in rows]


def _file_member(conn: Connection, application_id: int, person_id: str) -> MemberRecord:
    row = (
        conn.execute(
            sa.select(db.members, db.application_members.c.status)
            .join(
                db.application_members, db.application_members.c.person_id == db.members.c.person_id
            )
            .where(
                db.application_members.c.application_id == application_id,
                db.members.c.person_id == person_id,
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"{person_id} is not a member of application {application_id}")
    if row["status"] != "included":
        raise InvalidInput(f"{person_id} is {row['status']} in application {application_id}")
    return MemberRecord(**{k: row[k] for k in MemberRecord.__dataclass_fields__})


def _included(conn: Connection, application_id: int) -> list[str]:
    return [
        str(p)
        for p in conn.execute(
            sa.select(db.application_members.c.person_id).where(
                db.application_members.c.application_id == application_id,
                db.application_members.c.status == "included",
            )
        ).scalars()
    ]


def _fees(conn: Connection, application_id: int) -> tuple[int, int]:
    due = CARD_FEE_RIALS * len(_included(conn, application_id))
    paid = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(db.payments.c.amount_rials), 0)).where(
            db.payments.c.application_id == application_id
        )
    ).scalar_one()
    return due, int(paid)


def _documents_collected(conn: Connection, application_id: int) -> bool:
    # Every file holds at least one document (its head's card or permit: eligibility).
    return (
        conn.execute(
            sa.select(db.documents.c.document_id).where(
                db.documents.c.application_id == application_id
            )
        ).first()
        is not None
    )


def _after_capture(conn: Connection, application_id: int) -> str:
    included = set(_included(conn, application_id))
    captured = set(
        conn.execute(
            sa.select(db.captures.c.person_id).where(db.captures.c.application_id == application_id)
        ).scalars()
    )
    if not included <= captured:
        return "capturing"
    pending = conn.execute(
        sa.select(sa.func.count()).where(
            db.adjudications.c.application_id == application_id,
            db.adjudications.c.state == "pending",
        )
    ).scalar_one()
    return "adjudication_pending" if pending else "captured"


def _adjudication(
    conn: Connection,
    application_id: int,
    person_id: str,
    candidate: str,
    kind: str,
    scores: Mapping[str, float],
    at: dt.datetime,
) -> int:
    return int(
        conn.execute(
            db.adjudications.insert()
            .values(
                application_id=application_id,
                person_id=person_id,
                candidate_person_id=candidate,
                kind=kind,
                scores=db.to_json({k: round(float(v), 6) for k, v in scores.items()}),
                state="pending",
                created_at=at,
            )
            .returning(db.adjudications.c.adjudication_id)
        ).scalar_one()
    )


def _office(conn: Connection, office_id: str) -> Office:
    row = db.row_or_missing(conn, db.offices, "office", office_id=office_id)
    return Office(**{k: row._mapping[k] for k in Office.__dataclass_fields__})


def _round(conn: Connection, jalali_year: int) -> Round:
    row = db.row_or_missing(conn, db.rounds, "round", jalali_year=jalali_year)
    return Round(int(row.jalali_year), row.starts_on, row.ends_on)


def _household_and_office(conn: Connection, app: Application) -> tuple[Any, Office]:
    hh = db.row_or_missing(conn, db.households, "household", household_code=app.household_code)
    return hh, _office(conn, app.office_id)


def _card_view(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        k: row.get(k)
        for k in (
            "card_number",
            "person_id",
            "valid_from",
            "valid_to",
            "handed_over_to",
            "handed_over_by",
            "handed_over_at",
        )
    }
    out["valid_from_jalali"] = to_jalali_numeric(row["valid_from"])
    out["valid_to_jalali"] = to_jalali_numeric(row["valid_to"])
    return out

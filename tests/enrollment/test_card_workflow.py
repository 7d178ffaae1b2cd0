"""The card round end to end, with a real MatcherClient against a real in-process matching server
on loopback and synthetic biometrics (ten fingers as ISO/IEC 19794-2 records, two iris codes).

Each test has its own enrollment store (SQLite, and PostgreSQL in a throw-away schema when a
server answers at 127.0.0.1:5432) and a matching server of its backend's own; World person *k*'s
biometrics are used by one test only, except where a test reuses them on purpose (dedup).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from enrollment.appointments import Office, Round
from enrollment.calendar import CARD_FEE_RIALS, card_validity
from enrollment.errors import (
    AlreadyDone,
    CapacityExceeded,
    InvalidInput,
    NotEligible,
    NotPermitted,
    StepOutOfOrder,
)
from enrollment.sms import FileSender, Outbox
from enrollment.store import EnrollmentStore
from enrollment.workflow import (
    CaptureSample,
    MemberDetails,
    MemberRecord,
    Workflow,
)
from matcher.client import MatcherClient
from matcher.formats import iso19794_2
from matcher.iris import IrisGeometry
from matcher.store import Actor
from matcher.synthetic.finger import finger_chunks
from matcher.synthetic.iris import genuine_probes, random_codes, random_masks
from tests.inprocess import matcher_server
from tests.test_engine import World

TEST_KEY = bytes(range(32))  # the store key (AES-256) of these tests

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PERSONS = 24
YEAR = 1403
ROUND = Round(YEAR, dt.date(2024, 5, 4), dt.date(2024, 5, 17))  # a Saturday, two weeks
PREVIOUS_CARD_EXPIRY = dt.date(2024, 6, 19)  # Khordad 30, 1403: the 1402 cards' last day
TOKENS = {"station": "station-secret", "admin": "admin-secret"}

ADMIN = Actor("admin-1", "admin")
CLERK = Actor("clerk-7", "caseworker")
UNIT = Actor("unit-officer-2", "unit_officer")
MINISTRY = Actor("moi-approver-1", "approver")
PHOTO = b"\xff\xd8\xff\xe0" + b"live-photo" * 20


class Biometrics:
    """Ten fingers and two eyes for each of PERSONS synthetic persons, and a second capture."""

    def __init__(self) -> None:
        first = next(finger_chunks(PERSONS * 10, seed=57, chunk=PERSONS * 10, take=0))
        second = next(finger_chunks(PERSONS * 10, seed=57, chunk=PERSONS * 10, take=1))

        def hand(src: list[Any], k: int) -> dict[int, bytes]:
            return {
                p: iso19794_2.encode([dataclasses.replace(src[10 * k + p - 1], position=p)], "2011")
                for p in range(1, 11)
            }

        self.fingers = [hand(first, k) for k in range(PERSONS)]
        self.finger_probes = [hand(second, k) for k in range(PERSONS)]
        rng = np.random.default_rng(11)
        geo = IrisGeometry()
        codes = random_codes(2 * PERSONS, geo, rng)
        masks = random_masks(2 * PERSONS, geo, rng)
        probes = genuine_probes(codes, rng)
        self.irises = [
            {e: (codes[2 * k + j], masks[2 * k + j]) for j, e in enumerate("LR")}
            for k in range(PERSONS)
        ]
        self.iris_probes = [
            {e: (probes.codes[2 * k + j], probes.masks[2 * k + j]) for j, e in enumerate("LR")}
            for k in range(PERSONS)
        ]
        # Thresholds measured on this synthetic population (its scores differ from real ones).
        self.thresholds = World._calibrate(first, rng)

    def sample(self, k: int, household: str, probe: bool = True) -> CaptureSample:
        fingers = self.finger_probes[k] if probe else self.fingers[k]
        irises = self.iris_probes[k] if probe else self.irises[k]
        return CaptureSample(household, fingers, irises, PHOTO)


@pytest.fixture(scope="module")
def bio() -> Biometrics:
    return Biometrics()


# --- the two databases --------------------------------------------------------------------


def _postgres_problem() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_URL} ({str(exc).strip().splitlines()[0]})"
    return None


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        problem = _postgres_problem()
        if problem:
            pytest.skip(f"PostgreSQL enrollment tests skipped: {problem}")
    return str(request.param)


@pytest.fixture(scope="module")
def matcher_address(
    backend: str, tmp_path_factory: pytest.TempPathFactory, bio: Biometrics
) -> Iterator[str]:
    """A matching server of its own for each backend (the same biometrics are enrolled again)."""
    with matcher_server(tmp_path_factory.mktemp(f"matcher-{backend}"), bio.thresholds, TOKENS) as (
        address,
        _,
    ):
        yield address


@pytest.fixture(scope="module")
def station(matcher_address: str) -> Iterator[MatcherClient]:
    with MatcherClient(matcher_address, token=TOKENS["station"], max_message_mb=8) as c:
        yield c


@pytest.fixture(scope="module")
def matcher_admin(matcher_address: str) -> Iterator[MatcherClient]:
    with MatcherClient(matcher_address, token=TOKENS["admin"], max_message_mb=8) as c:
        yield c


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[EnrollmentStore]:
    if backend == "sqlite":
        s = EnrollmentStore.open(f"sqlite:///{tmp_path / 'enrollment.db'}", key=TEST_KEY)
        yield s
        s.close()
        return
    schema = f"amayesh_e_{secrets.token_hex(6)}"
    _pg_admin(f'CREATE SCHEMA "{schema}"')
    try:
        s = EnrollmentStore.open(PG_URL, schema=schema, key=TEST_KEY)
        yield s
        s.close()
    finally:
        _pg_admin(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def wf(store: EnrollmentStore, station: MatcherClient) -> Workflow:
    w = Workflow(store, station, today=lambda: dt.date(2024, 5, 5))
    w.add_office(ADMIN, Office("QOM-1", "دفتر کفالت قم ۱", "02537001122", daily_capacity=3))
    w.open_round(ADMIN, ROUND)
    return w


# --- helpers ------------------------------------------------------------------------------


def member(pid: str, relation: str = "child", **kw: Any) -> MemberRecord:
    fields: dict[str, Any] = {
        "person_id": pid,
        "given_name": f"name-{pid}",
        "family_name": "Ahmadi",
        "father_name": "Karim",
        "sex": "M",
        "relation": relation,
        "document_kind": "amayesh_card",
        "document_number": f"C-{pid}",
        "document_expiry": PREVIOUS_CARD_EXPIRY,
        "birth_date": dt.date(1990, 1, 1),
    }
    fields.update(kw)
    return MemberRecord(**fields)


def household(wf: Workflow, code: str, people: list[MemberRecord], office: str = "QOM-1") -> int:
    wf.import_household(CLERK, code, people[0].person_id, "0912 345 6789", office, people)
    return wf.open_application(CLERK, YEAR, code)


def to_paid(wf: Workflow, app: int, receipt: str) -> None:
    wf.recall(CLERK, app, "head answered; will wait for the SMS")
    wf.schedule(CLERK, app)
    due, _ = wf.fees_due(app)
    wf.record_payment(CLERK, app, receipt, due)
    wf.collect_documents(CLERK, app)


def capture_all(wf: Workflow, bio: Biometrics, app: int, code: str, ks: dict[str, int]) -> None:
    for pid, k in ks.items():
        wf.capture(CLERK, app, pid, bio.sample(k, code))


def details_for(pids: list[str]) -> dict[str, MemberDetails]:
    return {
        p: MemberDetails("Qom, Pardisan, block 4", "tailor", "09123456789", workshop_code="W-77")
        for p in pids
    }


# --- the tests ----------------------------------------------------------------------------


def test_a_household_of_five_goes_through_the_whole_round(
    wf: Workflow, bio: Biometrics, matcher_admin: MatcherClient, tmp_path: Path
) -> None:
    # The head and the spouse were enrolled in an earlier round: they are verified 1:1.
    pids = ["H5-head", "H5-wife", "H5-c1", "H5-c2", "H5-c3"]
    ks = dict(zip(pids, range(5), strict=True))
    for pid in pids[:2]:
        matcher_admin.enroll(pid, fingers=bio.fingers[ks[pid]], irises=bio.irises[ks[pid]])
    people = [
        member(pids[0], "head", enrolled_before=True),
        member(pids[1], "spouse", sex="F", enrolled_before=True),
        member(
            pids[2],
            document_kind="travel_permit",
            document_number="TP-1",
            document_expiry=dt.date(2024, 9, 1),
        ),
        member(pids[3]),
        member(pids[4]),
    ]
    app = household(wf, "HH-5", people)
    assert wf.state(app) == "imported"
    wf.recall(CLERK, app, "head answered the office's call")
    slot = wf.schedule(CLERK, app)
    assert slot.day == ROUND.starts_on and slot.starts_min == 8 * 60
    assert wf.fees_due(app) == (5 * CARD_FEE_RIALS, 0)
    assert wf.record_payment(CLERK, app, "R-100", 3 * CARD_FEE_RIALS) == (2_500_000, 1_500_000)
    assert wf.state(app) == "scheduled"  # not yet in full
    with pytest.raises(AlreadyDone):
        wf.record_payment(CLERK, app, "R-100", CARD_FEE_RIALS)
    with pytest.raises(InvalidInput, match="exceed"):
        wf.record_payment(CLERK, app, "R-101", 3 * CARD_FEE_RIALS)
    wf.record_payment(CLERK, app, "R-101", 2 * CARD_FEE_RIALS)
    assert wf.state(app) == "paid"
    docs = wf.collect_documents(CLERK, app)
    assert sorted(d["number"] for d in docs) == sorted(
        ["TP-1"] + [f"C-{p}" for p in pids if p != "H5-c1"]
    )
    results = [wf.capture(CLERK, app, pid, bio.sample(k, "HH-5")) for pid, k in ks.items()]
    assert [r.verification for r in results] == ["match", "match", "none", "none", "none"]
    assert [r.biometric_write for r in results] == [
        "update",
        "update",
        "enroll",
        "enroll",
        "enroll",
    ]
    # Live photos are sealed at rest: not in the table as captured, readable with the key only.
    with wf.store.read() as conn:
        raw = conn.execute(
            sa.text("SELECT application_id, person_id, photo FROM enr_captures")
        ).all()
    assert len(raw) >= 5 and all(PHOTO not in bytes(p) for _, _, p in raw)
    assert wf.store.open_photo(raw[0][0], raw[0][1], bytes(raw[0][2])) == PHOTO
    assert all(r.adjudications == () for r in results)
    assert [r.state for r in results] == ["capturing"] * 4 + ["captured"]
    assert wf.adjudications(app) == []
    assert matcher_admin.get_person("H5-c2")["labels"] == {"household": "HH-5", "round": "1403"}
    wf.record_details(CLERK, app, details_for(pids))
    wf.submit(CLERK, app)
    assert [f["application_id"] for f in wf.ministry_inbox(MINISTRY)] == [app]
    wf.decide(MINISTRY, app, approve=True, reason="documents and biometrics in order")
    cards = wf.issue_cards(CLERK, app)
    first, last = card_validity(YEAR)
    assert [c["person_id"] for c in cards] == sorted(pids)
    assert len({c["card_number"] for c in cards}) == 5
    assert all((c["valid_from"], c["valid_to"]) == (first, last) for c in cards)
    assert cards[0]["valid_from_jalali"] == "۱۴۰۳/۰۳/۳۱"
    assert cards[0]["valid_to_jalali"] == "۱۴۰۴/۰۳/۳۰"
    with pytest.raises(InvalidInput, match="head"):
        wf.hand_over(CLERK, app, received_by="H5-c1")
    wf.hand_over(CLERK, app, received_by="H5-head")
    assert wf.state(app) == "delivered"
    assert all(
        c["handed_over_to"] == "H5-head"
        and c["handed_over_by"] == CLERK.name
        and c["handed_over_at"] is not None
        for c in wf.cards(app)
    )
    # The audit trail: every transition, who and in which role, in order.
    log = wf.audit_log(app)
    assert [r["to_state"] for r in log if r["from_state"] != r["to_state"]] == [
        "imported",
        "recalled",
        "scheduled",
        "paid",
        "capturing",
        "captured",
        "details_recorded",
        "submitted",
        "approved",
        "cards_issued",
        "delivered",
    ]
    assert {(r["actor"], r["role"]) for r in log} == {
        (CLERK.name, "caseworker"),
        (MINISTRY.name, "approver"),
    }
    assert all(r["household_code"] == "HH-5" and r["at"] is not None for r in log)
    # SMS: recall, appointment (fees and how to pay), cards ready; delivered through a file.
    sent = tmp_path / "sms.jsonl"
    outbox = Outbox(wf.store, FileSender(sent))
    assert [m["template"] for m in outbox.messages(app)] == ["recall", "appointment", "cards_ready"]
    assert outbox.deliver_due().sent == 3
    lines = sent.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and "۲٬۵۰۰٬۰۰۰ ریال" in lines[1] and "۱۵ اردیبهشت ۱۴۰۳" in lines[1]


def test_a_person_enrolled_in_another_household_lands_in_adjudication(
    wf: Workflow, bio: Biometrics
) -> None:
    a = household(wf, "HH-A", [member("A-head", "head"), member("A-son")])
    to_paid(wf, a, "R-A")
    capture_all(wf, bio, a, "HH-A", {"A-head": 5, "A-son": 6})
    assert wf.state(a) == "captured"
    # A-son turns up again in household B under another name and id.
    b = household(wf, "HH-B", [member("B-head", "head"), member("B-nephew")])
    to_paid(wf, b, "R-B")
    wf.capture(CLERK, b, "B-head", bio.sample(7, "HH-B"))
    dup = wf.capture(CLERK, b, "B-nephew", bio.sample(6, "HH-B", probe=False))
    assert dup.verification == "none" and dup.biometric_write == "enroll"
    assert len(dup.adjudications) == 1 and dup.state == "adjudication_pending"
    [item] = wf.adjudications(b)
    assert (item["person_id"], item["candidate_person_id"], item["kind"], item["state"]) == (
        "B-nephew",
        "A-son",
        "identify",
        "pending",
    )
    # Nothing moves on while the item is open, and it is never decided without a reason.
    with pytest.raises(StepOutOfOrder, match="adjudication resolved") as e:
        wf.record_details(CLERK, b, details_for(["B-head", "B-nephew"]))
    assert e.value.missing == "adjudication resolved by a caseworker"
    with pytest.raises(InvalidInput, match="reason"):
        wf.resolve_adjudication(CLERK, item["adjudication_id"], "same_person", "ok")
    with pytest.raises(NotPermitted):
        wf.resolve_adjudication(MINISTRY, item["adjudication_id"], "same_person", "x" * 20)
    state = wf.resolve_adjudication(
        CLERK,
        item["adjudication_id"],
        "same_person",
        "same fingerprints and irises as A-son of HH-A; referred to the directorate",
    )
    assert state == "captured"
    [resolved] = wf.adjudications(b)
    assert resolved["state"] == "same_person" and resolved["resolved_by"] == CLERK.name
    with pytest.raises(AlreadyDone):
        wf.resolve_adjudication(CLERK, item["adjudication_id"], "different_person", "x" * 20)


def test_an_impostor_fails_the_one_to_one_and_is_adjudicated(
    wf: Workflow, bio: Biometrics, matcher_admin: MatcherClient
) -> None:
    matcher_admin.enroll("I-head", fingers=bio.fingers[15], irises=bio.irises[15])
    app = household(wf, "HH-I", [member("I-head", "head", enrolled_before=True)])
    to_paid(wf, app, "R-I")
    # Someone else (person 16) presents as I-head.
    r = wf.capture(CLERK, app, "I-head", bio.sample(16, "HH-I"))
    assert (r.verification, r.biometric_write, r.state) == (
        "no_match",
        "none",
        "adjudication_pending",
    )
    kinds = [(i["kind"], i["candidate_person_id"]) for i in wf.adjudications(app)]
    assert kinds == [("verify", "I-head")]
    assert matcher_admin.verify("I-head", fingers=bio.finger_probes[15]).match  # kept


def test_a_birth_blocks_capture_until_the_authorised_unit_records_it(
    wf: Workflow, bio: Biometrics
) -> None:
    app = household(wf, "HH-BIRTH", [member("BI-head", "head"), member("BI-wife", sex="F")])
    to_paid(wf, app, "R-BI")
    baby = member(
        "BI-baby",
        document_kind="none",
        document_number=None,
        document_expiry=None,
        birth_date=dt.date(2024, 2, 1),
    )
    event = wf.report_vital_event(CLERK, app, "birth", "a son, born in Qom", new_member=baby)
    assert wf.state(app) == "blocked_by_event"
    with pytest.raises(StepOutOfOrder, match="authorised unit") as e:
        wf.capture(CLERK, app, "BI-head", bio.sample(9, "HH-BIRTH"))
    assert e.value.missing == "vital event recorded by the authorised unit of the directorate"
    with pytest.raises(NotPermitted):
        wf.record_vital_event(CLERK, event, "recorded by the office")  # not the unit
    assert wf.record_vital_event(UNIT, event, "birth certificate seen") == "event_recorded"
    assert wf.members(app)["BI-baby"][0] == "included"
    # One more card to pay for before capture.
    with pytest.raises(StepOutOfOrder, match="fees paid"):
        wf.capture(CLERK, app, "BI-head", bio.sample(9, "HH-BIRTH"))
    wf.record_payment(CLERK, app, "R-BI-2", CARD_FEE_RIALS)
    capture_all(wf, bio, app, "HH-BIRTH", {"BI-head": 9, "BI-wife": 10, "BI-baby": 11})
    assert wf.state(app) == "captured"
    log = wf.audit_log(app)
    assert [(r["action"], r["role"]) for r in log if r["action"].endswith("vital_event")] == [
        ("report_vital_event", "caseworker"),
        ("record_vital_event", "unit_officer"),
    ]


def test_a_file_rejected_by_the_ministry_returns_to_the_caseworker(
    wf: Workflow, bio: Biometrics
) -> None:
    app = household(wf, "HH-R", [member("R-head", "head"), member("R-wife", sex="F")])
    to_paid(wf, app, "R-R")
    capture_all(wf, bio, app, "HH-R", {"R-head": 13, "R-wife": 14})
    wf.record_details(CLERK, app, details_for(["R-head", "R-wife"]))
    wf.submit(CLERK, app)
    with pytest.raises(NotPermitted):
        wf.decide(CLERK, app, approve=True)
    with pytest.raises(InvalidInput, match="reason"):
        wf.decide(MINISTRY, app, approve=False)
    wf.decide(MINISTRY, app, approve=False, reason="workshop code does not exist")
    assert wf.state(app) == "returned"
    assert wf.ministry_inbox(MINISTRY) == []
    [back] = wf.caseworker_inbox(CLERK)
    assert back["application_id"] == app and back["rejection"] == "workshop code does not exist"
    with pytest.raises(StepOutOfOrder, match="details corrected"):
        wf.issue_cards(CLERK, app)
    fixed = details_for(["R-head", "R-wife"])
    fixed["R-head"] = dataclasses.replace(fixed["R-head"], workshop_code="W-78")
    wf.record_details(CLERK, app, fixed)
    wf.submit(CLERK, app)
    wf.decide(
        MINISTRY, app, approve=True, reason="corrected", excluded={"R-wife": "left the province"}
    )
    assert [c["person_id"] for c in wf.issue_cards(CLERK, app)] == ["R-head"]
    actions = [r["action"] for r in wf.audit_log(app)]
    assert actions.count("submit") == 2 and actions.index("rejected") < actions.index("approved")


def test_an_appointment_beyond_office_capacity_is_refused(wf: Workflow) -> None:
    wf.add_office(
        ADMIN,
        Office(
            "TINY",
            "دفتر کوچک",
            "02537000000",
            daily_capacity=1,
            opens_min=9 * 60,
            closes_min=12 * 60,
        ),
    )
    working_days = 10  # two weeks from a Saturday, Saturday to Wednesday
    apps = [
        household(wf, f"HH-C{i}", [member(f"C{i}-head", "head")], office="TINY")
        for i in range(working_days + 1)
    ]
    for app in apps:
        wf.recall(CLERK, app, "called")
    days = [wf.schedule(CLERK, app).day for app in apps[:working_days]]
    assert len(set(days)) == working_days and all(d.weekday() in (5, 6, 0, 1, 2) for d in days)
    with pytest.raises(CapacityExceeded, match="full"):
        wf.schedule(CLERK, apps[-1])
    assert wf.state(apps[-1]) == "recalled"
    # Another office with room takes the household.
    assert wf.schedule(CLERK, apps[-1], office_id="QOM-1").office_id == "QOM-1"
    # A day asked for exactly, once full, is refused too.
    other = household(wf, "HH-C-exact", [member("CX-head", "head")], office="TINY")
    wf.recall(CLERK, other, "called")
    with pytest.raises(CapacityExceeded):
        wf.schedule(CLERK, other, on_or_after=days[0], exact_day=True)


def test_fees_not_paid_block_capture_and_steps_keep_their_order(
    wf: Workflow, bio: Biometrics
) -> None:
    app = household(wf, "HH-F", [member("F-head", "head"), member("F-son")])
    with pytest.raises(StepOutOfOrder, match="recall") as e:
        wf.schedule(CLERK, app)
    assert e.value.missing.startswith("recall")
    wf.recall(CLERK, app, "called")
    with pytest.raises(StepOutOfOrder, match="already at 'recalled'"):
        wf.recall(CLERK, app, "called twice")
    with pytest.raises(StepOutOfOrder, match="appointment"):
        wf.record_payment(CLERK, app, "R-F", CARD_FEE_RIALS)
    wf.schedule(CLERK, app)
    wf.record_payment(CLERK, app, "R-F", CARD_FEE_RIALS)  # one card of two
    wf.collect_documents(CLERK, app)
    with pytest.raises(StepOutOfOrder, match="fees paid") as e:
        wf.capture(CLERK, app, "F-head", bio.sample(17, "HH-F"))
    assert e.value.missing == "fees paid"
    with pytest.raises(StepOutOfOrder, match="fees paid first"):
        wf.submit(CLERK, app)
    # Nothing reached the matching service.
    assert wf.adjudications(app) == [] and wf.state(app) == "scheduled"


def test_documents_capture_input_and_roles_are_checked(wf: Workflow, bio: Biometrics) -> None:
    app = household(wf, "HH-D", [member("D-head", "head")])
    wf.recall(CLERK, app, "called")
    wf.schedule(CLERK, app)
    wf.record_payment(CLERK, app, "R-D", CARD_FEE_RIALS)
    with pytest.raises(StepOutOfOrder, match="documents collected"):
        wf.capture(CLERK, app, "D-head", bio.sample(18, "HH-D"))
    wf.collect_documents(CLERK, app)
    good = bio.sample(18, "HH-D")
    nine = dataclasses.replace(good, fingers={p: f for p, f in good.fingers.items() if p != 4})
    with pytest.raises(InvalidInput, match="ten fingers"):
        wf.capture(CLERK, app, "D-head", nine)
    with pytest.raises(InvalidInput, match="irises"):
        wf.capture(CLERK, app, "D-head", dataclasses.replace(good, irises={"L": good.irises["L"]}))
    with pytest.raises(InvalidInput, match="photo"):
        wf.capture(CLERK, app, "D-head", dataclasses.replace(good, photo=b""))
    with pytest.raises(InvalidInput, match="household code"):
        wf.capture(CLERK, app, "D-head", dataclasses.replace(good, household_code="HH-X"))
    with pytest.raises(NotPermitted):
        wf.capture(UNIT, app, "D-head", good)
    # An amputated finger is recorded with its reason instead.
    r = wf.capture(
        CLERK, app, "D-head", dataclasses.replace(nine, missing_fingers={4: "amputated"})
    )
    assert r.state == "captured"
    with pytest.raises(StepOutOfOrder, match="already at 'captured'"):
        wf.capture(CLERK, app, "D-head", good)


def test_eligibility_needs_a_valid_card_or_permit(wf: Workflow) -> None:
    expired = dict(
        document_kind="travel_permit", document_number="TP-9", document_expiry=dt.date(2024, 1, 1)
    )
    app = household(wf, "HH-E", [member("E-head", "head"), member("E-cousin", **expired)])
    status = wf.members(app)
    assert status["E-head"] == ("included", "valid document")
    assert status["E-cousin"][0] == "refused" and "expired on 2024-01-01" in status["E-cousin"][1]
    assert wf.fees_due(app) == (CARD_FEE_RIALS, 0)  # no card fee for a refused member
    wf.import_household(
        CLERK,
        "HH-N",
        "N-head",
        "09120000000",
        "QOM-1",
        [
            member(
                "N-head", "head", document_kind="none", document_number=None, document_expiry=None
            )
        ],
    )
    with pytest.raises(NotEligible, match="neither an Amayesh card nor a travel permit"):
        wf.open_application(CLERK, YEAR, "HH-N")
    with pytest.raises(AlreadyDone):
        wf.open_application(CLERK, YEAR, "HH-E")


def test_the_audit_table_is_append_only(wf: Workflow, store: EnrollmentStore) -> None:
    household(wf, "HH-AU", [member("AU-head", "head")])
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.write() as conn:
        conn.execute(sa.text("UPDATE enr_audit SET actor = 'someone else'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.write() as conn:
        conn.execute(sa.text("DELETE FROM enr_audit"))
    assert len(wf.audit_log()) >= 3

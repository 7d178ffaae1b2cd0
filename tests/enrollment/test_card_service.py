"""amayesh.v1.Enrollment over real gRPC on loopback: the card round through the service, errors
mapped once (out of order, wrong role, the matching service's own refusals), and the office's
command line (``python -m enrollment``) against the same running server.

One in-process server serves both services, as server.py does: the workflow's MatcherClient calls
the server's own Matcher service with a station token, and both stores share one SQLite file.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

import server
from amayesh.v1 import enrollment_pb2 as pb
from amayesh.v1 import enrollment_pb2_grpc as pb_grpc
from amayesh.v1 import matcher_pb2 as mpb
from enrollment.reports import OFFICE_TZ
from enrollment.service import EnrollmentService
from enrollment.store import EnrollmentStore
from enrollment.workflow import Workflow
from matcher.auth import Authenticator, digest
from matcher.client import MatcherClient
from matcher.crypto import generate_key_file
from matcher.engine import Engine
from matcher.service import MatcherService
from matcher.store import Store
from tests.enrollment.test_card_workflow import Biometrics

TEST_KEY = bytes(range(32))  # the store key (AES-256) of these tests

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = ("admin", "caseworker", "unit_officer", "approver", "station")
TOKENS = {role: f"{role}-secret" for role in ROLES}
YEAR = 1403
FIRST, LAST = "1403/02/15", "1403/02/28"  # 2024-05-04 (a Saturday) .. 2024-05-17
EXPIRY = "1403/03/30"  # the 1402 cards' last day
TODAY = dt.date(2024, 5, 5)


@pytest.fixture(scope="module")
def bio() -> Biometrics:
    return Biometrics()


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, bio: Biometrics) -> Iterator[str]:
    d = tmp_path_factory.mktemp("enrollment-service")
    url = f"sqlite:///{d / 'store.db'}"
    store = Store.open(url, generate_key_file(d / "key"))
    auth = Authenticator([(f"{r}-user", r, digest(t)) for r, t in TOKENS.items()])
    matcher = MatcherService(Engine(store, bio.thresholds), auth, "sqlite")
    enrollment = EnrollmentService(EnrollmentStore.open(url, key=TEST_KEY), auth)
    settings = server.Settings(
        listen="127.0.0.1:0",
        store=url,
        dev_token=None,
        max_workers=4,
        max_message_mb=8,
        max_concurrent_rpcs=16,
    )
    srv, port, _ = server.build_server(settings, matcher, enrollment)
    srv.start()
    matcher.engine.load()
    matcher.ready.set()
    client = MatcherClient(f"127.0.0.1:{port}", TOKENS["station"], max_message_mb=8)
    enrollment.start(Workflow(enrollment.store, client, today=lambda: TODAY))
    yield f"127.0.0.1:{port}"
    srv.stop(grace=None).wait()
    client.close()
    enrollment.store.close()
    store.close()


class Caller:
    """The Enrollment stub with one role's token."""

    def __init__(self, channel: grpc.Channel, role: str | None) -> None:
        self.stub = pb_grpc.EnrollmentStub(channel)
        self.meta = () if role is None else (("authorization", f"Bearer {TOKENS[role]}"),)

    def __getattr__(self, rpc: str) -> Any:
        method = getattr(self.stub, rpc)
        return lambda request: method(request, metadata=self.meta, timeout=60)


@pytest.fixture(scope="module")
def channel(address: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)]) as ch:
        yield ch


@pytest.fixture(scope="module")
def as_(channel: grpc.Channel) -> dict[str | None, Caller]:
    return {role: Caller(channel, role) for role in (*ROLES, None)}


@pytest.fixture(scope="module")
def office(as_: dict[str | None, Caller]) -> str:
    as_["admin"].AddOffice(
        pb.Office(office_id="QOM-1", name="پردیسان", phone="02537001122", daily_capacity=4)
    )
    r = as_["admin"].OpenRound(pb.OpenRoundRequest(jalali_year=YEAR, starts_on=FIRST, ends_on=LAST))
    assert r.starts_on.iso == "2024-05-04" and r.cards_valid_from.jalali == "1403/03/31"
    return "QOM-1"


def household(code: str, pids: list[str]) -> pb.Household:
    return pb.Household(
        household_code=code,
        head_person_id=pids[0],
        phone="0912 345 6789",
        office_id="QOM-1",
        members=[
            pb.Member(
                person_id=p,
                given_name=f"name-{p}",
                family_name="Ahmadi",
                father_name="Karim",
                sex="M",
                relation="head" if k == 0 else "child",
                document_kind="amayesh_card",
                document_number=f"C-{p}",
                document_expiry=EXPIRY,
            )
            for k, p in enumerate(pids)
        ],
    )


def capture_request(bio: Biometrics, k: int, app: int, pid: str, code: str) -> pb.CaptureRequest:
    s = bio.sample(k, code)
    irises = []
    for eye, (c, m) in s.irises.items():
        rings, columns, bits = np.asarray(c).shape
        irises.append(
            mpb.IrisSample(
                eye=mpb.EYE_LEFT if eye == "L" else mpb.EYE_RIGHT,
                code=mpb.IrisCode(
                    rings=rings,
                    columns=columns,
                    bits=bits,
                    code=np.packbits(np.asarray(c, bool)).tobytes(),
                    mask=np.packbits(np.asarray(m, bool)).tobytes(),
                ),
            )
        )
    return pb.CaptureRequest(
        application_id=app,
        person_id=pid,
        household_code=code,
        fingers=[mpb.FingerSample(position=p, record=r) for p, r in s.fingers.items()],
        irises=irises,
        photo=s.photo,
    )


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(request)
    return e.value


def test_a_household_goes_through_the_round_over_grpc(
    as_: dict[str | None, Caller], office: str, bio: Biometrics
) -> None:
    cw, ministry = as_["caseworker"], as_["approver"]
    pids = ["G-head", "G-wife", "G-son"]
    r = cw.ImportHouseholds(
        pb.ImportHouseholdsRequest(
            households=[household("HH-G", pids), household("HH-G", ["X-1"])], jalali_year=YEAR
        )
    )
    first, again = r.results
    assert first.imported and first.application_id and not first.error
    assert not again.imported and again.status == "ALREADY_EXISTS"
    app = first.application_id
    assert cw.Recall(pb.RecallRequest(application_id=app, call_note="head answered")).state == (
        "recalled"
    )
    appt = cw.Schedule(pb.ScheduleRequest(application_id=app))
    assert (appt.day.iso, appt.day.jalali, appt.time) == ("2024-05-04", "1403/02/15", "08:00")
    assert appt.day.jalali_text == "۱۵ اردیبهشت ۱۴۰۳"
    fees = cw.RecordPayment(
        pb.RecordPaymentRequest(application_id=app, receipt_number="R-G", amount_rials=1_500_000)
    )
    assert (fees.due_rials, fees.paid_rials, fees.file.state) == (1_500_000, 1_500_000, "paid")
    docs = cw.CollectDocuments(pb.ApplicationRef(application_id=app))
    assert sorted(d.number for d in docs.documents) == sorted(f"C-{p}" for p in pids)
    states = []
    for k, pid in enumerate(pids):
        c = cw.Capture(capture_request(bio, k, app, pid, "HH-G"))
        assert (c.verification, c.biometric_write, list(c.adjudication_ids)) == (
            "none",
            "enroll",
            [],
        )
        states.append(c.file.state)
    assert states == ["capturing", "capturing", "captured"]
    details = [
        pb.MemberDetails(person_id=p, address="Qom", occupation="tailor", mobile="09123456789")
        for p in pids
    ]
    cw.RecordDetails(pb.RecordDetailsRequest(application_id=app, details=details))
    assert cw.Submit(pb.ApplicationRef(application_id=app)).state == "submitted"
    waiting = as_["caseworker"].GetDailyReport(pb.DailyReportRequest(first_day=FIRST))
    assert waiting.ministry_inbox_waiting == 1
    assert [f.application_id for f in ministry.MinistryInbox(pb.InboxRequest()).files] == [app]
    decided = ministry.Decide(pb.DecideRequest(application_id=app, approve=True, reason="in order"))
    assert decided.state == "approved"
    cards = cw.IssueCards(pb.ApplicationRef(application_id=app))
    assert [c.person_id for c in cards.cards] == sorted(pids)
    assert {(c.valid_from.jalali, c.valid_to.jalali) for c in cards.cards} == {
        ("1403/03/31", "1404/03/30")
    }
    done = cw.HandOver(pb.HandOverRequest(application_id=app, received_by="G-head"))
    assert (done.state, done.next_step) == ("delivered", "")
    view = ministry.GetApplication(pb.ApplicationRef(application_id=app))
    assert view.head_person_id == "G-head" and view.appointment.time == "08:00"
    assert [c.handed_over_to for c in view.cards] == ["G-head"] * 3
    assert [m.status for m in view.members] == ["included"] * 3
    hh = cw.GetHousehold(pb.GetHouseholdRequest(household_code="HH-G"))
    assert len(hh.household.members) == 3 and list(hh.application_years) == [YEAR]
    log = cw.GetAuditLog(pb.ApplicationRef(application_id=app)).entries
    assert [e.to_state for e in log if e.from_state != e.to_state][-3:] == [
        "approved",
        "cards_issued",
        "delivered",
    ]
    assert {e.role for e in log} == {"caseworker", "approver"}
    report = as_["admin"].GetDailyReport(pb.DailyReportRequest(first_day=FIRST, last_day=LAST))
    assert [(r.office_id, r.day.jalali, r.count) for r in report.appointments] == [
        ("QOM-1", "1403/02/15", 1)
    ]
    assert report.ministry_inbox_waiting == 0
    # Cards are counted on the office's local day they were issued (today, not in the round).
    today = dt.datetime.now(OFFICE_TZ).date().isoformat()
    issued = as_["admin"].GetDailyReport(pb.DailyReportRequest(first_day=today)).cards_issued
    assert [(r.office_id, r.day.iso, r.count) for r in issued] == [("QOM-1", today, 3)]


def test_a_step_out_of_order_is_failed_precondition_naming_the_missing_step(
    as_: dict[str | None, Caller], office: str, bio: Biometrics
) -> None:
    cw = as_["caseworker"]
    [r] = cw.ImportHouseholds(
        pb.ImportHouseholdsRequest(households=[household("HH-O", ["O-head"])], jalali_year=YEAR)
    ).results
    app = r.application_id
    e = refused(cw.Schedule, pb.ScheduleRequest(application_id=app))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "recall" in e.details()
    cw.Recall(pb.RecallRequest(application_id=app, call_note="called"))
    cw.Schedule(pb.ScheduleRequest(application_id=app))
    cw.CollectDocuments(pb.ApplicationRef(application_id=app))
    e = refused(cw.Capture, capture_request(bio, 5, app, "O-head", "HH-O"))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "fees paid first" in e.details()
    e = refused(cw.Submit, pb.ApplicationRef(application_id=app))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "fees paid" in e.details()
    # Malformed input and unknown files, each with its own status.
    e = refused(cw.Recall, pb.RecallRequest(application_id=999_999, call_note="x"))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = refused(
        cw.RecordPayment,
        pb.RecordPaymentRequest(application_id=app, receipt_number="R-O", paid_on="1403/13/01"),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "paid_on" in e.details()
    cw.RecordPayment(
        pb.RecordPaymentRequest(application_id=app, receipt_number="R-O", amount_rials=500_000)
    )
    # A record the matching service cannot read: its INVALID_ARGUMENT passes through.
    bad = capture_request(bio, 5, app, "O-head", "HH-O")
    bad.fingers[0].record = b"FMR\x00" + b"\x00" * 20
    e = refused(cw.Capture, bad)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "matching service" in e.details()
    assert cw.GetApplication(pb.ApplicationRef(application_id=app)).file.state == "paid"


def test_roles_are_enforced(as_: dict[str | None, Caller], office: str) -> None:
    ref = pb.ApplicationRef(application_id=1)
    for role, rpc, request in (
        ("approver", "Recall", pb.RecallRequest(application_id=1, call_note="x")),
        ("caseworker", "Decide", pb.DecideRequest(application_id=1, approve=True)),
        ("caseworker", "AddOffice", pb.Office(office_id="X", name="x", phone="1")),
        ("unit_officer", "IssueCards", ref),
        ("station", "GetApplication", ref),
        ("approver", "CaseworkerInbox", pb.InboxRequest()),
    ):
        e = refused(getattr(as_[role], rpc), request)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (role, rpc)
        assert role in e.details()
    e = refused(as_[None].GetApplication, ref)
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_command_line_runs_against_the_server(
    address: str, office: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "households.csv"
    csv_file.write_text(
        "household_code,head_person_id,phone,office_id,person_id,given_name,family_name,"
        "father_name,sex,relation,document_kind,document_number,document_expiry,birth_date\n"
        f"HH-CLI,CLI-head,09121112233,QOM-1,CLI-head,Reza,Hosseini,Ali,M,head,amayesh_card,"
        f"C-1,{EXPIRY},1360/01/01\n"
        f"HH-CLI,CLI-head,09121112233,QOM-1,CLI-kid,Sara,Hosseini,Reza,F,child,amayesh_card,"
        f"C-2,{EXPIRY},\n",
        encoding="utf-8",
    )
    env = {**os.environ, "AMAYESH_SERVER": address, "AMAYESH_TOKEN": TOKENS["caseworker"]}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "enrollment", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = cli("import", str(csv_file), "--year", str(YEAR))
    assert r.returncode == 0, r.stderr
    assert "household HH-CLI: imported, 2 members, file" in r.stdout
    app = r.stdout.split(", file ")[1].split()[0]
    assert cli("recall", app, "--note", "head answered").returncode == 0
    r = cli("schedule", app)
    assert r.returncode == 0 and "اردیبهشت ۱۴۰۳" in r.stdout and "next: fees paid" in r.stdout
    r = cli("submit", app)
    assert r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr and "fees paid" in r.stderr
    r = cli("pay", app, "R-CLI")
    assert r.returncode == 0 and "۱٬۰۰۰٬۰۰۰ ریال" in r.stdout and ": paid;" in r.stdout
    r = cli("show", app)
    assert r.returncode == 0 and "CLI-kid" in r.stdout and "household HH-CLI" in r.stdout
    r = cli("report", "--from", FIRST, "--to", LAST, "--office", "QOM-1")
    assert r.returncode == 0 and "QOM-1" in r.stdout and "(2024-05-04)" in r.stdout
    r = cli("--token", TOKENS["approver"], "recall", app, "--note", "x")
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr

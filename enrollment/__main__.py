"""``python -m enrollment``: the card round from an office's command line, over gRPC.

    python -m enrollment --server 127.0.0.1:50051 --token TOKEN import households.csv --year 1403
    python -m enrollment ... recall 1 --note "head answered"
    python -m enrollment ... schedule 1
    python -m enrollment ... pay 1 R-100            # the whole amount due, or give AMOUNT
    python -m enrollment ... capture 1 captures/    # captures/<person_id>/finger_1.iso ...
    python -m enrollment ... report --from 1403/02/15 --to 1403/02/28

Every subcommand is one call of ``amayesh.v1.Enrollment`` (``capture`` one per member); ``--help``
after a subcommand says what it takes. Dates may be typed Jalali (``1403/02/15``) or Gregorian
(``2024-05-04``); they are shown Jalali, with the Gregorian date beside them. The token decides
the role (caseworker, unit_officer, approver, admin) and so what the server lets this run do.
Exit status: 0 done, 1 refused by the server (the reason is printed), 2 bad command line or files.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from amayesh.v1 import enrollment_pb2 as pb
from amayesh.v1 import enrollment_pb2_grpc as pb_grpc
from amayesh.v1 import matcher_pb2 as mpb
from enrollment.calendar import persian_digits, rials_text

RPC_TIMEOUT_S = 60.0
RECORD_SUFFIXES = (".iso", ".ansi", ".fmr")
IMAGE_SUFFIXES = (".png", ".wsq", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".jp2")
IMPORT_COLUMNS = (
    "household_code",
    "head_person_id",
    "phone",
    "office_id",
    "person_id",
    "given_name",
    "family_name",
    "father_name",
    "sex",
    "relation",
    "document_kind",
    "document_number",
    "document_expiry",
    "birth_date",
    "enrolled_before",
)
DETAIL_COLUMNS = ("person_id", "address", "occupation", "mobile", "landline", "workshop_code")

IMPORT_HELP = f"""CSV (UTF-8, with a header row), one row per member:
  {", ".join(IMPORT_COLUMNS)}
household_code, head_person_id, phone (the head's mobile, for SMS) and office_id repeat on every
row of a household; sex is M or F; relation head, spouse, child, ...; document_kind amayesh_card,
travel_permit or none; dates Jalali (1403/03/30) or Gregorian (2024-06-19), empty when unknown;
enrolled_before is yes/no (templates from an earlier round to verify against)."""

CAPTURE_HELP = """FOLDER holds one folder per member, named by person id:
  <person_id>/finger_<1-10>.iso|.ansi|.fmr   a minutiae record (ISO/IEC 19794-2 or ANSI 378), or
  <person_id>/finger_<1-10>.png|.wsq|...     a 500 dpi finger image,
  <person_id>/finger_<1-10>.missing          text: why that finger cannot be taken;
  <person_id>/iris_L.png, iris_R.png         eye images, or iris_L.npz / iris_R.npz holding bool
                                             arrays "code" and "mask" (rings, columns, bits);
  <person_id>/photo.jpg                      the live photo (any photo.* file)."""


class Failed(Exception):
    """The server refused a call, or a local file is unusable; the message says which."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Session:
    """One channel to the server and the caller's token."""

    def __init__(self, address: str, token: str, ca: str | None) -> None:
        opts = [("grpc.max_send_message_length", 64 << 20)]
        if ca:
            creds = grpc.ssl_channel_credentials(Path(ca).read_bytes())
            self.channel = grpc.secure_channel(address, creds, options=opts)
        else:
            self.channel = grpc.insecure_channel(address, options=opts)
        self.stub = pb_grpc.EnrollmentStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def __call__(self, rpc: str, request: Any) -> Any:
        try:
            return getattr(self.stub, rpc)(request, metadata=self.metadata, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            raise Failed(f"refused ({e.code().name}): {e.details()}") from None

    def close(self) -> None:
        self.channel.close()


# --- how things are shown ---------------------------------------------------------------------


def show_day(d: pb.Day) -> str:
    return f"{d.jalali_text} ({d.iso})" if d.iso else "-"


def show_file(f: pb.FileState) -> str:
    nxt = f"; next: {f.next_step}" if f.next_step else "; done"
    return f"پرونده {persian_digits(f.application_id)} (file {f.application_id}): {f.state}{nxt}"


def out(line: str = "") -> None:
    print(line, flush=True)


# --- subcommands ------------------------------------------------------------------------------


def cmd_add_office(s: Session, a: argparse.Namespace) -> None:
    o = s(
        "AddOffice",
        pb.Office(
            office_id=a.office_id,
            name=a.name,
            phone=a.phone,
            daily_capacity=a.capacity,
            opens_min=_minutes(a.opens),
            closes_min=_minutes(a.closes),
            working_weekdays=a.weekdays,
            payment_instructions=a.payment or "",
        ),
    )
    out(
        f"office {o.office_id} «{o.name}» added: {o.daily_capacity} households a day, "
        f"{o.opens_min // 60:02d}:{o.opens_min % 60:02d}-{o.closes_min // 60:02d}:"
        f"{o.closes_min % 60:02d}, weekdays {o.working_weekdays}"
    )


def cmd_open_round(s: Session, a: argparse.Namespace) -> None:
    r = s("OpenRound", pb.OpenRoundRequest(jalali_year=a.year, starts_on=a.first, ends_on=a.last))
    out(
        f"طرح {persian_digits(r.jalali_year)} (round {r.jalali_year}) open: "
        f"{show_day(r.starts_on)} .. {show_day(r.ends_on)}"
    )
    out(f"  cards valid {show_day(r.cards_valid_from)} .. {show_day(r.cards_valid_to)}")


def cmd_import(s: Session, a: argparse.Namespace) -> None:
    households = _read_households(Path(a.csv))
    r = s(
        "ImportHouseholds",
        pb.ImportHouseholdsRequest(households=households, jalali_year=a.year or 0),
    )
    refused = 0
    for h, res in zip(households, r.results, strict=True):
        if res.error:
            refused += 1
            out(f"household {res.household_code}: REFUSED ({res.status}) {res.error}")
            continue
        app = f", file {res.application_id}" if res.application_id else ""
        out(f"household {res.household_code}: imported, {len(h.members)} members{app}")
    out(f"{len(households) - refused} imported, {refused} refused")
    if refused:
        raise Failed(f"{refused} household(s) refused")


def cmd_open(s: Session, a: argparse.Namespace) -> None:
    f = s(
        "OpenApplication",
        pb.OpenApplicationRequest(jalali_year=a.year, household_code=a.household),
    )
    out(show_file(f))


def cmd_recall(s: Session, a: argparse.Namespace) -> None:
    f = s("Recall", pb.RecallRequest(application_id=a.app, call_note=a.note))
    out(f"recall SMS queued and the call logged. {show_file(f)}")


def cmd_schedule(s: Session, a: argparse.Namespace) -> None:
    r = s(
        "Schedule",
        pb.ScheduleRequest(
            application_id=a.app,
            office_id=a.office or "",
            on_or_after=a.on or "",
            exact_day=a.exact,
        ),
    )
    out(
        f"نوبت (appointment): {show_day(r.day)} ساعت {persian_digits(r.time)} ({r.time}), "
        f"office {r.office_id}; SMS with the fees queued"
    )
    out(show_file(r.file))


def cmd_pay(s: Session, a: argparse.Namespace) -> None:
    amount = a.amount
    if amount is None:
        v = s("GetApplication", pb.ApplicationRef(application_id=a.app))
        amount = v.due_rials - v.paid_rials
    r = s(
        "RecordPayment",
        pb.RecordPaymentRequest(
            application_id=a.app,
            receipt_number=a.receipt,
            amount_rials=amount,
            paid_on=a.paid_on or "",
        ),
    )
    out(
        f"receipt {a.receipt}: {rials_text(amount)} ({amount} rials); "
        f"paid {rials_text(r.paid_rials)} of {rials_text(r.due_rials)}"
    )
    out(show_file(r.file))


def cmd_documents(s: Session, a: argparse.Namespace) -> None:
    r = s("CollectDocuments", pb.ApplicationRef(application_id=a.app))
    for d in r.documents:
        out(f"  collected {d.kind} {d.number} of {d.person_id}, expiry {show_day(d.expiry)}")
    out(f"{len(r.documents)} document(s) collected. {show_file(r.file)}")


def cmd_event(s: Session, a: argparse.Namespace) -> None:
    new = None
    if a.new_member_csv:
        [household] = _read_households(Path(a.new_member_csv), need_household=False)
        if len(household.members) != 1:
            raise Failed("--new-member-csv holds exactly one member row", 2)
        new = household.members[0]
    r = s(
        "ReportVitalEvent",
        pb.ReportVitalEventRequest(
            application_id=a.app, kind=a.kind, note=a.note, person_id=a.person or "", new_member=new
        ),
    )
    out(f"vital event {r.event_id} ({a.kind}) reported; household sent to the authorised unit")
    out(show_file(r.file))


def cmd_record_event(s: Session, a: argparse.Namespace) -> None:
    f = s("RecordVitalEvent", pb.RecordVitalEventRequest(event_id=a.event, note=a.note))
    out(f"vital event {a.event} recorded. {show_file(f)}")


def cmd_capture(s: Session, a: argparse.Namespace) -> None:
    v = s("GetApplication", pb.ApplicationRef(application_id=a.app))
    folder = Path(a.folder)
    people = a.member or [m.member.person_id for m in v.members if m.status == "included"]
    failed = 0
    for pid in people:
        try:
            request = _capture_request(folder / pid, a.app, pid, v.household_code)
            r = s("Capture", request)
        except Failed as e:
            failed += 1
            out(f"  {pid}: {e}")
            continue
        items = ", ".join(str(i) for i in r.adjudication_ids) or "none"
        out(
            f"  {pid}: captured; 1:1 {r.verification}, templates {r.biometric_write}, "
            f"adjudication items: {items}"
        )
        last = r.file
        out(f"  {show_file(last)}")
    if failed:
        raise Failed(f"{failed} member(s) not captured")


def cmd_resolve(s: Session, a: argparse.Namespace) -> None:
    f = s(
        "ResolveAdjudication",
        pb.ResolveAdjudicationRequest(
            adjudication_id=a.adjudication, decision=a.decision, reason=a.reason
        ),
    )
    out(f"adjudication {a.adjudication}: {a.decision}. {show_file(f)}")


def cmd_details(s: Session, a: argparse.Namespace) -> None:
    rows = _read_csv(Path(a.csv), ("person_id", "address", "occupation", "mobile"))
    details = [
        pb.MemberDetails(
            person_id=r["person_id"],
            address=r["address"],
            occupation=r["occupation"],
            mobile=r["mobile"],
            landline=r.get("landline", ""),
            workshop_code=r.get("workshop_code", ""),
            extra={k: v for k, v in r.items() if k not in DETAIL_COLUMNS and v},
        )
        for r in rows
    ]
    f = s("RecordDetails", pb.RecordDetailsRequest(application_id=a.app, details=details))
    out(f"details of {len(details)} member(s) recorded. {show_file(f)}")


def cmd_submit(s: Session, a: argparse.Namespace) -> None:
    f = s("Submit", pb.ApplicationRef(application_id=a.app))
    out(f"sent to the ministry inbox. {show_file(f)}")


def cmd_approve(s: Session, a: argparse.Namespace) -> None:
    excluded = {}
    for item in a.exclude or ():
        pid, sep, why = item.partition("=")
        if not sep:
            raise Failed(f"--exclude takes PERSON_ID=REASON, got {item!r}", 2)
        excluded[pid] = why
    f = s(
        "Decide",
        pb.DecideRequest(
            application_id=a.app, approve=True, reason=a.reason or "", excluded=excluded
        ),
    )
    out(f"تأیید شد (approved). {show_file(f)}")


def cmd_reject(s: Session, a: argparse.Namespace) -> None:
    f = s("Decide", pb.DecideRequest(application_id=a.app, approve=False, reason=a.reason))
    out(f"رد شد (rejected, back to the caseworker). {show_file(f)}")


def cmd_issue(s: Session, a: argparse.Namespace) -> None:
    r = s("IssueCards", pb.ApplicationRef(application_id=a.app))
    for c in r.cards:
        out(
            f"  card {c.card_number} for {c.person_id}: valid {c.valid_from.jalali_text} .. "
            f"{c.valid_to.jalali_text}"
        )
    out(f"{len(r.cards)} card(s) issued; SMS queued. {show_file(r.file)}")


def cmd_deliver(s: Session, a: argparse.Namespace) -> None:
    to = a.to
    if not to:
        to = s("GetApplication", pb.ApplicationRef(application_id=a.app)).head_person_id
    f = s("HandOver", pb.HandOverRequest(application_id=a.app, received_by=to))
    out(f"cards handed over to {to}. {show_file(f)}")


def cmd_report(s: Session, a: argparse.Namespace) -> None:
    r = s(
        "GetDailyReport",
        pb.DailyReportRequest(first_day=a.first or "", last_day=a.last or "", office_id=a.office),
    )
    out(f"گزارش روزانه (daily report) {show_day(r.first_day)} .. {show_day(r.last_day)}")
    for title, rows in (
        ("نوبت‌ها (appointments)", r.appointments),
        ("کارت‌های صادرشده (cards issued)", r.cards_issued),
    ):
        out(f"{title}:")
        for row in rows:
            out(f"  {row.office_id:10} {show_day(row.day)}  {persian_digits(row.count)}")
        if not rows:
            out("  -")
    out(
        f"کارتابل وزارت (ministry inbox): {persian_digits(r.ministry_inbox_waiting)} "
        f"file(s) waiting"
    )
    for row in r.ministry_inbox_by_day:
        out(f"  {row.office_id:10} since {show_day(row.day)}  {persian_digits(row.count)}")


def cmd_inbox(s: Session, a: argparse.Namespace) -> None:
    rpc = "MinistryInbox" if a.which == "ministry" else "CaseworkerInbox"
    r = s(rpc, pb.InboxRequest())
    out(f"{a.which} inbox: {len(r.files)} file(s)")
    for f in r.files:
        why = f"; rejected: {f.rejection}" if f.rejection else ""
        out(
            f"  file {f.application_id} household {f.household_code} ({f.office_id}, round "
            f"{f.jalali_year}) since {show_day(f.since)}{why}"
        )


def cmd_show(s: Session, a: argparse.Namespace) -> None:
    v = s("GetApplication", pb.ApplicationRef(application_id=a.app))
    out(show_file(v.file))
    out(
        f"  household {v.household_code} (head {v.head_person_id}), office {v.office_id}, "
        f"round {v.jalali_year}"
    )
    if v.HasField("appointment"):
        out(f"  appointment {show_day(v.appointment.day)} {v.appointment.time}")
    out(f"  fees: paid {rials_text(v.paid_rials)} of {rials_text(v.due_rials)}")
    for m in v.members:
        who = f"{m.member.given_name} {m.member.family_name}"
        out(f"  {m.member.person_id:12} {who:24} {m.member.relation:8} {m.status}: {m.reason}")
    for j in v.adjudications:
        out(
            f"  adjudication {j.adjudication_id}: {j.person_id} vs {j.candidate_person_id} "
            f"({j.kind}) {j.state}"
        )
    for c in v.cards:
        handed = f", handed to {c.handed_over_to}" if c.handed_over_to else ""
        out(f"  card {c.card_number} {c.person_id}{handed}")


def cmd_household(s: Session, a: argparse.Namespace) -> None:
    v = s("GetHousehold", pb.GetHouseholdRequest(household_code=a.household))
    h = v.household
    out(f"household {h.household_code}: head {h.head_person_id}, phone {h.phone}, {h.office_id}")
    for m in h.members:
        out(f"  {m.person_id:12} {m.given_name} {m.family_name} ({m.relation}, {m.document_kind})")
    for year, f in zip(v.application_years, v.applications, strict=True):
        out(f"  round {year}: {show_file(f)}")


def cmd_audit(s: Session, a: argparse.Namespace) -> None:
    r = s("GetAuditLog", pb.ApplicationRef(application_id=a.app))
    for e in r.entries:
        move = f"{e.from_state or '-'} -> {e.to_state}" if e.to_state else ""
        out(f"  {e.day.jalali} {e.at[11:19]} {e.actor} ({e.role}) {e.action} {move}: {e.detail}")


# --- files ------------------------------------------------------------------------------------


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = [
                {k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(f)
            ]
    except OSError as e:
        raise Failed(f"cannot read {path}: {e}", 2) from None
    if not rows:
        raise Failed(f"{path} holds no rows", 2)
    lacking = [c for c in required if c not in rows[0]]
    if lacking:
        raise Failed(f"{path}: missing column(s) {', '.join(lacking)}", 2)
    return rows


def _read_households(path: Path, need_household: bool = True) -> list[pb.Household]:
    member_columns = IMPORT_COLUMNS[4:-1]
    required = IMPORT_COLUMNS[:-1] if need_household else member_columns
    households: dict[str, pb.Household] = {}
    for r in _read_csv(path, required):
        code = r.get("household_code", "")
        h = households.get(code)
        if h is None:
            h = households[code] = pb.Household(
                household_code=code,
                head_person_id=r.get("head_person_id", ""),
                phone=r.get("phone", ""),
                office_id=r.get("office_id", ""),
            )
        h.members.append(
            pb.Member(
                **{c: r[c] for c in member_columns},
                enrolled_before=r.get("enrolled_before", "").lower() in ("yes", "y", "true", "1"),
            )
        )
    return list(households.values())


def _capture_request(folder: Path, app: int, pid: str, household: str) -> pb.CaptureRequest:
    if not folder.is_dir():
        raise Failed(f"no capture folder {folder}")
    request = pb.CaptureRequest(application_id=app, person_id=pid, household_code=household)
    for f in sorted(folder.iterdir()):
        stem, suffix = f.stem.lower(), f.suffix.lower()
        if stem.startswith("finger_"):
            pos = int(stem[len("finger_") :]) if stem[len("finger_") :].isdigit() else 0
            if not 1 <= pos <= 10:
                raise Failed(f"{f}: finger files are finger_1 .. finger_10")
            if suffix == ".missing":
                request.missing_fingers[pos] = f.read_text(encoding="utf-8").strip()
            elif suffix in RECORD_SUFFIXES:
                request.fingers.append(mpb.FingerSample(position=pos, record=f.read_bytes()))
            elif suffix in IMAGE_SUFFIXES:
                request.fingers.append(mpb.FingerSample(position=pos, image=f.read_bytes()))
        elif stem in ("iris_l", "iris_r"):
            eye = mpb.EYE_LEFT if stem == "iris_l" else mpb.EYE_RIGHT
            if suffix == ".npz":
                request.irises.append(mpb.IrisSample(eye=eye, code=_iris_code(f)))
            elif suffix in IMAGE_SUFFIXES:
                request.irises.append(mpb.IrisSample(eye=eye, image=f.read_bytes()))
        elif stem == "photo":
            request.photo = f.read_bytes()
    return request


def _iris_code(path: Path) -> mpb.IrisCode:
    with np.load(path) as z:
        if "code" not in z or "mask" not in z:
            raise Failed(f"{path}: an iris file holds arrays 'code' and 'mask'", 2)
        code, mask = np.asarray(z["code"], bool), np.asarray(z["mask"], bool)
    if code.ndim != 3 or code.shape != mask.shape:
        raise Failed(f"{path}: code and mask are bool arrays (rings, columns, bits)", 2)
    rings, columns, bits = code.shape
    return mpb.IrisCode(
        rings=rings,
        columns=columns,
        bits=bits,
        code=np.packbits(code).tobytes(),
        mask=np.packbits(mask).tobytes(),
    )


def _minutes(text: str | None) -> int:
    if not text:
        return 0
    h, sep, m = text.partition(":")
    if not sep or not h.isdigit() or not m.isdigit():
        raise Failed(f"a time is HH:MM, got {text!r}", 2)
    return int(h) * 60 + int(m)


# --- the command line -------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m enrollment",
        description="The Amayesh card round, from an office (calls amayesh.v1.Enrollment).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server",
        default=env.get("AMAYESH_SERVER", "127.0.0.1:50051"),
        help="HOST:PORT of the amayesh server (env AMAYESH_SERVER)",
    )
    p.add_argument(
        "--token", default=env.get("AMAYESH_TOKEN"), help="bearer token (env AMAYESH_TOKEN)"
    )
    p.add_argument("--ca", help="CA certificate (PEM) of a TLS server; plaintext without it")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[Session, argparse.Namespace], None], text: str, **kw: Any
    ) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=text, description=text, **kw)
        c.set_defaults(run=fn)
        return c

    def app(c: argparse.ArgumentParser) -> argparse.ArgumentParser:
        c.add_argument("app", type=int, help="application (file) id")
        return c

    c = add("add-office", cmd_add_office, "add a card office (admin)")
    c.add_argument("office_id")
    c.add_argument("name")
    c.add_argument("phone")
    c.add_argument("--capacity", type=int, required=True, help="households a working day")
    c.add_argument("--opens", help="HH:MM (default 08:00)")
    c.add_argument("--closes", help="HH:MM (default 14:00)")
    c.add_argument("--weekdays", default="", help="Python weekday digits (default 56012: Sat-Wed)")
    c.add_argument("--payment", help="how to pay the fees (the SMS says it)")
    c = add("open-round", cmd_open_round, "open the round of a Jalali year (admin)")
    c.add_argument("year", type=int, help="Jalali year, e.g. 1403")
    c.add_argument("first", help="first day (1403/02/15 or 2024-05-04)")
    c.add_argument("last", help="last day, 7-21 days on")
    c = add(
        "import",
        cmd_import,
        "import households from a CSV",
        epilog=IMPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("csv")
    c.add_argument("--year", type=int, help="also put each household into this round")
    c = add("open", cmd_open, "put an imported household into a round")
    c.add_argument("year", type=int)
    c.add_argument("household")
    c = app(add("recall", cmd_recall, "recall the household (SMS, and the office's phone call)"))
    c.add_argument("--note", required=True, help="the phone call: who answered, what was said")
    c = app(add("schedule", cmd_schedule, "give the household an appointment"))
    c.add_argument("--office", help="another office than the household's")
    c.add_argument("--on", help="on or after this day")
    c.add_argument("--exact", action="store_true", help="only that day")
    c = app(add("pay", cmd_pay, "record a bank receipt for the fees"))
    c.add_argument("receipt", help="receipt number")
    c.add_argument("amount", nargs="?", type=int, help="rials (default: what is still due)")
    c.add_argument("--paid-on", help="the receipt's date (default today)")
    app(add("documents", cmd_documents, "collect the members' old cards and permits"))
    c = app(add("event", cmd_event, "report a birth, death, marriage, ... seen at the office"))
    c.add_argument(
        "kind", choices=("birth", "death", "marriage", "divorce", "member_left", "member_joined")
    )
    c.add_argument("--note", required=True)
    c.add_argument("--person", help="the member concerned (death, marriage, divorce, leaving)")
    c.add_argument("--new-member-csv", help="one member row, import columns (birth, joining)")
    c = add("record-event", cmd_record_event, "record a vital event (unit officer)")
    c.add_argument("event", type=int, help="event id")
    c.add_argument("--note", required=True)
    c = app(
        add(
            "capture",
            cmd_capture,
            "capture members (all in the file, or --member ...)",
            epilog=CAPTURE_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    c.add_argument("folder")
    c.add_argument("--member", action="append", help="capture only this person (repeatable)")
    c = add("resolve", cmd_resolve, "resolve an adjudication item")
    c.add_argument("adjudication", type=int)
    c.add_argument("decision", choices=("same_person", "different_person"))
    c.add_argument("--reason", required=True, help="at least 10 characters")
    c = app(add("details", cmd_details, "record the members' details from a CSV"))
    c.add_argument("csv", help=f"columns: {', '.join(DETAIL_COLUMNS)} (others kept as extra)")
    app(add("submit", cmd_submit, "send the file to the ministry inbox"))
    c = app(add("approve", cmd_approve, "approve a file (approver)"))
    c.add_argument("--reason", default="")
    c.add_argument("--exclude", action="append", help="PERSON_ID=REASON: no card for them")
    c = app(add("reject", cmd_reject, "reject a file back to the caseworker (approver)"))
    c.add_argument("--reason", required=True)
    app(add("issue", cmd_issue, "issue the cards of an approved file"))
    c = app(add("deliver", cmd_deliver, "hand the cards over to the household head"))
    c.add_argument("--to", help="the head's person id (default: the file's head)")
    c = add("report", cmd_report, "daily reports: appointments, ministry inbox, cards issued")
    c.add_argument("--from", dest="first", help="first day (default today)")
    c.add_argument("--to", dest="last", help="last day (default the first)")
    c.add_argument("--office", default="", help="one office only")
    c = add("inbox", cmd_inbox, "files waiting in an inbox")
    c.add_argument("which", choices=("ministry", "caseworker"))
    app(add("show", cmd_show, "one file: members, appointment, fees, adjudications, cards"))
    c = add("household", cmd_household, "a household and its files")
    c.add_argument("household")
    app(add("audit", cmd_audit, "the audit log of a file"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        print("python -m enrollment: --token (or AMAYESH_TOKEN) is required", file=sys.stderr)
        return 2
    session = Session(args.server, args.token, args.ca)
    try:
        args.run(session, args)
    except Failed as e:
        print(f"{args.command}: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except OSError as e:
        print(f"{args.command}: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

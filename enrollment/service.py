"""The gRPC servicer of ``amayesh.v1.Enrollment``: the card round's only module that knows gRPC.

Each RPC: authenticate the bearer token and check the role (:mod:`matcher.auth`, actions
``enr.*``), turn the request into the workflow's values, call :class:`~enrollment.workflow.Workflow`
(which checks the role, the file's state and the inputs again, and audits), and render the answer
with dates in both calendars. Errors are mapped once, in :func:`status_of`: the workflow's classes
by :data:`enrollment.errors.STATUS_NAMES`, a refusal of the matching service
(:class:`~enrollment.errors.BiometricServiceError`) with the status that service gave. Errors not
mapped are bugs: they reach gRPC as UNKNOWN with a traceback in the server log.

The servicer is registered before the server starts, but answers UNAVAILABLE until :meth:`start`
hands it the workflow (whose matching client needs the running server and its loaded galleries).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np

from amayesh.v1 import enrollment_pb2 as pb
from amayesh.v1 import enrollment_pb2_grpc as pb_grpc
from amayesh.v1 import matcher_pb2 as mpb
from enrollment import reports
from enrollment.appointments import Office, Round
from enrollment.calendar import card_validity, parse_date, to_jalali, to_jalali_text
from enrollment.errors import STATUS_NAMES, BiometricServiceError, InvalidInput
from enrollment.store import ConcurrentChange, EnrollmentStore, json_mapping
from enrollment.workflow import NEXT_STEP, CaptureSample, MemberDetails, MemberRecord, Workflow
from matcher.auth import Authenticator, Forbidden, Unauthenticated
from matcher.client import RECORD_MAGIC
from matcher.store import Actor

__all__ = ["EnrollmentService", "status_of", "SERVICE_NAME"]

SERVICE_NAME = "amayesh.v1.Enrollment"
MAX_HOUSEHOLDS_PER_IMPORT = 10_000
IMAGE_DPI = 500  # finger images reach the matching service as 500 dpi captures
_EYE_OF = {mpb.EYE_LEFT: "L", mpb.EYE_RIGHT: "R"}

STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (ConcurrentChange, grpc.StatusCode.ABORTED),
    *((cls, grpc.StatusCode[name]) for cls, name in STATUS_NAMES),
)
_MAPPED = tuple(cls for cls, _ in STATUS_OF)


def status_of(error: BaseException) -> grpc.StatusCode:
    """The gRPC status of a mapped error (see the module docstring)."""
    if isinstance(error, BiometricServiceError):
        code = grpc.StatusCode.__members__.get(error.status)
        if code is not None and code != grpc.StatusCode.OK:
            return code
    return next(c for t, c in STATUS_OF if isinstance(error, t))


Handler = Callable[[Any, Any, Any], Any]


def rpc(action: str) -> Callable[[Callable[..., Any]], Handler]:
    """Authenticate, authorise ``enr.<action>``, call, and map errors to gRPC statuses."""

    def wrap(method: Callable[..., Any]) -> Handler:
        @functools.wraps(method)
        def run(self: EnrollmentService, request: Any, context: grpc.ServicerContext) -> Any:
            workflow = self.workflow
            if workflow is None:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the card workflow is starting")
            try:
                actor = self.auth.actor(context.invocation_metadata(), f"enr.{action}")
                return method(self, workflow, request, actor)
            except _MAPPED as e:
                context.abort(status_of(e), str(e))

        return run

    return wrap


class EnrollmentService(pb_grpc.EnrollmentServicer):
    """``store``: the enrollment store (read views); the workflow arrives with :meth:`start`."""

    def __init__(self, store: EnrollmentStore, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth
        self.workflow: Workflow | None = None
        self.ready = threading.Event()

    def start(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.ready.set()

    # ------------------------------------------------------------------------ set-up
    @rpc("add_office")
    def AddOffice(self, wf: Workflow, request: pb.Office, actor: Actor) -> pb.Office:
        defaults = Office("x", "x", "x", 1)
        office = Office(
            office_id=request.office_id,
            name=request.name,
            phone=request.phone,
            daily_capacity=int(request.daily_capacity),
            opens_min=int(request.opens_min) or defaults.opens_min,
            closes_min=int(request.closes_min) or defaults.closes_min,
            working_weekdays=request.working_weekdays or defaults.working_weekdays,
            payment_instructions=request.payment_instructions or defaults.payment_instructions,
        )
        wf.add_office(actor, office)
        return pb.Office(**{k: getattr(office, k) for k in Office.__dataclass_fields__})

    @rpc("open_round")
    def OpenRound(self, wf: Workflow, request: pb.OpenRoundRequest, actor: Actor) -> pb.Round:
        rnd = Round(
            int(request.jalali_year),
            _date("starts_on", request.starts_on),
            _date("ends_on", request.ends_on),
        )
        wf.open_round(actor, rnd)
        first, last = card_validity(rnd.jalali_year)
        return pb.Round(
            jalali_year=rnd.jalali_year,
            starts_on=day(rnd.starts_on),
            ends_on=day(rnd.ends_on),
            cards_valid_from=day(first),
            cards_valid_to=day(last),
        )

    @rpc("import_households")
    def ImportHouseholds(
        self, wf: Workflow, request: pb.ImportHouseholdsRequest, actor: Actor
    ) -> pb.ImportHouseholdsResponse:
        if len(request.households) > MAX_HOUSEHOLDS_PER_IMPORT:
            raise InvalidInput(f"at most {MAX_HOUSEHOLDS_PER_IMPORT} households per import")
        results = []
        for h in request.households:
            result = pb.ImportResult(household_code=h.household_code)
            try:
                wf.import_household(
                    actor,
                    h.household_code,
                    h.head_person_id,
                    h.phone,
                    h.office_id,
                    [member_record(m) for m in h.members],
                )
                result.imported = True
                if request.jalali_year:
                    result.application_id = wf.open_application(
                        actor, int(request.jalali_year), h.household_code
                    )
            except (Forbidden, Unauthenticated):
                raise
            except _MAPPED as e:
                result.error = str(e)
                result.status = status_of(e).name
            results.append(result)
        return pb.ImportHouseholdsResponse(results=results)

    @rpc("open_application")
    def OpenApplication(
        self, wf: Workflow, request: pb.OpenApplicationRequest, actor: Actor
    ) -> pb.FileState:
        app = wf.open_application(actor, int(request.jalali_year), request.household_code)
        return _file(wf, app)

    # ------------------------------------------------------------------------ the round
    @rpc("recall")
    def Recall(self, wf: Workflow, request: pb.RecallRequest, actor: Actor) -> pb.FileState:
        wf.recall(actor, request.application_id, request.call_note)
        return _file(wf, request.application_id)

    @rpc("schedule")
    def Schedule(self, wf: Workflow, request: pb.ScheduleRequest, actor: Actor) -> pb.Appointment:
        slot = wf.schedule(
            actor,
            request.application_id,
            office_id=request.office_id or None,
            on_or_after=_date("on_or_after", request.on_or_after) if request.on_or_after else None,
            exact_day=request.exact_day,
        )
        return pb.Appointment(
            application_id=request.application_id,
            office_id=slot.office_id,
            day=day(slot.day),
            time=slot.time_text,
            slot=slot.slot,
            file=_file(wf, request.application_id),
        )

    @rpc("record_payment")
    def RecordPayment(
        self, wf: Workflow, request: pb.RecordPaymentRequest, actor: Actor
    ) -> pb.Fees:
        due, paid = wf.record_payment(
            actor,
            request.application_id,
            request.receipt_number,
            int(request.amount_rials),
            _date("paid_on", request.paid_on) if request.paid_on else None,
        )
        return pb.Fees(due_rials=due, paid_rials=paid, file=_file(wf, request.application_id))

    @rpc("collect_documents")
    def CollectDocuments(
        self, wf: Workflow, request: pb.ApplicationRef, actor: Actor
    ) -> pb.Documents:
        docs = wf.collect_documents(actor, request.application_id)
        return pb.Documents(
            documents=[
                pb.Document(
                    person_id=d["person_id"],
                    kind=d["kind"],
                    number=d["number"],
                    expiry=day(d["expiry"]) if d["expiry"] else None,
                )
                for d in docs
            ],
            file=_file(wf, request.application_id),
        )

    @rpc("report_vital_event")
    def ReportVitalEvent(
        self, wf: Workflow, request: pb.ReportVitalEventRequest, actor: Actor
    ) -> pb.VitalEvent:
        event_id = wf.report_vital_event(
            actor,
            request.application_id,
            request.kind,
            request.note,
            person_id=request.person_id or None,
            new_member=member_record(request.new_member)
            if request.HasField("new_member")
            else None,
        )
        return pb.VitalEvent(event_id=event_id, file=_file(wf, request.application_id))

    @rpc("record_vital_event")
    def RecordVitalEvent(
        self, wf: Workflow, request: pb.RecordVitalEventRequest, actor: Actor
    ) -> pb.FileState:
        wf.record_vital_event(actor, request.event_id, request.note)
        return _file(wf, reports.event_application(self.store, request.event_id))

    @rpc("capture")
    def Capture(self, wf: Workflow, request: pb.CaptureRequest, actor: Actor) -> pb.CaptureResponse:
        sample = CaptureSample(
            household_code=request.household_code,
            fingers=_fingers(request.fingers),
            irises=_irises(request.irises),
            photo=bytes(request.photo),
            missing_fingers={int(k): v for k, v in request.missing_fingers.items()},
        )
        r = wf.capture(actor, request.application_id, request.person_id, sample)
        return pb.CaptureResponse(
            person_id=r.person_id,
            verification=r.verification,
            biometric_write=r.biometric_write,
            adjudication_ids=list(r.adjudications),
            file=_file(wf, request.application_id, r.state),
        )

    @rpc("resolve_adjudication")
    def ResolveAdjudication(
        self, wf: Workflow, request: pb.ResolveAdjudicationRequest, actor: Actor
    ) -> pb.FileState:
        wf.resolve_adjudication(actor, request.adjudication_id, request.decision, request.reason)
        return _file(wf, reports.adjudication_application(self.store, request.adjudication_id))

    @rpc("record_details")
    def RecordDetails(
        self, wf: Workflow, request: pb.RecordDetailsRequest, actor: Actor
    ) -> pb.FileState:
        details: dict[str, MemberDetails] = {}
        for d in request.details:
            if d.person_id in details:
                raise InvalidInput(f"details of {d.person_id} are given twice")
            details[d.person_id] = MemberDetails(
                address=d.address,
                occupation=d.occupation,
                mobile=d.mobile,
                landline=d.landline,
                workshop_code=d.workshop_code,
                extra=dict(d.extra),
            )
        wf.record_details(actor, request.application_id, details)
        return _file(wf, request.application_id)

    @rpc("submit")
    def Submit(self, wf: Workflow, request: pb.ApplicationRef, actor: Actor) -> pb.FileState:
        wf.submit(actor, request.application_id)
        return _file(wf, request.application_id)

    @rpc("decide")
    def Decide(self, wf: Workflow, request: pb.DecideRequest, actor: Actor) -> pb.FileState:
        wf.decide(
            actor,
            request.application_id,
            request.approve,
            request.reason,
            dict(request.excluded),
        )
        return _file(wf, request.application_id)

    @rpc("issue_cards")
    def IssueCards(self, wf: Workflow, request: pb.ApplicationRef, actor: Actor) -> pb.Cards:
        issued = wf.issue_cards(actor, request.application_id)
        return pb.Cards(cards=[_card(c) for c in issued], file=_file(wf, request.application_id))

    @rpc("hand_over")
    def HandOver(self, wf: Workflow, request: pb.HandOverRequest, actor: Actor) -> pb.FileState:
        wf.hand_over(actor, request.application_id, request.received_by)
        return _file(wf, request.application_id)

    # ------------------------------------------------------------------------ reading
    @rpc("ministry_inbox")
    def MinistryInbox(self, wf: Workflow, request: pb.InboxRequest, actor: Actor) -> pb.Inbox:
        return _inbox(wf.ministry_inbox(actor))

    @rpc("caseworker_inbox")
    def CaseworkerInbox(self, wf: Workflow, request: pb.InboxRequest, actor: Actor) -> pb.Inbox:
        return _inbox(wf.caseworker_inbox(actor))

    @rpc("read_file")
    def GetApplication(
        self, wf: Workflow, request: pb.ApplicationRef, actor: Actor
    ) -> pb.ApplicationView:
        v = reports.application_view(self.store, request.application_id)
        file = pb.FileState(
            application_id=v["application_id"], state=v["state"], next_step=v["next_step"]
        )
        appt = v["appointment"]
        return pb.ApplicationView(
            file=file,
            jalali_year=v["jalali_year"],
            household_code=v["household_code"],
            head_person_id=v["head_person_id"],
            office_id=v["office_id"],
            members=[
                pb.FileMember(member=member_message(m), status=status, reason=reason)
                for m, status, reason in v["members"]
            ],
            appointment=None
            if appt is None
            else pb.Appointment(
                application_id=v["application_id"],
                office_id=appt["office_id"],
                day=day(appt["day"]),
                time=f"{appt['starts_min'] // 60:02d}:{appt['starts_min'] % 60:02d}",
                slot=appt["slot"],
                file=file,
            ),
            due_rials=v["due_rials"],
            paid_rials=v["paid_rials"],
            adjudications=[
                pb.Adjudication(
                    adjudication_id=a["adjudication_id"],
                    person_id=a["person_id"],
                    candidate_person_id=a["candidate_person_id"],
                    kind=a["kind"],
                    state=a["state"],
                    scores={k: float(s) for k, s in json_mapping(a["scores"]).items()},
                    reason=a["reason"] or "",
                )
                for a in v["adjudications"]
            ],
            cards=[_card(c) for c in v["cards"]],
        )

    @rpc("read_file")
    def GetHousehold(
        self, wf: Workflow, request: pb.GetHouseholdRequest, actor: Actor
    ) -> pb.HouseholdView:
        v = reports.household_view(self.store, request.household_code)
        return pb.HouseholdView(
            household=pb.Household(
                household_code=v["household_code"],
                head_person_id=v["head_person_id"],
                phone=v["phone"],
                office_id=v["office_id"],
                members=[member_message(m) for m in v["members"]],
            ),
            applications=[
                pb.FileState(
                    application_id=a["application_id"],
                    state=a["state"],
                    next_step=NEXT_STEP[a["state"]],
                )
                for a in v["applications"]
            ],
            application_years=[a["jalali_year"] for a in v["applications"]],
        )

    @rpc("read_file")
    def GetAuditLog(self, wf: Workflow, request: pb.ApplicationRef, actor: Actor) -> pb.AuditLog:
        wf.state(request.application_id)  # NOT_FOUND for a file that does not exist
        return pb.AuditLog(
            entries=[
                pb.AuditEntry(
                    seq=r["seq"],
                    at=r["at"].isoformat(),
                    day=day(reports.local_day(r["at"])),
                    actor=r["actor"],
                    role=r["role"],
                    action=r["action"],
                    from_state=r["from_state"] or "",
                    to_state=r["to_state"] or "",
                    detail=r["detail"],
                )
                for r in wf.audit_log(request.application_id)
            ]
        )

    @rpc("reports")
    def GetDailyReport(
        self, wf: Workflow, request: pb.DailyReportRequest, actor: Actor
    ) -> pb.DailyReport:
        first = _date("first_day", request.first_day) if request.first_day else wf.today()
        last = _date("last_day", request.last_day) if request.last_day else first
        r = reports.daily_report(self.store, first, last, request.office_id or None)

        def rows(items: list[tuple[str, dt.date, int]]) -> list[pb.OfficeDayCount]:
            return [pb.OfficeDayCount(office_id=o, day=day(d), count=n) for o, d, n in items]

        return pb.DailyReport(
            first_day=day(first),
            last_day=day(last),
            appointments=rows(r["appointments"]),
            cards_issued=rows(r["cards_issued"]),
            ministry_inbox_waiting=r["ministry_waiting"],
            ministry_inbox_by_day=rows(r["ministry_waiting_by_day"]),
        )


# --- conversions ------------------------------------------------------------------------------


def day(value: dt.date) -> pb.Day:
    """A date in both calendars."""
    j = to_jalali(value)
    return pb.Day(
        iso=value.isoformat(),
        jalali=f"{j.year:04d}/{j.month:02d}/{j.day:02d}",
        jalali_text=to_jalali_text(value),
    )


def member_record(m: pb.Member) -> MemberRecord:
    return MemberRecord(
        person_id=m.person_id,
        given_name=m.given_name,
        family_name=m.family_name,
        father_name=m.father_name,
        sex=m.sex,
        relation=m.relation,
        document_kind=m.document_kind,
        document_number=m.document_number or None,
        document_expiry=_date("document_expiry", m.document_expiry) if m.document_expiry else None,
        birth_date=_date("birth_date", m.birth_date) if m.birth_date else None,
        enrolled_before=m.enrolled_before,
    )


def member_message(m: MemberRecord) -> pb.Member:
    return pb.Member(
        person_id=m.person_id,
        given_name=m.given_name,
        family_name=m.family_name,
        father_name=m.father_name,
        sex=m.sex,
        relation=m.relation,
        document_kind=m.document_kind,
        document_number=m.document_number or "",
        document_expiry=m.document_expiry.isoformat() if m.document_expiry else "",
        birth_date=m.birth_date.isoformat() if m.birth_date else "",
        enrolled_before=m.enrolled_before,
    )


def _date(what: str, text: str) -> dt.date:
    try:
        return parse_date(text)
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e}") from None


def _file(wf: Workflow, application_id: int, state: str | None = None) -> pb.FileState:
    state = state or wf.state(application_id)
    return pb.FileState(application_id=application_id, state=state, next_step=NEXT_STEP[state])


def _fingers(samples: Any) -> dict[int, bytes]:
    """ISO position -> record or image bytes, as :class:`~matcher.client.MatcherClient` takes."""
    out: dict[int, bytes] = {}
    for k, s in enumerate(samples):
        pos = int(s.position)
        if not 1 <= pos <= 10:
            raise InvalidInput(f"finger {k}: the ISO position is 1-10, got {pos}")
        if pos in out:
            raise InvalidInput(f"finger position {pos} is given twice")
        kind = s.WhichOneof("data")
        if kind == "record":
            if not s.record.startswith(RECORD_MAGIC):
                raise InvalidInput(
                    f"finger {pos}: not an ISO/IEC 19794-2 or ANSI 378 record (no 'FMR' header)"
                )
            out[pos] = bytes(s.record)
        elif kind == "image":
            if s.dpi and s.dpi != IMAGE_DPI:
                raise InvalidInput(f"finger {pos}: images are taken at {IMAGE_DPI} dpi")
            out[pos] = bytes(s.image)
        else:
            raise InvalidInput(f"finger {pos}: capture takes a minutiae record or an image")
    return out


def _irises(samples: Any) -> dict[str, Any]:
    """ "L"/"R" -> (code, mask) bool arrays, or eye image bytes."""
    out: dict[str, Any] = {}
    for k, s in enumerate(samples):
        eye = _EYE_OF.get(s.eye)
        if eye is None:
            raise InvalidInput(f"iris {k}: the eye is EYE_LEFT or EYE_RIGHT")
        if eye in out:
            raise InvalidInput(f"eye {eye} is given twice")
        kind = s.WhichOneof("data")
        if kind == "code":
            c = s.code
            shape = (int(c.rings), int(c.columns), int(c.bits))
            n = shape[0] * shape[1] * shape[2]
            need = -(-n // 8)
            if n == 0 or len(c.code) != need or len(c.mask) != need:
                raise InvalidInput(
                    f"iris {eye}: code and mask are np.packbits of {shape} bits ({need} bytes each)"
                )
            out[eye] = tuple(
                np.unpackbits(np.frombuffer(b, np.uint8))[:n].reshape(shape).astype(bool)
                for b in (c.code, c.mask)
            )
        elif kind == "image":
            out[eye] = bytes(s.image)
        else:
            raise InvalidInput(f"iris {eye}: capture takes a code with its mask, or an image")
    return out


def _card(c: Mapping[str, Any]) -> pb.Card:
    at = c.get("handed_over_at")
    return pb.Card(
        card_number=c["card_number"],
        person_id=c["person_id"],
        valid_from=day(c["valid_from"]),
        valid_to=day(c["valid_to"]),
        handed_over_to=c.get("handed_over_to") or "",
        handed_over_by=c.get("handed_over_by") or "",
        handed_over_at=at.isoformat() if at else "",
    )


def _inbox(files: list[dict[str, Any]]) -> pb.Inbox:
    return pb.Inbox(
        files=[
            pb.InboxItem(
                application_id=f["application_id"],
                household_code=f["household_code"],
                jalali_year=f["jalali_year"],
                office_id=f["office_id"],
                since=day(reports.local_day(f["updated_at"])),
                rejection=f.get("rejection") or "",
            )
            for f in files
        ]
    )

"""The gRPC servicer of ``amayesh.v1.Matcher``: the only module that knows gRPC types.

Each RPC: authenticate the bearer token and check the role (:mod:`matcher.auth`), turn the
request's samples into templates (:mod:`matcher.samples`), call the :class:`~matcher.engine.Engine`,
and map the answer back. Errors are mapped once, in :data:`STATUS_OF`; a matcher error's message
goes to the caller as it is (it names what was wrong, never biometric bytes). Errors not in the
table are bugs: they reach gRPC as UNKNOWN with a traceback in the server log.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np

from amayesh.v1 import matcher_pb2 as pb
from amayesh.v1 import matcher_pb2_grpc as pb_grpc
from matcher import errors
from matcher.auth import Authenticator, Forbidden, Unauthenticated
from matcher.crypto import StoreIntegrityError
from matcher.dedup import DedupRunner
from matcher.engine import Engine
from matcher.iris import IrisGeometry, IrisTemplate
from matcher.metrics import Metrics
from matcher.samples import finger_template, iris_template
from matcher.store import Actor, Biometrics, PersonInfo
from matcher.templates import FingerTemplate

log = logging.getLogger("amayesh.service")

VERSION = "0.1.0"

STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (errors.UnknownId, grpc.StatusCode.NOT_FOUND),
    (errors.DuplicateId, grpc.StatusCode.ALREADY_EXISTS),
    (errors.QualityTooLow, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NothingToCompare, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.InvalidImage, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidTemplate, grpc.StatusCode.INVALID_ARGUMENT),
    (StoreIntegrityError, grpc.StatusCode.DATA_LOSS),
    (errors.DeviceUnavailable, grpc.StatusCode.UNAVAILABLE),
)

_EYE_OF = {pb.EYE_LEFT: "L", pb.EYE_RIGHT: "R"}
_PB_EYE = {"L": pb.EYE_LEFT, "R": pb.EYE_RIGHT}
MAX_SAMPLES = 10  # per modality and request: ten fingers, two eyes
MAX_RESTRICT = 100_000
WATCH_POLL_S = 0.5
_WRITES = frozenset({"enroll", "update", "delete"})

Handler = Callable[[Any, Any, Any], Any]


def rpc(action: str) -> Callable[[Callable[..., Any]], Handler]:
    """Authenticate, authorise ``action``, call, and map matcher errors to gRPC statuses."""

    def wrap(method: Callable[..., Any]) -> Handler:
        name = method.__name__

        @functools.wraps(method)
        def run(self: MatcherService, request: Any, context: grpc.ServicerContext) -> Any:
            t0 = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                if not self.ready.is_set():
                    code = grpc.StatusCode.UNAVAILABLE
                    context.abort(code, "the galleries are still loading")
                try:
                    actor = self.auth.actor(context.invocation_metadata(), action)
                    return method(self, request, context, actor)
                except tuple(e for e, _ in STATUS_OF) as e:
                    code = next(c for t, c in STATUS_OF if isinstance(e, t))
                    context.abort(code, str(e))
                except Exception:
                    code = grpc.StatusCode.UNKNOWN  # a bug: counted as such, then gRPC's own
                    raise
            finally:
                self.metrics.calls.labels(name, code.name).inc()
                self.metrics.latency.labels(name).observe(time.perf_counter() - t0)
                if action in _WRITES and code == grpc.StatusCode.OK:
                    self.metrics.set_counts(self.engine.counts())

        return run

    return wrap


class MatcherService(pb_grpc.MatcherServicer):
    def __init__(self, engine: Engine, auth: Authenticator, store_kind: str) -> None:
        self.engine = engine
        self.auth = auth
        self.store_kind = store_kind
        self.ready = threading.Event()  # set once the galleries hold the store's contents
        self.dedup = DedupRunner(engine)
        self.metrics = Metrics()

    # ------------------------------------------------------------------------ conversions
    def _finger(self, s: pb.FingerSample, what: str) -> tuple[int, FingerTemplate, bytes | None]:
        pos = int(s.position)
        if pos > 10:
            raise errors.InvalidTemplate(f"{what}: finger position must be 0-10, got {pos}")
        dpi = int(s.dpi) or 500
        kind = s.WhichOneof("data")
        if kind == "record":
            t = finger_template(s.record, position=pos)
            image = None
        elif kind == "image":
            t = finger_template(s.image, position=pos, dpi=dpi)
            image = bytes(s.image)
        elif kind == "minutiae":
            m = s.minutiae
            n = len(m.x)
            t = (
                FingerTemplate(
                    x=np.asarray(m.x, np.float32),
                    y=np.asarray(m.y, np.float32),
                    theta=np.asarray(m.theta, np.float32),
                    kind=_bytes_or_none(m.kind),
                    quality=_bytes_or_none(m.quality),
                    width=int(m.width),
                    height=int(m.height),
                    dpi=dpi,
                    position=pos,
                )
                if n
                else _no_minutiae(what)
            )
            image = None
        else:
            raise errors.InvalidTemplate(
                f"{what}: a finger sample needs a record, image or minutiae"
            )
        pos = pos or t.position
        if pos == 0:
            raise errors.InvalidTemplate(f"{what}: the finger position is unknown (0); give 1-10")
        if t.position == 0:
            t = dataclasses.replace(t, position=pos)
        elif t.position != pos:
            raise errors.InvalidTemplate(
                f"{what}: sent as position {pos} but the record says position {t.position}"
            )
        return pos, t, image

    def _iris(self, s: pb.IrisSample, what: str) -> tuple[str, IrisTemplate, bytes | None]:
        eye = _EYE_OF.get(s.eye)
        if eye is None:
            raise errors.InvalidTemplate(f"{what}: an iris sample needs eye EYE_LEFT or EYE_RIGHT")
        geo = self.engine.geometry
        kind = s.WhichOneof("data")
        if kind == "code":
            c = s.code
            shape = (int(c.rings), int(c.columns), int(c.bits))
            if shape != geo.shape:
                raise errors.InvalidTemplate(
                    f"{what}: iris code geometry {shape}; this service holds {geo.shape}"
                )
            return (
                eye,
                iris_template(
                    (_unpack(c.code, geo, "code"), _unpack(c.mask, geo, "mask")),
                    eye=eye,
                    geometry=geo,
                ),
                None,
            )
        if kind == "image":
            return eye, iris_template(s.image, eye=eye, geometry=geo), bytes(s.image)
        raise errors.InvalidTemplate(f"{what}: an iris sample needs a code or an image")

    def _samples(self, fingers: Any, irises: Any) -> Biometrics:
        if len(fingers) > MAX_SAMPLES or len(irises) > 2:
            raise errors.InvalidTemplate("at most 10 fingers and 2 irises per request")
        f: dict[int, FingerTemplate] = {}
        fi: dict[int, bytes] = {}
        for k, s in enumerate(fingers):
            pos, t, image = self._finger(s, f"finger {k}")
            if pos in f:
                raise errors.InvalidTemplate(f"finger position {pos} given twice")
            f[pos] = t
            if image is not None:
                fi[pos] = image
        i: dict[str, IrisTemplate] = {}
        ii: dict[str, bytes] = {}
        for k, s in enumerate(irises):
            eye, it, image = self._iris(s, f"iris {k}")
            if eye in i:
                raise errors.InvalidTemplate(f"eye {eye} given twice")
            i[eye] = it
            if image is not None:
                ii[eye] = image
        return Biometrics(fingers=f, irises=i, finger_images=fi, iris_images=ii)

    @staticmethod
    def _person_id(text: str) -> str:
        if not text:
            raise errors.InvalidTemplate("person_id is empty")
        return text

    # ---------------------------------------------------------------------------- RPCs
    @rpc("enroll")
    def Enroll(self, request: pb.EnrollRequest, context: Any, actor: Actor) -> pb.EnrollResponse:
        bio = self._samples(request.fingers, request.irises)
        info = self.engine.enroll(self._person_id(request.person_id), bio, actor, request.labels)
        return _enrolled(info)

    @rpc("update")
    def Update(self, request: pb.EnrollRequest, context: Any, actor: Actor) -> pb.EnrollResponse:
        bio = self._samples(request.fingers, request.irises)
        labels = dict(request.labels) if request.labels else None
        info = self.engine.update(self._person_id(request.person_id), bio, actor, labels)
        return _enrolled(self.engine.store.info(info.person_id))

    @rpc("delete")
    def Delete(self, request: pb.DeleteRequest, context: Any, actor: Actor) -> pb.DeleteResponse:
        self.engine.delete(self._person_id(request.person_id), actor)
        return pb.DeleteResponse()

    @rpc("verify")
    def Verify(self, request: pb.VerifyRequest, context: Any, actor: Actor) -> pb.VerifyResponse:
        bio = self._samples(request.fingers, request.irises)
        person = self._person_id(request.person_id)
        d = self.engine.verify(person, bio.fingers, bio.irises, request.target_fmr or None)
        self.engine.store.audit(actor, "verify", person, f"match={d.match} by {d.decided_by}")
        return pb.VerifyResponse(
            match=d.match,
            scores=d.scores,
            decided_by=d.decided_by,
            threshold=d.threshold,
            fmr=d.fmr,
        )

    @rpc("identify")
    def Identify(
        self, request: pb.IdentifyRequest, context: Any, actor: Actor
    ) -> pb.IdentifyResponse:
        if len(request.restrict_to) > MAX_RESTRICT:
            raise errors.InvalidTemplate(f"restrict_to holds more than {MAX_RESTRICT} ids")
        bio = self._samples(request.fingers, request.irises)
        res = self.engine.identify(
            bio.fingers,
            bio.irises,
            list(request.restrict_to) or None,
            int(request.max_results) or 10,
            request.target_fpir or None,
        )
        found = ",".join(c.person_id for c in res.candidates)
        self.engine.store.audit(actor, "identify", None, f"candidates={found}")
        return pb.IdentifyResponse(
            candidates=[
                pb.Candidate(person_id=c.person_id, scores=c.scores, decided_by=c.decided_by)
                for c in res.candidates
            ],
            threshold=res.threshold,
            fpir=res.fpir,
            decided_by=res.decided_by,
        )

    @rpc("get_person")
    def GetPerson(self, request: pb.GetPersonRequest, context: Any, actor: Actor) -> pb.Person:
        info = self.engine.store.info(self._person_id(request.person_id))
        return pb.Person(
            person_id=info.person_id,
            version=info.version,
            created_at=info.created_at.isoformat(),
            updated_at=info.updated_at.isoformat(),
            labels={str(k): str(v) for k, v in info.meta.items()},
            finger_positions=list(info.finger_positions),
            eyes=[_PB_EYE[e] for e in info.eyes],
        )

    @rpc("info")
    def GetInfo(self, request: pb.GetInfoRequest, context: Any, actor: Actor) -> pb.Info:
        counts = self.engine.counts()
        geo = self.engine.geometry
        from matcher.kernels import describe

        return pb.Info(
            version=VERSION,
            persons=counts["persons"],
            finger_templates=counts["fingers"],
            iris_templates=counts["irises"],
            iris_geometry=pb.IrisCode(rings=geo.rings, columns=geo.columns, bits=geo.bits),
            thresholds=[
                pb.Threshold(modality=m, kind=k, rate=r, threshold=t)
                for m, k, r, t in self.engine.thresholds.table(max(1, counts["persons"]))
            ],
            kernels=describe(),
            store=self.store_kind,
        )

    @rpc("start_dedup")
    def StartDedup(self, request: pb.StartDedupRequest, context: Any, actor: Actor) -> pb.Job:
        fmr = request.target_fmr or self.engine.thresholds.default_fmr
        if not 0 < fmr < 1:
            raise errors.InvalidTemplate(f"target_fmr must be in (0, 1), got {fmr}")
        job_id = self.dedup.start(list(request.person_ids) or None, fmr, actor)
        return _job(self.engine.store.job(job_id))

    @rpc("watch_job")
    def WatchJob(self, request: pb.WatchJobRequest, context: Any, actor: Actor) -> Iterator[pb.Job]:
        store = self.engine.store
        job = store.job(request.job_id)  # NOT_FOUND before the stream starts

        def stream() -> Iterator[pb.Job]:
            last = None
            j = job
            while context.is_active():
                msg = _job(j, len({c for c, _, _ in store.job_results(j["job_id"])}))
                if msg != last:
                    yield msg
                    last = msg
                if j["state"] in ("done", "failed", "cancelled"):
                    return
                self.dedup.wait(j["job_id"], WATCH_POLL_S)
                j = store.job(j["job_id"])

        return stream()

    @rpc("dedup_results")
    def GetDedupResults(
        self, request: pb.GetDedupResultsRequest, context: Any, actor: Actor
    ) -> pb.DedupResults:
        store = self.engine.store
        job = store.job(request.job_id)
        groups: dict[int, list[pb.DuplicateMember]] = {}
        for cluster, person, score in store.job_results(request.job_id):
            groups.setdefault(cluster, []).append(pb.DuplicateMember(person_id=person, score=score))
        return pb.DedupResults(
            job=_job(job, len(groups)),
            clusters=[pb.DuplicateCluster(members=m) for _, m in sorted(groups.items())],
        )


def _job(j: dict[str, Any], clusters: int = 0) -> pb.Job:
    return pb.Job(
        job_id=j["job_id"],
        state=j["state"],
        done=int(j["progress_done"] or 0),
        total=int(j["progress_total"] or 0),
        clusters=clusters,
        error=j["error"] or "",
    )


def _bytes_or_none(data: bytes) -> Any:
    """Per-minutia bytes, or None (the template's default) when the field was left empty."""
    return np.frombuffer(data, np.uint8) if data else None


def _no_minutiae(what: str) -> FingerTemplate:
    raise errors.QualityTooLow(f"{what}: the minutiae list is empty")


def _unpack(data: bytes, geo: IrisGeometry, what: str) -> np.ndarray:
    need = -(-geo.n_bits // 8)
    if len(data) != need:
        raise errors.InvalidTemplate(
            f"iris {what} is {len(data)} bytes; {geo.shape} needs {need} (np.packbits)"
        )
    bits = np.unpackbits(np.frombuffer(data, np.uint8))[: geo.n_bits]
    return bits.reshape(geo.shape).astype(bool)


def _enrolled(info: PersonInfo) -> pb.EnrollResponse:
    return pb.EnrollResponse(
        person_id=info.person_id,
        version=info.version,
        finger_positions=list(info.finger_positions),
        eyes=[_PB_EYE[e] for e in info.eyes],
    )

"""``MatcherClient``: the Python client capture stations use to call ``amayesh.v1.Matcher``.

    c = MatcherClient("127.0.0.1:50051", token="...")
    c.enroll("P-1", fingers={1: iso_bytes, 2: iso_bytes}, irises={"L": (code, mask)})
    d = c.verify("P-1", fingers={1: iso_bytes})          # d.match, d.scores
    cands = c.identify(irises={"L": (code, mask)})        # [.person_id, .scores]
    c.delete("P-1"); c.info()

Fingers: ISO position -> a minutiae record (ISO/IEC 19794-2 or ANSI 378 bytes, told apart by the
server), image bytes, or a :class:`~matcher.templates.FingerTemplate`. Irises: "L"/"R" ->
``(code, mask)`` bool arrays in the server's geometry (default 8 x 128 x 2), or eye image bytes.
Errors come back as :class:`grpc.RpcError` with the server's status and message. Thread-safe: one
client may serve many threads (one channel).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from amayesh.v1 import matcher_pb2 as pb
from amayesh.v1 import matcher_pb2_grpc as pb_grpc
from matcher.templates import FingerTemplate

_EYE = {"L": pb.EYE_LEFT, "R": pb.EYE_RIGHT}
_EYE_NAME = {pb.EYE_LEFT: "L", pb.EYE_RIGHT: "R"}
RECORD_MAGIC = b"FMR\x00"


@dataclass(frozen=True)
class Verification:
    match: bool
    scores: dict[str, float]
    decided_by: str
    threshold: float
    fmr: float


@dataclass(frozen=True)
class Candidate:
    person_id: str
    scores: dict[str, float]
    decided_by: str


@dataclass(frozen=True)
class TLS:
    """Client TLS: the CA that signed the server, and for mutual TLS the client's own pair."""

    ca_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None


class MatcherClient:
    def __init__(
        self,
        address: str,
        token: str,
        tls: TLS | None = None,
        timeout_s: float = 30.0,
        max_message_mb: int = 16,
    ) -> None:
        opts = [
            ("grpc.max_receive_message_length", max_message_mb << 20),
            ("grpc.max_send_message_length", max_message_mb << 20),
        ]
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=opts)
        else:
            creds = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
            self._channel = grpc.secure_channel(address, creds, options=opts)
        self._stub = pb_grpc.MatcherStub(self._channel)
        self._meta = (("authorization", f"Bearer {token}"),)
        self.timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> MatcherClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, request: Any) -> Any:
        return getattr(self._stub, name)(request, metadata=self._meta, timeout=self.timeout_s)

    def enroll(
        self,
        person_id: str,
        fingers: Mapping[int, Any] | None = None,
        irises: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> pb.EnrollResponse:
        return self._call("Enroll", _enroll_request(person_id, fingers, irises, labels))

    def update(
        self,
        person_id: str,
        fingers: Mapping[int, Any] | None = None,
        irises: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> pb.EnrollResponse:
        return self._call("Update", _enroll_request(person_id, fingers, irises, labels))

    def verify(
        self,
        person_id: str,
        fingers: Mapping[int, Any] | None = None,
        irises: Mapping[str, Any] | None = None,
        target_fmr: float = 0.0,
    ) -> Verification:
        r = self._call(
            "Verify",
            pb.VerifyRequest(
                person_id=person_id,
                fingers=finger_samples(fingers),
                irises=iris_samples(irises),
                target_fmr=target_fmr,
            ),
        )
        return Verification(r.match, dict(r.scores), r.decided_by, r.threshold, r.fmr)

    def identify(
        self,
        fingers: Mapping[int, Any] | None = None,
        irises: Mapping[str, Any] | None = None,
        restrict_to: list[str] | None = None,
        max_results: int = 10,
        target_fpir: float = 0.0,
    ) -> list[Candidate]:
        r = self._call(
            "Identify",
            pb.IdentifyRequest(
                fingers=finger_samples(fingers),
                irises=iris_samples(irises),
                restrict_to=list(restrict_to or []),
                max_results=max_results,
                target_fpir=target_fpir,
            ),
        )
        return [Candidate(c.person_id, dict(c.scores), c.decided_by) for c in r.candidates]

    def delete(self, person_id: str) -> None:
        self._call("Delete", pb.DeleteRequest(person_id=person_id))

    def get_person(self, person_id: str) -> dict[str, Any]:
        p = self._call("GetPerson", pb.GetPersonRequest(person_id=person_id))
        return {
            "person_id": p.person_id,
            "version": p.version,
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "labels": dict(p.labels),
            "finger_positions": list(p.finger_positions),
            "eyes": [_EYE_NAME[e] for e in p.eyes],
        }

    def start_dedup(self, person_ids: list[str] | None = None, target_fmr: float = 0.0) -> str:
        """Start a batch deduplication (the whole gallery, or these persons); the job id."""
        job = self._call(
            "StartDedup",
            pb.StartDedupRequest(person_ids=list(person_ids or []), target_fmr=target_fmr),
        )
        return str(job.job_id)

    def watch_job(self, job_id: str, timeout_s: float | None = None) -> Iterator[dict[str, Any]]:
        """Progress of a job until it ends: dicts with state, done, total, clusters, error."""
        stream = self._stub.WatchJob(
            pb.WatchJobRequest(job_id=job_id), metadata=self._meta, timeout=timeout_s
        )
        for j in stream:
            yield _job_dict(j)

    def dedup_results(self, job_id: str) -> tuple[dict[str, Any], list[list[tuple[str, float]]]]:
        """The job and its duplicate clusters, each a list of ``(person_id, score)``."""
        r = self._call("GetDedupResults", pb.GetDedupResultsRequest(job_id=job_id))
        return _job_dict(r.job), [[(m.person_id, m.score) for m in c.members] for c in r.clusters]

    def info(self) -> dict[str, Any]:
        i = self._call("GetInfo", pb.GetInfoRequest())
        return {
            "version": i.version,
            "persons": i.persons,
            "finger_templates": i.finger_templates,
            "iris_templates": i.iris_templates,
            "iris_geometry": (i.iris_geometry.rings, i.iris_geometry.columns, i.iris_geometry.bits),
            "thresholds": [
                {"modality": t.modality, "kind": t.kind, "rate": t.rate, "threshold": t.threshold}
                for t in i.thresholds
            ],
            "kernels": dict(i.kernels),
            "store": i.store,
        }


def _enroll_request(
    person_id: str,
    fingers: Mapping[int, Any] | None,
    irises: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
) -> pb.EnrollRequest:
    return pb.EnrollRequest(
        person_id=person_id,
        fingers=finger_samples(fingers),
        irises=iris_samples(irises),
        labels=dict(labels or {}),
    )


def _job_dict(j: pb.Job) -> dict[str, Any]:
    return {
        "job_id": j.job_id,
        "state": j.state,
        "done": j.done,
        "total": j.total,
        "clusters": j.clusters,
        "error": j.error,
    }


def finger_samples(fingers: Mapping[int, Any] | None) -> list[pb.FingerSample]:
    out = []
    for pos, s in (fingers or {}).items():
        if isinstance(s, FingerTemplate):
            out.append(
                pb.FingerSample(
                    position=int(pos),
                    dpi=s.dpi,
                    minutiae=pb.Minutiae(
                        x=s.x.tolist(),
                        y=s.y.tolist(),
                        theta=s.theta.tolist(),
                        kind=s.kind.tobytes(),
                        quality=s.quality.tobytes(),
                        width=s.width,
                        height=s.height,
                    ),
                )
            )
            continue
        data = bytes(s)
        if data.startswith(RECORD_MAGIC):
            out.append(pb.FingerSample(position=int(pos), record=data))
        else:
            out.append(pb.FingerSample(position=int(pos), image=data))
    return out


def iris_samples(irises: Mapping[str, Any] | None) -> list[pb.IrisSample]:
    out = []
    for eye, s in (irises or {}).items():
        if eye not in _EYE:
            raise ValueError(f"eye must be 'L' or 'R', got {eye!r}")
        if isinstance(s, tuple):
            code, mask = (np.asarray(a, bool) for a in s)
            if code.ndim != 3 or code.shape != mask.shape:
                raise ValueError("an iris code and its mask are bool arrays (rings, columns, bits)")
            out.append(
                pb.IrisSample(
                    eye=_EYE[eye],
                    code=pb.IrisCode(
                        rings=code.shape[0],
                        columns=code.shape[1],
                        bits=code.shape[2],
                        code=np.packbits(code).tobytes(),
                        mask=np.packbits(mask).tobytes(),
                    ),
                )
            )
        else:
            out.append(pb.IrisSample(eye=_EYE[eye], image=bytes(s)))
    return out

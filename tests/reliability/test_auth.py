"""Authentication and authorisation against a real server: no token, wrong tokens, every role
against every method, and mutual TLS without (or with a foreign) client certificate.

The role table below is written from auth.py's docstring (DESIGN.md, "Security"), not read from
its code, so a change of the code's table shows here. A refused call changes nothing: the
refusals use requests that would succeed for an administrator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from amayesh.v1 import matcher_pb2 as pb
from amayesh.v1 import matcher_pb2_grpc as pb_grpc
from matcher.client import TLS, MatcherClient
from matcher.thresholds import Thresholds
from tests.reliability.harness import (
    ADMIN_TOKEN,
    RPC_TIMEOUT_S,
    Person,
    ServerProcess,
    status_of,
)
from tests.test_tls import _cert, _key, _pem, _pem_key

C = grpc.StatusCode
TOKENS = {"station": "st-token-1", "caseworker": "cw-token-1", "approver": "ap-token-1"}
ALL = (
    "Enroll",
    "Update",
    "Delete",
    "Verify",
    "Identify",
    "GetPerson",
    "GetInfo",
    "StartDedup",
    "WatchJob",
    "GetDedupResults",
)
ALLOWED = {
    "station": {"Enroll", "Update", "Verify", "Identify", "GetPerson"},
    "caseworker": {"Verify", "Identify", "GetPerson", "GetInfo", "WatchJob", "GetDedupResults"},
    "approver": {"GetPerson"},
    "admin": set(ALL),
}
KNOWN = "A-1"  # enrolled before the checks; every refused call would have changed or read it


def _tokens_file(path: Path) -> Path:
    doc = {
        "tokens": [
            {"name": f"{role}-1", "role": role, "sha256": hashlib.sha256(t.encode()).hexdigest()}
            for role, t in TOKENS.items()
        ]
    }
    path.write_text(json.dumps(doc))
    return path


def _requests(p: Person) -> dict[str, tuple[object, object]]:
    """method -> (a request that would change or read KNOWN, a request refused for another
    reason, so an allowed role's call changes nothing)."""
    f = pb.FingerSample(position=1, record=p.records([1])[1])
    probe = pb.FingerSample(position=1, record=p.records([1], probe=True)[1])
    return {
        "Enroll": (
            pb.EnrollRequest(person_id="A-2", fingers=[f]),
            pb.EnrollRequest(person_id=KNOWN, fingers=[f]),  # ALREADY_EXISTS
        ),
        "Update": (
            pb.EnrollRequest(person_id=KNOWN, labels={"x": "y"}),
            pb.EnrollRequest(person_id="nobody", labels={"x": "y"}),  # NOT_FOUND
        ),
        "Delete": (pb.DeleteRequest(person_id=KNOWN), pb.DeleteRequest(person_id="nobody")),
        "Verify": (
            pb.VerifyRequest(person_id=KNOWN, fingers=[probe]),
            pb.VerifyRequest(person_id=KNOWN, fingers=[probe]),
        ),
        "Identify": (pb.IdentifyRequest(fingers=[probe]), pb.IdentifyRequest(fingers=[probe])),
        "GetPerson": (pb.GetPersonRequest(person_id=KNOWN),) * 2,
        "GetInfo": (pb.GetInfoRequest(),) * 2,
        "StartDedup": (
            pb.StartDedupRequest(),
            pb.StartDedupRequest(target_fmr=2.0),  # INVALID_ARGUMENT
        ),
        "WatchJob": (pb.WatchJobRequest(job_id="nope"),) * 2,
        "GetDedupResults": (pb.GetDedupResultsRequest(job_id="nope"),) * 2,
    }


def _call(stub: pb_grpc.MatcherStub, method: str, request: object, meta: tuple) -> C:
    try:
        answer = getattr(stub, method)(request, metadata=meta, timeout=RPC_TIMEOUT_S)
        if method == "WatchJob":
            list(answer)
        return C.OK
    except grpc.RpcError as error:
        return status_of(error)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, people: list[Person], thresholds: Thresholds
) -> Iterator[tuple[ServerProcess, Person]]:
    d = tmp_path_factory.mktemp("auth")
    extra = ["--tokens-file", str(_tokens_file(d / "tokens.json"))]
    server = ServerProcess(d / "server", thresholds=thresholds, extra=extra, max_workers=2)
    server.start()
    p = people[0]
    with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        c.enroll(KNOWN, p.records([1, 2]))
    yield server, p
    server.kill()


@pytest.fixture
def stub(served: tuple[ServerProcess, Person]) -> Iterator[pb_grpc.MatcherStub]:
    with grpc.insecure_channel(served[0].address) as channel:
        yield pb_grpc.MatcherStub(channel)


def _state(stub: pb_grpc.MatcherStub) -> tuple[object, ...]:
    info = stub.GetInfo(pb.GetInfoRequest(), metadata=_bearer(ADMIN_TOKEN), timeout=10)
    person = stub.GetPerson(
        pb.GetPersonRequest(person_id=KNOWN), metadata=_bearer(ADMIN_TOKEN), timeout=10
    )
    return info.persons, info.finger_templates, person.version, dict(person.labels)


BAD_CREDENTIALS = [
    (),  # no metadata at all
    (("authorization", ""),),
    (("authorization", "Bearer "),),
    (("authorization", f"Basic {ADMIN_TOKEN}"),),
    (("authorization", ADMIN_TOKEN),),  # no scheme
    _bearer("wrong"),
    _bearer(ADMIN_TOKEN.upper()),
    _bearer(ADMIN_TOKEN + "x"),
    _bearer(ADMIN_TOKEN[:-1]),
    (("x-token", ADMIN_TOKEN),),
]


@pytest.mark.parametrize("meta", BAD_CREDENTIALS, ids=lambda m: repr(m)[:40])
def test_calls_without_a_valid_token_are_unauthenticated(
    served: tuple[ServerProcess, Person], stub: pb_grpc.MatcherStub, meta: tuple
) -> None:
    before = _state(stub)
    for method, (effective, _) in _requests(served[1]).items():
        assert _call(stub, method, effective, meta) == C.UNAUTHENTICATED, method
    assert _state(stub) == before


@pytest.mark.parametrize("role", ["station", "caseworker", "approver", "admin"])
def test_each_role_may_do_exactly_its_part(
    served: tuple[ServerProcess, Person], stub: pb_grpc.MatcherStub, role: str
) -> None:
    token = ADMIN_TOKEN if role == "admin" else TOKENS[role]
    before = _state(stub)
    got = {}
    for method, (effective, harmless) in _requests(served[1]).items():
        if method in ALLOWED[role]:
            got[method] = _call(stub, method, harmless, _bearer(token))
        else:
            got[method] = _call(stub, method, effective, _bearer(token))
    denied = {m for m, code in got.items() if code == C.PERMISSION_DENIED}
    assert denied == set(ALL) - ALLOWED[role], got
    assert not {m for m, code in got.items() if code in (C.UNAUTHENTICATED, C.UNKNOWN)}, got
    assert _state(stub) == before  # refusals (and the harmless allowed calls) changed nothing
    assert served[0].serving()


# --------------------------------------------------------------------------- mutual TLS
@pytest.fixture(scope="module")
def mtls(
    tmp_path_factory: pytest.TempPathFactory, thresholds: Thresholds
) -> Iterator[tuple[ServerProcess, dict[str, bytes]]]:
    d = tmp_path_factory.mktemp("mtls")
    ca_key = _key()
    ca = _cert("reliability CA", ca_key, None, ca=True)
    srv_key = _key()
    srv = _cert("amayesh", srv_key, (ca, ca_key), san="127.0.0.1")
    cli_key = _key()
    cli = _cert("station", cli_key, (ca, ca_key))
    rogue_key = _key()
    rogue = _cert("rogue station", rogue_key, None)
    pem = {
        "ca": _pem(ca),
        "srv": _pem(srv),
        "srv_key": _pem_key(srv_key),
        "cli": _pem(cli),
        "cli_key": _pem_key(cli_key),
        "rogue": _pem(rogue),
        "rogue_key": _pem_key(rogue_key),
    }
    for name in ("ca", "srv", "srv_key"):
        (d / name).write_bytes(pem[name])
    extra = ["--tls-cert", str(d / "srv"), "--tls-key", str(d / "srv_key")]
    extra += ["--tls-client-ca", str(d / "ca"), "--tokens-file"]
    extra += [str(_tokens_file(d / "tokens.json"))]
    server = ServerProcess(d / "server", thresholds=thresholds, extra=extra, max_workers=2)
    server.start()
    yield server, pem
    server.kill()


def _info(address: str, token: str, tls: TLS | None) -> C:
    with MatcherClient(address, token, tls=tls, timeout_s=5) as c:
        try:
            c.info()
            return C.OK
        except grpc.RpcError as error:
            return status_of(error)


def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(
    mtls: tuple[ServerProcess, dict[str, bytes]],
) -> None:
    server, pem = mtls
    good = TLS(pem["ca"], pem["cli"], pem["cli_key"])
    attempts: dict[str, Callable[[], C]] = {
        "plaintext": lambda: _info(server.address, ADMIN_TOKEN, None),
        "no client certificate": lambda: _info(server.address, ADMIN_TOKEN, TLS(pem["ca"])),
        "self-signed client": lambda: _info(
            server.address, ADMIN_TOKEN, TLS(pem["ca"], pem["rogue"], pem["rogue_key"])
        ),
        "certificate, no token": lambda: _info(server.address, "", good),
        "certificate, approver": lambda: _info(server.address, TOKENS["approver"], good),
        "certificate, admin": lambda: _info(server.address, ADMIN_TOKEN, good),
    }
    got = {name: attempt() for name, attempt in attempts.items()}
    # A failed handshake never reaches the service: the client sees UNAVAILABLE.
    assert got == {
        "plaintext": C.UNAVAILABLE,
        "no client certificate": C.UNAVAILABLE,
        "self-signed client": C.UNAVAILABLE,
        "certificate, no token": C.UNAUTHENTICATED,
        "certificate, approver": C.PERMISSION_DENIED,
        "certificate, admin": C.OK,
    }
    assert server.alive()
    assert _info(server.address, ADMIN_TOKEN, good) == C.OK  # still serving after the refusals

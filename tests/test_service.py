"""amayesh.v1.Matcher over real gRPC on loopback: the client contract, errors, roles."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from matcher.client import MatcherClient
from matcher.formats import ansi378, iso19794_2
from matcher.service import MatcherService
from tests.inprocess import matcher_server
from tests.test_engine import PERSONS, World

TOKENS = {"admin": "adm-secret", "station": "st-secret", "approver": "ap-secret"}


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, world: World
) -> Iterator[tuple[str, MatcherService]]:
    with matcher_server(
        tmp_path_factory.mktemp("service"), world.thresholds, TOKENS, max_message_mb=2
    ) as served:
        yield served


@pytest.fixture(scope="module")
def address(served: tuple[str, MatcherService]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def admin(address: str) -> Iterator[MatcherClient]:
    with MatcherClient(address, token=TOKENS["admin"], timeout_s=30) as c:
        yield c


def _records(world: World, k: int, probe: bool = False) -> dict[int, bytes]:
    src = world.finger_probes[k] if probe else world.fingers[k]
    # Alternate the formats: the server tells ISO 2005, ISO 2011 and ANSI 378 apart itself.
    enc = [
        lambda t: iso19794_2.encode([t], "2005"),
        lambda t: iso19794_2.encode([t], "2011"),
        lambda t: ansi378.encode([t]),
    ]
    return {p: enc[i % 3](t) for i, (p, t) in enumerate(src.items())}


def _codes(world: World, k: int, probe: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    src = world.iris_probes[k] if probe else world.irises[k]
    return {e: (t.code, t.mask) for e, t in src.items()}


def _code(e: grpc.RpcError) -> grpc.StatusCode:
    return e.code()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def enrolled(admin: MatcherClient, world: World) -> list[str]:
    ids = []
    for k in range(PERSONS):
        admin.enroll(
            f"P-{k}", fingers=_records(world, k), irises=_codes(world, k), labels={"hh": str(k)}
        )
        ids.append(f"P-{k}")
    return ids


def test_the_client_contract(admin: MatcherClient, world: World, enrolled: list[str]) -> None:
    d = admin.verify("P-3", fingers=_records(world, 3, probe=True))
    assert d.match and d.scores["finger"] > 0 and "finger.1" in d.scores
    assert not admin.verify("P-4", fingers=_records(world, 3, probe=True)).match
    cands = admin.identify(irises={"L": _codes(world, 6, probe=True)["L"]})
    assert cands[0].person_id == "P-6" and "iris.L" in cands[0].scores
    both = admin.identify(fingers=_records(world, 8, probe=True), irises=_codes(world, 8, True))
    assert both[0].person_id == "P-8"
    info = admin.info()
    assert info["persons"] == PERSONS and info["iris_templates"] == 2 * PERSONS
    assert info["iris_geometry"] == (8, 128, 2) and info["thresholds"]
    person = admin.get_person("P-2")
    assert person["labels"] == {"hh": "2"} and person["eyes"] == ["L", "R"]
    assert person["finger_positions"] == [1, 2, 7]
    assert "code" not in json.dumps(person)  # metadata only


def test_minutiae_messages_and_delete(
    admin: MatcherClient, world: World, enrolled: list[str]
) -> None:
    t = dataclasses.replace(world.fingers[11][2], position=0)  # position comes from the request
    admin.enroll("Q-1", fingers={2: t})
    assert admin.verify("Q-1", fingers={2: world.finger_probes[11][2]}).match
    admin.delete("Q-1")
    with pytest.raises(grpc.RpcError) as e:
        admin.verify("Q-1", fingers={2: t})
    assert _code(e.value) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda c, w: c.enroll("P-0", fingers=_records(w, 0)), grpc.StatusCode.ALREADY_EXISTS),
        (lambda c, w: c.verify("nobody", fingers=_records(w, 0)), grpc.StatusCode.NOT_FOUND),
        (lambda c, w: c.delete("nobody"), grpc.StatusCode.NOT_FOUND),
        (
            lambda c, w: c.enroll("X-1", fingers={1: b"FMR\x00 20\x00garbage"}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c, w: c.enroll("X-1", fingers={1: b"\x89PNG\r\n\x1a\ntruncated"}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c, w: c.enroll("X-1", fingers={11: _records(w, 0)[1]}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c, w: c.enroll("X-1", irises={"L": (np.zeros((4, 128, 2), bool),) * 2}),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (lambda c, w: c.enroll("X-1"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda c, w: c.enroll("", fingers=_records(w, 0)), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda c, w: c.verify("P-1", irises={}), grpc.StatusCode.INVALID_ARGUMENT),
        (
            lambda c, w: c.identify(fingers=_records(w, 0), target_fpir=3.0),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda c, w: c.enroll("X-1", fingers={1: b"\x00" * (3 << 20)}),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
)
def test_bad_requests_get_the_right_status_and_change_nothing(
    admin: MatcherClient,
    world: World,
    enrolled: list[str],
    call,
    status,  # type: ignore[no-untyped-def]
) -> None:
    before = admin.info()
    with pytest.raises(grpc.RpcError) as e:
        call(admin, world)
    assert _code(e.value) == status, e.value.details()
    assert e.value.details()  # a message an operator can read
    after = admin.info()
    assert (after["persons"], after["finger_templates"], after["iris_templates"]) == (
        before["persons"],
        before["finger_templates"],
        before["iris_templates"],
    )


def test_tokens_and_roles(address: str, world: World, enrolled: list[str]) -> None:
    with MatcherClient(address, token="wrong") as c, pytest.raises(grpc.RpcError) as e:
        c.info()
    assert _code(e.value) == grpc.StatusCode.UNAUTHENTICATED
    channel = grpc.insecure_channel(address)
    from amayesh.v1 import matcher_pb2, matcher_pb2_grpc

    stub = matcher_pb2_grpc.MatcherStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.GetInfo(matcher_pb2.GetInfoRequest(), timeout=10)  # no token at all
    assert _code(e.value) == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
    with MatcherClient(address, token=TOKENS["station"]) as st:
        assert st.verify("P-5", fingers=_records(world, 5, probe=True)).match
        with pytest.raises(grpc.RpcError) as e:
            st.delete("P-5")
        assert _code(e.value) == grpc.StatusCode.PERMISSION_DENIED
    with MatcherClient(address, token=TOKENS["approver"]) as ap:
        assert ap.get_person("P-5")["person_id"] == "P-5"
        with pytest.raises(grpc.RpcError) as e:
            ap.identify(fingers=_records(world, 5, probe=True))
        assert _code(e.value) == grpc.StatusCode.PERMISSION_DENIED


def test_audit_records_who_did_what(
    served: tuple[str, MatcherService], world: World, enrolled: list[str]
) -> None:
    address, service = served
    with MatcherClient(address, token=TOKENS["station"]) as st:
        st.verify("P-7", fingers=_records(world, 7, probe=True))
    log = service.engine.store.audit_log("P-7", limit=10)
    assert any(r["action"] == "verify" and r["actor"] == "station-user" for r in log)
    assert any(r["action"] == "enroll" and r["actor"] == "admin-user" for r in log)
    assert all("code" not in str(r.get("detail", "")).lower() for r in log)


def test_dedup_finds_a_person_enrolled_twice(
    admin: MatcherClient, world: World, enrolled: list[str]
) -> None:
    # P-9 comes back under another id with new captures of the same fingers and eyes.
    admin.enroll("DUP-9", fingers=_records(world, 9, probe=True), irises=_codes(world, 9, True))
    try:
        job_id = admin.start_dedup()
        states = [j for j in admin.watch_job(job_id, timeout_s=120)]
        assert states[-1]["state"] == "done", states[-1]
        assert states[-1]["done"] == states[-1]["total"] == admin.info()["persons"]
        job, clusters = admin.dedup_results(job_id)
        assert job["state"] == "done"
        assert [sorted(p for p, _ in c) for c in clusters] == [["DUP-9", "P-9"]]
        assert all(0 < s <= 1 for c in clusters for _, s in c)
        # A subset that leaves the duplicate out finds nothing.
        sub = admin.start_dedup(["P-1", "P-2", "P-9"])
        list(admin.watch_job(sub, timeout_s=60))
        assert admin.dedup_results(sub)[1] == []
    finally:
        admin.delete("DUP-9")
    with pytest.raises(grpc.RpcError) as e:
        list(admin.watch_job("no-such-job", timeout_s=10))
    assert _code(e.value) == grpc.StatusCode.NOT_FOUND


def test_a_dedup_job_resumes_from_its_checkpoint(
    served: tuple[str, MatcherService], world: World, enrolled: list[str]
) -> None:
    from matcher.dedup import KIND, DedupRunner

    engine = served[1].engine
    store = engine.store
    rows = engine.rows()
    # What a server killed mid-job leaves: running, half done, one (made-up) pair already found.
    fake = (rows[0], rows[1], 0.5)
    job_id = store.create_job(KIND, {"rows": rows, "fmr": 1e-4, "by": "test"})
    store.update_job(
        job_id,
        state="running",
        done=len(rows) // 2,
        total=len(rows),
        checkpoint={"next": len(rows) // 2, "pairs": [list(fake)]},
    )
    runner = DedupRunner(engine)
    assert job_id in runner.resume()
    runner.wait(job_id, timeout=120)
    job = store.job(job_id)
    assert job["state"] == "done" and job["progress_done"] == len(rows)
    names = store.person_ids([fake[0], fake[1]])
    clusters = {}
    for c, p, _ in store.job_results(job_id):
        clusters.setdefault(c, set()).add(p)
    # The pair from before the restart survives; the first half was not searched again.
    assert {names[fake[0]], names[fake[1]]} in clusters.values()


def test_metrics_count_calls_by_method_and_status(
    served: tuple[str, MatcherService], admin: MatcherClient, enrolled: list[str]
) -> None:
    import urllib.request

    service = served[1]
    port = service.metrics.serve("127.0.0.1:0")
    admin.info()
    with pytest.raises(grpc.RpcError):
        admin.delete("nobody")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'amayesh_calls_total{code="OK",method="GetInfo"}' in text
    assert 'amayesh_calls_total{code="NOT_FOUND",method="Delete"}' in text
    assert 'amayesh_call_seconds_bucket{le="0.001",method="GetInfo"}' in text
    assert "amayesh_persons" in text and "P-1" not in text  # counts, never ids

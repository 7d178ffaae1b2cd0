"""Load: concurrent clients making mixed calls against a real server on loopback.

Each client owns a disjoint slice of the synthetic population and its own person ids, so it can
predict the exact status of every call it makes (a verify of an id it deleted is NOT_FOUND, a probe
of a finger the person lacks is FAILED_PRECONDITION, ...). At the end the tallies must equal the
server's own per-method counters (/metrics) and the gallery counts must equal what the clients
left enrolled. Reduced size under ``make test``, full under ``make reliability``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from matcher.client import MatcherClient
from matcher.thresholds import Thresholds
from tests.reliability.harness import (
    ADMIN_TOKEN,
    EYES,
    POSITIONS,
    RPC_TIMEOUT_S,
    Person,
    ServerProcess,
    size,
    status_of,
)

CLIENTS = size(8, 20)
CALLS_PER_CLIENT = size(60, 500)
PERSONS_PER_CLIENT = 8
FIRST_ENROLMENTS = 3  # each client starts by enrolling this many of its persons
OPS = ("verify", "identify", "get_person", "info", "enroll", "update", "delete")
WEIGHTS = np.array([0.34, 0.30, 0.08, 0.04, 0.10, 0.08, 0.06])
OK = grpc.StatusCode.OK
METHOD = {
    "verify": "Verify",
    "identify": "Identify",
    "get_person": "GetPerson",
    "info": "GetInfo",
    "enroll": "Enroll",
    "update": "Update",
    "delete": "Delete",
}


@dataclass
class Enrolled:
    person: int  # index into the client's slice
    positions: set[int]
    eyes: set[str]


@dataclass
class Station:
    """One client's view: what it enrolled, what it deleted, and every call's status."""

    index: int
    persons: list[Person]
    rng: np.random.Generator
    live: dict[str, Enrolled] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)
    serial: int = 0
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def new_id(self) -> str:
        self.serial += 1
        return f"L{self.index}-{self.serial}"

    def free_persons(self) -> list[int]:
        used = {e.person for e in self.live.values()}
        return [k for k in range(len(self.persons)) if k not in used]

    def pick(self, values: list[str] | list[int]) -> object:
        return values[int(self.rng.integers(len(values)))]


def _subset(rng: np.random.Generator, values: tuple, at_least: int) -> set:
    while True:
        chosen = {v for v in values if rng.random() < 0.5}
        if len(chosen) >= at_least:
            return chosen


def _step(st: Station, c: MatcherClient, op: str) -> None:
    """Make one call of kind ``op`` (or a stand-in when the state does not allow it) and record
    its status; a status other than the predicted one, or a wrong answer, is a failure."""
    rng = st.rng
    if op in ("verify", "identify", "update", "get_person", "delete") and not st.live:
        op = "enroll"
    if op == "enroll" and not st.free_persons() and not st.live:
        op = "info"
    expected = OK
    check = None
    if op == "enroll":
        free = st.free_persons()
        if not free or (st.live and rng.random() < 0.1):
            pid = str(st.pick(list(st.live)))  # an id in use
            e = st.live[pid]
            expected = grpc.StatusCode.ALREADY_EXISTS
            p = st.persons[e.person]
            args: tuple = (pid, p.records(sorted(e.positions)), p.codes(sorted(e.eyes)))
        else:
            k = int(st.pick(free))
            # At least one eye: a single synthetic finger is too weak evidence for a 1:N answer
            # to be certain, and this test checks answers, not accuracy.
            pos = _subset(rng, POSITIONS, 0)
            eyes = _subset(rng, EYES, 1)
            pid = st.new_id()
            p = st.persons[k]
            args = (pid, p.records(sorted(pos)), p.codes(sorted(eyes)))

            def check(r: object, pid: str = pid, k: int = k, pos=pos, eyes=eyes) -> None:
                st.live[pid] = Enrolled(k, set(pos), set(eyes))

        call = lambda: c.enroll(*args)  # noqa: E731
    elif op == "verify":
        if st.gone and rng.random() < 0.1:
            pid = str(st.pick(st.gone))
            expected = grpc.StatusCode.NOT_FOUND
            call = lambda: c.verify(pid, fingers=st.persons[0].records([1], probe=True))  # noqa: E731
        else:
            pid = str(st.pick(list(st.live)))
            e = st.live[pid]
            p = st.persons[e.person]
            roll = rng.random()
            if roll < 0.08 and not e.positions:
                # Only a modality the person has none of: nothing to compare.
                expected = grpc.StatusCode.FAILED_PRECONDITION
                fingers = p.records([1], probe=True)  # every person has an eye; some no finger
                irises = {}
                genuine = None
            elif roll < 0.18 and len(st.persons) > 1:
                other = st.persons[(e.person + 1) % len(st.persons)]
                fingers = other.records(sorted(e.positions), probe=True)
                irises = other.codes(sorted(e.eyes), probe=True)
                genuine = False
            else:
                fingers = p.records(sorted(e.positions), probe=True)
                irises = p.codes(sorted(e.eyes), probe=True)
                genuine = True
            call = lambda: c.verify(pid, fingers=fingers, irises=irises)  # noqa: E731

            def check(r: object, genuine=genuine, pid: str = pid) -> None:
                if r.match is not genuine:  # type: ignore[attr-defined]
                    st.failures.append(f"verify {pid}: match={r.match}, expected {genuine}")  # type: ignore[attr-defined]

    elif op == "identify":
        pid = str(st.pick(list(st.live)))
        e = st.live[pid]
        p = st.persons[e.person]
        fingers = p.records(sorted(e.positions), probe=True)
        irises = p.codes(sorted(e.eyes), probe=True)
        call = lambda: c.identify(fingers=fingers, irises=irises)  # noqa: E731

        def check(r: object, pid: str = pid) -> None:
            found = [x.person_id for x in r]  # type: ignore[attr-defined]
            if found[:1] != [pid]:
                st.failures.append(f"identify {pid}: candidates {found}")

    elif op == "get_person":
        if st.gone and rng.random() < 0.15:
            pid = str(st.pick(st.gone))
            expected = grpc.StatusCode.NOT_FOUND
        else:
            pid = str(st.pick(list(st.live)))
            e = st.live[pid]

            def check(r: object, pid: str = pid, e: Enrolled = e) -> None:
                want = (sorted(e.positions), sorted(e.eyes))
                got = (r["finger_positions"], r["eyes"])  # type: ignore[index]
                if r["person_id"] != pid or got != want:  # type: ignore[index]
                    st.failures.append(f"get_person {pid}: {got}, expected {want}")

        call = lambda: c.get_person(pid)  # noqa: E731
    elif op == "info":
        call = c.info
    elif op == "update":
        pid = str(st.pick(list(st.live)))
        e = st.live[pid]
        p = st.persons[e.person]
        # Another capture of one finger (maybe one the person lacked): the count may grow.
        pos = int(st.pick(list(POSITIONS)))
        call = lambda: c.update(pid, fingers=p.records([pos]), labels={"n": str(st.serial)})  # noqa: E731

        def check(r: object, e: Enrolled = e, pos: int = pos) -> None:
            e.positions.add(pos)

    elif op == "delete":
        if st.gone and rng.random() < 0.15:
            pid = str(st.pick(st.gone))
            expected = grpc.StatusCode.NOT_FOUND
        else:
            pid = str(st.pick(list(st.live)))

            def check(r: object, pid: str = pid) -> None:
                del st.live[pid]
                st.gone.append(pid)

        call = lambda: c.delete(pid)  # noqa: E731
    else:
        raise AssertionError(op)

    try:
        result = call()
        code = OK
    except grpc.RpcError as error:
        code = status_of(error)
        result = error
    st.calls[(METHOD[op], code.name)] += 1
    if code != expected:
        detail = result.details() if isinstance(result, grpc.RpcError) else ""
        st.failures.append(f"{op}: {code.name} ({detail}), expected {expected.name}")
    elif code == OK and check is not None:
        check(result)


def _run(st: Station, address: str, calls: int, start: threading.Barrier) -> None:
    with MatcherClient(address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        start.wait()
        try:
            for n in range(calls):
                if n < FIRST_ENROLMENTS:
                    op = "enroll"
                else:
                    op = OPS[int(st.rng.choice(len(OPS), p=WEIGHTS / WEIGHTS.sum()))]
                _step(st, c, op)
        except Exception as error:  # a bug of this test, reported with the others
            st.failures.append(f"client crashed: {error!r}")
            raise


@pytest.fixture
def server(tmp_path: Path, thresholds: Thresholds):  # type: ignore[no-untyped-def]
    srv = ServerProcess(tmp_path / "load", thresholds=thresholds, metrics=True)
    srv.start()
    yield srv
    srv.kill()


def test_concurrent_mixed_calls_are_all_accounted_for(
    server: ServerProcess, people: list[Person]
) -> None:
    assert CLIENTS * PERSONS_PER_CLIENT <= len(people)
    stations = [
        Station(i, people[i * PERSONS_PER_CLIENT : (i + 1) * PERSONS_PER_CLIENT], rng)
        for i, rng in enumerate(np.random.default_rng(2024).spawn(CLIENTS))
    ]
    before = server.calls()
    start = threading.Barrier(CLIENTS)
    threads = [
        threading.Thread(target=_run, args=(st, server.address, CALLS_PER_CLIENT, start))
        for st in stations
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=RPC_TIMEOUT_S * CALLS_PER_CLIENT)
    elapsed = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), "a client is stuck"

    done: Counter[tuple[str, str]] = Counter()
    for st in stations:
        done.update(st.calls)
    failures = [f"client {st.index}: {f}" for st in stations for f in st.failures]
    total = sum(done.values())
    errors = Counter(code for (_, code), n in done.items() for _ in range(n) if code != "OK")
    print(
        f"\nload: {CLIENTS} clients x {CALLS_PER_CLIENT} calls = {total} in {elapsed:.1f} s "
        f"({total / elapsed:.0f}/s); errors by status {dict(errors)}; "
        f"by method {dict(sorted(done.items()))}"
    )
    assert total == CLIENTS * CALLS_PER_CLIENT
    assert not failures, f"{len(failures)} unexpected answers, first: {failures[:10]}"

    # The server counted exactly the calls the clients made, with the same statuses.
    after = server.calls()
    served = Counter({k: after.get(k, 0) - before.get(k, 0) for k in after})
    served = +served  # drop zeros
    assert served == done
    # The galleries hold exactly what the clients left enrolled.
    with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        info = c.info()
    live = [e for st in stations for e in st.live.values()]
    assert (info["persons"], info["finger_templates"], info["iris_templates"]) == (
        len(live),
        sum(len(e.positions) for e in live),
        sum(len(e.eyes) for e in live),
    )
    assert server.serving()

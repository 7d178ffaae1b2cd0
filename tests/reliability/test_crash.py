"""Durability: kill -9 the server at random moments during concurrent enrolment, restart it on the
same store, and check DESIGN.md's promise: nothing acknowledged is lost, nothing is half-written,
and on restart the galleries equal the store.

Every round: let writers enrol new persons (each a random set of fingers and eyes) until a
SIGKILL at a random moment, open the store directly while the server is down, then restart and
compare; the restarted server takes the next round's writers. An enrolment whose answer never came
(in flight at the kill) may be either absent or complete, never partial. Reduced to 5 rounds under
``make test``, 20 under ``make reliability``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from matcher.client import MatcherClient
from matcher.crypto import load_key
from matcher.errors import UnknownId
from matcher.store import Store
from matcher.thresholds import Thresholds
from tests.reliability.harness import (
    ADMIN_TOKEN,
    EYES,
    POSITIONS,
    Person,
    ServerProcess,
    size,
    status_of,
)

ROUNDS = size(5, 20)
WRITERS = 4
KILL_AFTER_S = (0.2, 1.5)  # the kill comes this long after the writers start, uniformly
CALL_TIMEOUT_S = 10.0
VERIFY_EARLIER = 8  # persons of earlier rounds verified again each round (all at the end)


@dataclass(frozen=True)
class Sent:
    person: int
    positions: tuple[int, ...]
    eyes: tuple[str, ...]


@dataclass
class Ledger:
    """What the writers sent, and which of it the server acknowledged."""

    sent: dict[str, Sent]
    acked: set[str]
    lock: threading.Lock
    errors: list[str]  # statuses other than the kill's, with the person id


def _writer(
    address: str,
    tag: str,
    people: list[Person],
    rng: np.random.Generator,
    ledger: Ledger,
    stop: threading.Event,
) -> None:
    with MatcherClient(address, ADMIN_TOKEN, timeout_s=CALL_TIMEOUT_S) as c:
        n = 0
        while not stop.is_set():
            n += 1
            pid = f"{tag}-{n}"
            k = int(rng.integers(len(people)))
            positions = tuple(p for p in POSITIONS if rng.random() < 0.6)
            eyes = tuple(e for e in EYES if rng.random() < 0.6) or (() if positions else ("L",))
            with ledger.lock:
                ledger.sent[pid] = Sent(k, positions, eyes)
            try:
                c.enroll(pid, people[k].records(positions), people[k].codes(eyes))
            except grpc.RpcError as error:
                # The kill: the connection drops (UNAVAILABLE), or the deadline passes.
                if status_of(error) not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.CANCELLED,
                ):
                    with ledger.lock:
                        ledger.errors.append(f"{pid}: {status_of(error).name} {error.details()}")
                return
            with ledger.lock:
                ledger.acked.add(pid)


def _store_view(server: ServerProcess, ids: list[str]) -> tuple[dict[str, int], dict[str, Sent]]:
    """Counts and the persons present among ``ids``, read from the store itself (server down)."""
    store = Store.open(server.store_url, load_key(server.key_file))
    try:
        present = {}
        for pid in ids:
            try:
                info = store.info(pid)
            except UnknownId:
                continue
            present[pid] = Sent(-1, tuple(info.finger_positions), tuple(info.eyes))
        return store.counts(), present
    finally:
        store.close()


def test_kill_9_during_enrolment_loses_nothing_acknowledged(
    tmp_path: Path, people: list[Person], thresholds: Thresholds
) -> None:
    crowd = people[-40:]  # the load test uses the front of the population
    server = ServerProcess(tmp_path / "crash", thresholds=thresholds, max_workers=4)
    ledger = Ledger({}, set(), threading.Lock(), [])
    rng = np.random.default_rng(4242)
    in_flight_present = in_flight_absent = 0
    t0 = time.perf_counter()
    server.start()
    try:
        for rnd in range(ROUNDS):
            acked_before = set(ledger.acked)
            sent_before = set(ledger.sent)
            stop = threading.Event()
            writers = [
                threading.Thread(
                    target=_writer,
                    args=(server.address, f"R{rnd}W{w}", crowd, r, ledger, stop),
                )
                for w, r in enumerate(rng.spawn(WRITERS))
            ]
            for t in writers:
                t.start()
            time.sleep(float(rng.uniform(*KILL_AFTER_S)))
            server.kill()
            stop.set()
            for t in writers:
                t.join(timeout=CALL_TIMEOUT_S + 5)
            assert not any(t.is_alive() for t in writers), "a writer hangs after the kill"
            assert not ledger.errors, f"round {rnd}: enrolments refused: {ledger.errors[:5]}"

            # While the server is down: the store holds every acknowledged person, whole.
            ids = sorted(ledger.sent)
            counts, present = _store_view(server, ids)
            lost = sorted(ledger.acked - set(present))
            assert not lost, f"round {rnd}: acknowledged but not in the store: {lost[:10]}"
            for pid, got in present.items():
                want = ledger.sent[pid]
                assert (got.positions, got.eyes) == (want.positions, want.eyes), (
                    f"round {rnd}: {pid} is half-written: store has fingers {got.positions} "
                    f"eyes {got.eyes}, the client sent {want.positions} {want.eyes}"
                )
            assert counts == {
                "persons": len(present),
                "fingers": sum(len(s.positions) for s in present.values()),
                "irises": sum(len(s.eyes) for s in present.values()),
            }, f"round {rnd}: the store holds samples of persons nobody sent"
            unacked = set(present) - ledger.acked
            in_flight_present += len(unacked)
            in_flight_absent += len(set(ledger.sent) - sent_before - ledger.acked - set(present))
            # What was in flight and did commit is acknowledged from now on: it must stay.
            ledger.acked |= unacked

            # Restarted on the same store: the galleries equal the store, and answer for it.
            server.start()
            with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=CALL_TIMEOUT_S) as c:
                info = c.info()
                assert (info["persons"], info["finger_templates"], info["iris_templates"]) == (
                    counts["persons"],
                    counts["fingers"],
                    counts["irises"],
                ), f"round {rnd}: galleries {info} differ from the store {counts}"
                for pid in sorted(ledger.acked):
                    person = c.get_person(pid)
                    want = ledger.sent[pid]
                    assert (tuple(person["finger_positions"]), tuple(person["eyes"])) == (
                        want.positions,
                        want.eyes,
                    )
                last = rnd == ROUNDS - 1
                earlier = sorted(acked_before)
                if not last and len(earlier) > VERIFY_EARLIER:
                    picks = rng.choice(len(earlier), VERIFY_EARLIER, replace=False)
                    earlier = [earlier[int(i)] for i in picks]
                for pid in sorted(ledger.acked - acked_before) + earlier:
                    want = ledger.sent[pid]
                    p = crowd[want.person]
                    d = c.verify(
                        pid,
                        fingers=p.records(want.positions, probe=True),
                        irises=p.codes(want.eyes, probe=True),
                    )
                    assert d.match, f"round {rnd}: {pid} no longer matches its own probe"
            assert server.serving()  # and it serves the next round's writers
    finally:
        server.kill()
    print(
        f"\ncrash: {ROUNDS} kill -9 rounds in {time.perf_counter() - t0:.1f} s; "
        f"{len(ledger.sent)} enrolments sent, {len(ledger.acked) - in_flight_present} "
        f"acknowledged, all present; in flight at a kill: {in_flight_present} committed (whole), "
        f"{in_flight_absent} absent"
    )

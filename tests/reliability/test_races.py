"""Reads during writes: a search must see every person either before or after a concurrent
change, never a person half-way through it.

These once failed: Engine.update dropped the person's row from the galleries and added it
back, and Engine.delete dropped it, under the write lock only, while searches took no lock, so a
search whose shortlist (or verify target) held that row in between failed with NOT_FOUND. Searches
now hold the galleries' shared lock for their whole run and changes are applied under the
exclusive one (matcher/rwlock.py).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import pytest

from matcher.client import MatcherClient
from matcher.thresholds import Thresholds
from tests.reliability.harness import ADMIN_TOKEN, RPC_TIMEOUT_S, Person, ServerProcess, status_of

PERSONS = 20
BUDGET_S = 8.0  # the bug shows within a second or two; a fixed server runs the whole budget


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, people: list[Person], thresholds: Thresholds
) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("races"), thresholds=thresholds)
    server.start()
    with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        for k in range(PERSONS):
            c.enroll(f"R-{k}", people[k].records([1, 2]), people[k].codes(["L"]))
    yield server
    server.kill()


def _hammer(address: str, people: list[Person], ks: list[int], stop: threading.Event) -> None:
    """Update these persons in turn with the same captures, until told to stop."""
    with MatcherClient(address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        while not stop.is_set():
            for k in ks:
                c.update(f"R-{k}", fingers=people[k].records([1]))


def _while_updating(
    server: ServerProcess, people: list[Person], ks: list[list[int]], read: Callable[[], None]
) -> Counter[str]:
    """Statuses of ``read()`` called repeatedly while other clients update the persons ``ks``."""
    stop = threading.Event()
    writers = [
        threading.Thread(target=_hammer, args=(server.address, people, group, stop)) for group in ks
    ]
    for t in writers:
        t.start()
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + BUDGET_S
    try:
        while time.monotonic() < deadline:
            try:
                read()
                seen["OK"] += 1
            except grpc.RpcError as error:
                seen[f"{status_of(error).name}: {error.details()}"] += 1
                if sum(seen.values()) - seen["OK"] >= 3:
                    break  # shown; no need to spend the whole budget
    finally:
        stop.set()
        for t in writers:
            t.join(timeout=RPC_TIMEOUT_S)
    return seen


def test_identify_while_others_are_updated(served: ServerProcess, people: list[Person]) -> None:
    probe = people[0].records([1, 2], probe=True)
    with MatcherClient(served.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:

        def read() -> None:
            found = [x.person_id for x in c.identify(fingers=probe)]
            assert found[:1] == ["R-0"], found

        seen = _while_updating(served, people, [list(range(1, 10)), list(range(10, PERSONS))], read)
    assert set(seen) == {"OK"}, seen


def test_verify_while_the_same_person_is_updated(
    served: ServerProcess, people: list[Person]
) -> None:
    probe = people[5].records([1, 2], probe=True)
    with MatcherClient(served.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:

        def read() -> None:
            assert c.verify("R-5", fingers=probe).match

        seen = _while_updating(served, people, [[5], [5]], read)
    assert set(seen) == {"OK"}, seen

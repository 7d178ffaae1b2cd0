"""Malformed requests, generated with hypothesis, against one real server on loopback.

Every request must get a proper refusal: INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND,
RESOURCE_EXHAUSTED or ALREADY_EXISTS from the service, or INTERNAL where gRPC itself cannot parse
the bytes as the method's message. UNKNOWN is never acceptable: it is an exception the service's
error table does not map, i.e. a bug. After each group the server must still be SERVING and hold
exactly the persons it held before. The server runs with ``--max-message-mb 1`` so oversize
messages are cheap to send. About 2,100 examples in all, at both sizes of the suite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amayesh.v1 import matcher_pb2 as pb
from amayesh.v1 import matcher_pb2_grpc as pb_grpc
from matcher.client import MatcherClient, iris_samples
from matcher.formats import ansi378, iso19794_2
from matcher.thresholds import Thresholds
from tests.reliability.harness import (
    ADMIN_TOKEN,
    GEO,
    RPC_TIMEOUT_S,
    Person,
    ServerProcess,
    status_of,
)

C = grpc.StatusCode
REFUSALS = frozenset(
    {
        C.INVALID_ARGUMENT,
        C.FAILED_PRECONDITION,
        C.NOT_FOUND,
        C.RESOURCE_EXHAUSTED,
        C.ALREADY_EXISTS,
    }
)
MAX_MESSAGE_MB = 1
ENROLLED = ("P-0", "P-1", "P-2")
META = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
METHODS = "/amayesh.v1.Matcher/"
GROUPS = 6 + 10 + 1  # hypothesis groups, oversize cases, the max_results case


def fuzz(examples: int):  # type: ignore[no-untyped-def]
    """hypothesis settings of one group: no example database on disk, no per-example deadline
    (the server shares two cores with the rest of the suite)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Target:
    """The server, a stub, valid material to damage, and a tally of statuses seen."""

    def __init__(self, server: ServerProcess, people: list[Person]) -> None:
        self.server = server
        self.channel = grpc.insecure_channel(server.address)
        self.stub = pb_grpc.MatcherStub(self.channel)
        self.people = people
        self.seen: dict[str, int] = {}
        self.sent = 0
        self.groups = 0  # groups (tests) that ran against it

    def call(self, method: str, request: object) -> grpc.StatusCode:
        self.sent += 1
        try:
            getattr(self.stub, method)(request, metadata=META, timeout=RPC_TIMEOUT_S)
            code = C.OK
        except grpc.RpcError as error:
            code = status_of(error)
            if code not in REFUSALS:
                raise AssertionError(f"{method}: {code.name}: {error.details()}") from None
        self.seen[code.name] = self.seen.get(code.name, 0) + 1
        return code

    def counts(self) -> tuple[int, int, int]:
        i = self.stub.GetInfo(pb.GetInfoRequest(), metadata=META, timeout=RPC_TIMEOUT_S)
        return (i.persons, i.finger_templates, i.iris_templates)


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, people: list[Person], thresholds: Thresholds
) -> Iterator[Target]:
    server = ServerProcess(
        tmp_path_factory.mktemp("fuzz"), thresholds=thresholds, max_message_mb=MAX_MESSAGE_MB
    )
    server.start()
    with MatcherClient(server.address, ADMIN_TOKEN, timeout_s=RPC_TIMEOUT_S) as c:
        for k, pid in enumerate(ENROLLED):
            c.enroll(pid, people[k].records([1, 2]), people[k].codes(["L", "R"]))
    t = Target(server, people)
    yield t
    t.channel.close()
    print(f"\nfuzz: {t.sent} malformed requests; statuses {dict(sorted(t.seen.items()))}")
    server.kill()


@pytest.fixture
def unchanged(target: Target) -> Iterator[Target]:
    """The group runs; then the server must be SERVING and hold what it held before."""
    before = target.counts()
    target.groups += 1
    yield target
    assert target.server.serving(), target.server.stderr_tail()
    assert target.counts() == before


# --------------------------------------------------------------------------- strategies
def _valid_record(target: Target, k: int, pos: int, version: str) -> bytes:
    t = target.people[k].fingers[pos]
    return ansi378.encode([t]) if version == "ansi" else iso19794_2.encode([t], version)


def _carry(kind: str, fingers: list[pb.FingerSample], irises: list[pb.IrisSample], pid: str):  # type: ignore[no-untyped-def]
    """The samples in a request of one of the four methods that take samples."""
    if kind == "Enroll":
        return pb.EnrollRequest(person_id="NEW-1", fingers=fingers, irises=irises)
    if kind == "Update":
        return pb.EnrollRequest(person_id=pid, fingers=fingers, irises=irises)
    if kind == "Verify":
        return pb.VerifyRequest(person_id=pid, fingers=fingers, irises=irises)
    return pb.IdentifyRequest(fingers=fingers, irises=irises)


SAMPLE_METHODS = st.sampled_from(["Enroll", "Update", "Verify", "Identify"])
PIDS = st.sampled_from(ENROLLED)


@st.composite
def damaged_records(draw: st.DrawFn, target: Target) -> tuple[str, object]:
    """A valid ISO 2005 / ISO 2011 / ANSI 378 record cut short, or the magic and random bytes."""
    version = draw(st.sampled_from(["2005", "2011", "ansi"]))
    k = draw(st.integers(0, len(ENROLLED) - 1))
    full = _valid_record(target, k, 1, version)
    if draw(st.booleans()):
        data = full[: draw(st.integers(0, len(full) - 1))]
    else:
        data = b"FMR\x00" + draw(st.binary(max_size=200))
    sample = pb.FingerSample(position=draw(st.integers(0, 10)), record=data)
    method = draw(SAMPLE_METHODS)
    return method, _carry(method, [sample], [], draw(PIDS))


SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"\xff\xd8\xff"]
SIGNATURES += [b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51", b"\xff\xa0", b"P5", b""]


@st.composite
def random_images(draw: st.DrawFn, target: Target) -> tuple[str, object]:
    """Random bytes (behind a real image signature, or none) as a finger or an eye image."""
    data = draw(st.sampled_from(SIGNATURES)) + draw(st.binary(min_size=0, max_size=600))
    method = draw(SAMPLE_METHODS)
    if draw(st.booleans()):
        f = [
            pb.FingerSample(
                position=draw(st.integers(1, 10)), image=data, dpi=draw(st.integers(0, 2000))
            )
        ]
        return method, _carry(method, f, [], draw(PIDS))
    eye = draw(st.sampled_from([pb.EYE_LEFT, pb.EYE_RIGHT]))
    return method, _carry(method, [], [pb.IrisSample(eye=eye, image=data)], draw(PIDS))


@st.composite
def bad_iris_codes(draw: st.DrawFn, target: Target) -> tuple[str, object]:
    """Iris codes with a wrong geometry, wrong byte lengths, an empty mask or an unknown eye."""
    code, mask = target.people[draw(st.integers(0, 2))].irises["L"]
    good = iris_samples({"L": (code, mask)})[0].code
    need = len(good.code)
    fault = draw(st.sampled_from(["shape", "code_len", "mask_len", "empty_mask", "eye"]))
    msg = pb.IrisCode()
    msg.CopyFrom(good)
    eye = pb.EYE_LEFT
    if fault == "shape":
        shape = draw(
            st.tuples(st.integers(0, 64), st.integers(0, 1024), st.integers(0, 8)).filter(
                lambda s: s != GEO.shape
            )
        )
        msg.rings, msg.columns, msg.bits = shape
    elif fault == "code_len":
        msg.code = draw(st.binary(max_size=2 * need).filter(lambda b: len(b) != need))
    elif fault == "mask_len":
        msg.mask = draw(st.binary(max_size=2 * need).filter(lambda b: len(b) != need))
    elif fault == "empty_mask":
        msg.mask = bytes(need)  # no valid bit to compare
    else:
        eye = draw(st.sampled_from([pb.EYE_UNSPECIFIED, 3, 7, 1000, 2**31 - 1]))
    method = draw(SAMPLE_METHODS)
    return method, _carry(method, [], [pb.IrisSample(eye=eye, code=msg)], draw(PIDS))


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def bad_minutiae(draw: st.DrawFn, target: Target) -> tuple[str, object]:
    """Minutiae with NaN/inf, coordinates off the image, unequal lengths, bad per-minutia codes."""
    t = target.people[draw(st.integers(0, 2))].fingers[2]
    n = t.n
    x, y, theta = t.x.tolist(), t.y.tolist(), t.theta.tolist()
    kind, quality = t.kind.tobytes(), t.quality.tobytes()
    width, height = t.width, t.height
    i = draw(st.integers(0, n - 1))
    fault = draw(
        st.sampled_from(["nan", "off_image", "negative", "lengths", "kind", "quality", "size"])
    )
    if fault == "nan":
        arr = draw(st.sampled_from([x, y, theta]))
        arr[i] = draw(NON_FINITE)
    elif fault == "off_image":
        x[i] = width + draw(st.floats(0, 1e30))
    elif fault == "negative":
        y[i] = -draw(st.floats(1e-3, 1e30))
    elif fault == "lengths":
        cut = draw(st.sampled_from(["x", "y", "theta"]))
        {"x": x, "y": y, "theta": theta}[cut].pop()
    elif fault == "kind":
        kind = kind[:i] + bytes([draw(st.integers(3, 255))]) + kind[i + 1 :]
    elif fault == "quality":
        quality = quality[:i] + bytes([draw(st.integers(101, 255))]) + quality[i + 1 :]
    else:
        width = draw(st.sampled_from([0, 2**32 - 1, 16384]))
    m = pb.Minutiae(x=x, y=y, theta=theta, kind=kind, quality=quality, width=width, height=height)
    sample = pb.FingerSample(position=2, minutiae=m, dpi=draw(st.sampled_from([0, 500])))
    method = draw(SAMPLE_METHODS)
    return method, _carry(method, [sample], [], draw(PIDS))


BAD_IDS = st.one_of(
    st.just(""),
    st.text(min_size=65, max_size=300),
    st.integers(1_000, 200_000).map(lambda n: "x" * n),
    st.sampled_from([" P-0", "P-0 ", "P\n0", "P\x000", "\u200b", "P\u2028"]),
)


@st.composite
def bad_fields(draw: st.DrawFn, target: Target) -> tuple[str, object]:
    """Positions and eyes out of range, bad person ids, bad rates and restrict lists."""
    rec = _valid_record(target, 0, 1, "2005")
    fault = draw(st.sampled_from(["position", "eye", "id", "rate", "restrict", "empty"]))
    if fault == "position":
        f = [pb.FingerSample(position=draw(st.integers(11, 2**32 - 1)), record=rec)]
        method = draw(SAMPLE_METHODS)
        return method, _carry(method, f, [], draw(PIDS))
    if fault == "eye":
        code, mask = target.people[0].irises["R"]
        s = iris_samples({"R": (code, mask)})[0]
        s.eye = draw(st.integers(3, 2**31 - 1) | st.just(0))
        method = draw(SAMPLE_METHODS)
        return method, _carry(method, [], [s], draw(PIDS))
    if fault == "id":
        pid = draw(BAD_IDS)
        f = [pb.FingerSample(position=1, record=_valid_record(target, 3, 1, "2011"))]
        method = draw(st.sampled_from(["Enroll", "Update", "Verify", "GetPerson", "Delete"]))
        if method == "Enroll":
            return method, pb.EnrollRequest(person_id=pid, fingers=f)
        if method == "Update":
            return method, pb.EnrollRequest(person_id=pid, fingers=f)
        if method == "Verify":
            return method, pb.VerifyRequest(person_id=pid, fingers=f)
        if method == "GetPerson":
            return method, pb.GetPersonRequest(person_id=pid)
        return method, pb.DeleteRequest(person_id=pid)
    f = [pb.FingerSample(position=1, record=_valid_record(target, 0, 1, "2005"))]
    if fault == "rate":
        bad = draw(NON_FINITE | st.floats(max_value=-1e-300) | st.floats(min_value=1.0))
        which = draw(st.sampled_from(["Verify", "Identify", "StartDedup"]))
        if which == "Verify":
            return which, pb.VerifyRequest(person_id=draw(PIDS), fingers=f, target_fmr=bad)
        if which == "Identify":
            return which, pb.IdentifyRequest(fingers=f, target_fpir=bad)
        return which, pb.StartDedupRequest(target_fmr=bad)
    if fault == "restrict":
        ids = draw(st.lists(BAD_IDS | st.text(min_size=1, max_size=10), min_size=1, max_size=5))
        return "Identify", pb.IdentifyRequest(fingers=f, restrict_to=ids)
    method = draw(SAMPLE_METHODS)  # no sample at all
    return method, _carry(method, [], [], draw(PIDS))


# --------------------------------------------------------------------------- the groups
def _check(target: Target, case: tuple[str, object]) -> None:
    method, request = case
    code = target.call(method, request)
    assert code != C.OK or method not in ("Enroll", "Update", "Delete"), f"{method} accepted"


def test_damaged_finger_records(unchanged: Target) -> None:
    @fuzz(350)
    @given(damaged_records(unchanged))
    def run(case: tuple[str, object]) -> None:
        _check(unchanged, case)

    run()


def test_random_bytes_as_images(unchanged: Target) -> None:
    @fuzz(350)
    @given(random_images(unchanged))
    def run(case: tuple[str, object]) -> None:
        _check(unchanged, case)

    run()


def test_wrong_iris_codes(unchanged: Target) -> None:
    @fuzz(300)
    @given(bad_iris_codes(unchanged))
    def run(case: tuple[str, object]) -> None:
        _check(unchanged, case)

    run()


def test_bad_minutiae(unchanged: Target) -> None:
    @fuzz(300)
    @given(bad_minutiae(unchanged))
    def run(case: tuple[str, object]) -> None:
        _check(unchanged, case)

    run()


def test_bad_positions_eyes_ids_and_rates(unchanged: Target) -> None:
    @fuzz(350)
    @given(bad_fields(unchanged))
    def run(case: tuple[str, object]) -> None:
        _check(unchanged, case)

    run()


# Raw bytes on every method path; StartDedup is left out: bytes that happen to parse (b"" does)
# start a real dedup job each, which is work, not a refusal. Its fields are fuzzed above.
RAW_METHODS = (
    "Enroll",
    "Update",
    "Delete",
    "Verify",
    "Identify",
    "GetPerson",
    "GetInfo",
    "GetDedupResults",
)
READ_ONLY = frozenset({"Verify", "Identify", "GetPerson", "GetInfo", "GetDedupResults"})


def test_random_bytes_as_raw_grpc_messages(unchanged: Target) -> None:
    channel = unchanged.channel
    calls = {
        m: channel.unary_unary(METHODS + m, request_serializer=None, response_deserializer=None)
        for m in RAW_METHODS
    }
    watch = channel.unary_stream(
        METHODS + "WatchJob", request_serializer=None, response_deserializer=None
    )

    @fuzz(400)
    @given(st.sampled_from((*RAW_METHODS, "WatchJob")), st.binary(max_size=300))
    def run(method: str, data: bytes) -> None:
        unchanged.sent += 1
        try:
            if method == "WatchJob":
                list(watch(data, metadata=META, timeout=RPC_TIMEOUT_S))
            else:
                calls[method](data, metadata=META, timeout=RPC_TIMEOUT_S)
            code = C.OK
        except grpc.RpcError as error:
            code = status_of(error)
            # INTERNAL is gRPC's own answer to bytes that do not parse as the request message.
            allowed = code in REFUSALS or (
                code == C.INTERNAL and "deserializing" in (error.details() or "")
            )
            assert allowed, f"{method} {data!r}: {code.name}: {error.details()}"
        assert code != C.OK or method in READ_ONLY, f"{method} {data!r} was accepted"
        unchanged.seen[code.name] = unchanged.seen.get(code.name, 0) + 1

    run()


@pytest.mark.parametrize(
    ("method", "make"),
    [
        (
            "Enroll",
            lambda n: pb.EnrollRequest(
                person_id="BIG",
                fingers=[pb.FingerSample(position=1, image=b"\xff\xd8\xff" + bytes(n))],
            ),
        ),
        (
            "Verify",
            lambda n: pb.VerifyRequest(
                person_id="P-0", irises=[pb.IrisSample(eye=1, image=bytes(n))]
            ),
        ),
        ("Identify", lambda n: pb.IdentifyRequest(restrict_to=["P-0"] * (n // 5 + 1))),
        ("Update", lambda n: pb.EnrollRequest(person_id="P-1", labels={"note": "x" * n})),
        ("GetPerson", lambda n: pb.GetPersonRequest(person_id="y" * n)),
    ],
)
@pytest.mark.parametrize("over", [1, 1 << 20])
def test_oversize_messages_are_refused(unchanged: Target, method: str, make, over: int) -> None:  # type: ignore[no-untyped-def]
    # The client's own limit is 16 MiB: the server's (1 MiB) is the one that refuses.
    request = make((MAX_MESSAGE_MB << 20) + over)
    assert request.ByteSize() > MAX_MESSAGE_MB << 20
    with pytest.raises(grpc.RpcError) as e:
        getattr(unchanged.stub, method)(request, metadata=META, timeout=RPC_TIMEOUT_S)
    assert status_of(e.value) == C.RESOURCE_EXHAUSTED, e.value.details()
    unchanged.sent += 1
    unchanged.seen["RESOURCE_EXHAUSTED"] = unchanged.seen.get("RESOURCE_EXHAUSTED", 0) + 1


def test_identify_with_a_huge_max_results_is_refused_or_answered(unchanged: Target) -> None:
    rec = _valid_record(unchanged, 0, 1, "2005")
    request = pb.IdentifyRequest(
        fingers=[pb.FingerSample(position=1, record=rec)], max_results=2**32 - 1
    )
    try:
        unchanged.stub.Identify(request, metadata=META, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as error:
        assert status_of(error) in REFUSALS, f"{status_of(error).name}: {error.details()}"


def test_fuzz_reached_its_count(target: Target) -> None:
    """Runs last in this module: the groups above sent at least 2,000 malformed requests."""
    if target.groups < GROUPS:
        pytest.skip(f"only {target.groups} of the {GROUPS} groups ran (a selection)")
    assert target.sent >= 2000, target.sent

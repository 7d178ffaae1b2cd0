"""enrollment.sms: templates, senders, and the persisted outbox with retries (a flaky sender)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest

from enrollment.errors import InvalidInput
from enrollment.sms import (
    ConsoleSender,
    FileSender,
    Outbox,
    SendFailed,
    normalise_mobile,
    render,
)
from enrollment.store import EnrollmentStore, queue_sms

TEST_KEY = bytes(range(32))  # the store key (AES-256) of these tests


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2024, 5, 4, 8, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Flaky:
    """Fails the first ``failures`` sends, then records what it sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise SendFailed("gateway timeout")
        self.sent.append((to, body))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = EnrollmentStore.open(f"sqlite:///{tmp_path / 'e.db'}", key=TEST_KEY)
    yield s
    s.close()


def _queue(store: EnrollmentStore, clock: Clock, n: int = 1) -> None:
    with store.write() as conn:
        for i in range(n):
            queue_sms(conn, None, "09120000000", "recall", f"message {i}", clock())


def test_a_flaky_sender_is_retried_with_backoff_until_it_delivers(store: EnrollmentStore) -> None:
    clock = Clock()
    sender = Flaky(failures=2)
    box = Outbox(store, sender, max_attempts=5, first_delay_s=30, clock=clock)
    _queue(store, clock)
    assert box.deliver_due().retrying == 1
    assert box.deliver_due() == box.deliver_due().__class__()  # not due again yet
    clock.advance(30)
    assert box.deliver_due().retrying == 1
    clock.advance(59)
    assert box.deliver_due().sent == 0  # the second wait is 60 s
    clock.advance(1)
    assert box.deliver_due().sent == 1
    [m] = box.messages()
    assert (m["state"], m["attempts"], m["last_error"]) == ("sent", 3, None)
    assert sender.sent == [("09120000000", "message 0")]
    assert box.deliver_due().sent == 0  # sent once


def test_a_message_is_given_up_after_max_attempts(store: EnrollmentStore) -> None:
    clock = Clock()
    box = Outbox(store, Flaky(failures=100), max_attempts=3, first_delay_s=1, clock=clock)
    _queue(store, clock, n=2)
    for _ in range(3):
        box.deliver_due()
        clock.advance(3600)
    assert [(m["state"], m["attempts"]) for m in box.messages()] == [("failed", 3)] * 2
    assert all(m["last_error"] == "gateway timeout" for m in box.messages())
    assert box.deliver_due().sent == 0


def test_the_outbox_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with EnrollmentStore.open(url, key=TEST_KEY) as s:
        _queue(s, clock, n=3)
    sent = tmp_path / "sms.jsonl"
    with EnrollmentStore.open(url, key=TEST_KEY) as s:
        assert Outbox(s, FileSender(sent), clock=clock).deliver_due().sent == 3
    lines = [json.loads(x) for x in sent.read_text(encoding="utf-8").splitlines()]
    assert [x["body"] for x in lines] == ["message 0", "message 1", "message 2"]


def test_console_sender_writes_one_line_per_message() -> None:
    out = io.StringIO()
    ConsoleSender(out).send("09121111111", "line one\nline two")
    assert out.getvalue() == "SMS 09121111111\tline one line two\n"


def test_templates_write_jalali_dates_and_persian_digits() -> None:
    text = render(
        "appointment",
        household="HH-42",
        date=dt.date(2024, 5, 4),
        time="08:30",
        office="دفتر ۱",
        cards=3,
        fee=500_000,
        total=1_500_000,
        how_to_pay="فیش بانکی",
    )
    assert "۱۵ اردیبهشت ۱۴۰۳" in text and "۰۸:۳۰" in text and "HH-۴۲" in text
    assert "۵۰۰٬۰۰۰ ریال" in text and "۱٬۵۰۰٬۰۰۰ ریال" in text
    assert not re.search(r"[0-9]", text)  # no ASCII digit reaches the head
    with pytest.raises(InvalidInput, match="needs field"):
        render("recall", household="HH-1")
    with pytest.raises(InvalidInput):
        render("no-such-template")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0912 345 6789", "09123456789"),
        ("+98 912-345-6789", "09123456789"),
        ("00989123456789", "09123456789"),
        ("۰۹۱۲۳۴۵۶۷۸۹", "09123456789"),
        ("9123456789", "09123456789"),
    ],
)
def test_mobile_numbers_are_normalised(given: str, expected: str) -> None:
    assert normalise_mobile(given) == expected


@pytest.mark.parametrize("bad", ["02537001122", "0912345678", "hello", ""])
def test_bad_mobile_numbers_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_mobile(bad)

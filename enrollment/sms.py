"""SMS to household heads: Persian templates, a persisted outbox, pluggable senders, retries.

The workflow never sends: it puts a message into ``enr_outbox`` in the same transaction as the
change that causes it (so a message exists exactly when that change committed). :class:`Outbox`
delivers due messages through a :class:`Sender`; a send that raises :class:`SendFailed` or
``OSError`` is retried with exponential back-off until ``max_attempts``, after which the message
is ``failed`` (kept, with its last error, for an operator). Delivery is at least once: a message is
claimed (its next attempt pushed a lease ahead) before it is sent, so two dispatchers do not send it
at the same moment, but a crash between sending and recording sends it again.

Templates write dates in the Jalali calendar and all numbers with Persian digits.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import sqlalchemy as sa

from enrollment.calendar import persian_digits, rials_text, to_jalali_text
from enrollment.errors import InvalidInput, WorkflowError
from enrollment.store import EnrollmentStore, now_utc, outbox
from matcher.errors import MatcherError

__all__ = [
    "Sender",
    "SendFailed",
    "FileSender",
    "ConsoleSender",
    "Outbox",
    "Delivery",
    "Dispatcher",
    "TEMPLATES",
    "render",
    "normalise_mobile",
]

_MOBILE = re.compile(r"09\d{9}")
_PERSIAN_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


class SendFailed(WorkflowError, RuntimeError):
    """A sender could not hand a message over (gateway down, quota): worth a retry."""


class Sender(Protocol):
    """Delivers one message. Raise :class:`SendFailed` (or ``OSError``) to have it retried."""

    def send(self, to: str, body: str) -> None: ...


class FileSender:
    """Appends one JSON line per message (``{"at", "to", "body"}``) to a file: the default for an
    office without an SMS gateway, and for tests. Thread-safe within a process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, to: str, body: str) -> None:
        line = json.dumps({"at": now_utc().isoformat(), "to": to, "body": body}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


class ConsoleSender:
    """Writes ``to<TAB>body`` lines to a stream (stdout by default), for development."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, to: str, body: str) -> None:
        self.stream.write(f"SMS {to}\t{body.replace(chr(10), ' ')}\n")
        self.stream.flush()


def normalise_mobile(phone: str) -> str:
    """An Iranian mobile number as ``09xxxxxxxxx``, from ``+98 9xx``, ``0098...``, ``9xx...``,
    Persian digits, spaces or dashes; :class:`InvalidInput` otherwise."""
    if not isinstance(phone, str):
        raise InvalidInput("a phone number must be a string")
    digits = re.sub(r"[\s\-()]", "", phone.translate(_PERSIAN_TO_ASCII))
    for prefix in ("+98", "0098", "98"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 10:
            digits = "0" + digits[len(prefix) :]
    if len(digits) == 10 and digits.startswith("9"):
        digits = "0" + digits
    if not _MOBILE.fullmatch(digits):
        raise InvalidInput(f"{phone!r} is not an Iranian mobile number (09xxxxxxxxx)")
    return digits


# --- templates ------------------------------------------------------------------------------

TEMPLATES: Mapping[str, str] = {
    "recall": (
        "سرپرست محترم خانوار {household}: طرح تمدید کارت آمایش سال {year} آغاز شد. "
        "برای نوبت‌دهی با دفتر {office} (تلفن {office_phone}) در تماس باشید."
    ),
    "appointment": (
        "خانوار {household}: نوبت شما {date} ساعت {time} در دفتر {office}. "
        "هزینه قانونی: {cards} کارت × {fee} = {total}. روش پرداخت: {how_to_pay}. "
        "فیش پرداخت و همه مدارک قبلی (کارت‌ها و برگ‌های تردد) اعضای خانوار را همراه بیاورید."
    ),
    "event_referral": (
        "خانوار {household}: به دلیل تغییر در خانوار ({event}) ابتدا به واحد مجاز اداره کل "
        "امور اتباع مراجعه کنید؛ پس از ثبت تغییر، به دفتر {office} برگردید."
    ),
    "cards_ready": (
        "خانوار {household}: {cards} کارت آمایش با اعتبار از {valid_from} تا {valid_to} "
        "صادر شد و به سرپرست خانوار تحویل داده می‌شود."
    ),
}

EVENT_NAMES_FA: Mapping[str, str] = {
    "birth": "تولد",
    "death": "فوت",
    "marriage": "ازدواج",
    "divorce": "طلاق",
    "member_left": "جدا شدن عضو",
    "member_joined": "پیوستن عضو",
}


def render(template: str, **fields: object) -> str:
    """The text of ``template`` with ``fields``: dates (``datetime.date``) in Jalali, integers
    with Persian digits (``*_rials`` / ``fee`` / ``total`` as money), everything else as text."""
    if template not in TEMPLATES:
        raise InvalidInput(f"unknown SMS template {template!r}")
    shown: dict[str, str] = {}
    for name, value in fields.items():
        if isinstance(value, dt.date):
            shown[name] = to_jalali_text(value)
        elif isinstance(value, int) and name in ("fee", "total"):
            shown[name] = rials_text(value)
        else:
            shown[name] = persian_digits(value)
    try:
        return TEMPLATES[template].format(**shown)
    except KeyError as exc:
        raise InvalidInput(f"SMS template {template!r} needs field {exc.args[0]!r}") from None


# --- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What one :meth:`Outbox.deliver_due` pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0


class Outbox:
    """Delivers the persisted outbox through ``sender``.

    ``max_attempts``: sends tried before a message is ``failed``. ``first_delay_s``: wait after
    the first failure, doubled after each later one. ``lease_s``: how long a claimed message is
    hidden from other dispatchers. ``clock``: the current UTC time (tests move it forward).
    """

    def __init__(
        self,
        store: EnrollmentStore,
        sender: Sender,
        max_attempts: int = 5,
        first_delay_s: float = 30.0,
        lease_s: float = 120.0,
        clock: Callable[[], dt.datetime] = now_utc,
    ) -> None:
        if max_attempts < 1 or first_delay_s < 0 or lease_s <= 0:
            raise InvalidInput("need max_attempts >= 1, first_delay_s >= 0 and lease_s > 0")
        self.store = store
        self.sender = sender
        self.max_attempts = max_attempts
        self.first_delay_s = first_delay_s
        self.lease_s = lease_s
        self.clock = clock

    def deliver_due(self, limit: int = 100) -> Delivery:
        """Try every pending message whose time has come (oldest first, at most ``limit``)."""
        now = self.clock()
        with self.store.read() as conn:
            due = conn.execute(
                sa.select(outbox.c.message_id, outbox.c.next_attempt_at)
                .where(outbox.c.state == "pending", outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.message_id)
                .limit(limit)
            ).all()
        sent = retrying = failed = 0
        for message_id, next_at in due:
            claimed = self._claim(int(message_id), next_at, now)
            if claimed is None:
                continue  # another dispatcher has it
            to, body, attempts = claimed
            try:
                self.sender.send(to, body)
            except (SendFailed, OSError) as exc:
                if self._failed(int(message_id), attempts, str(exc) or type(exc).__name__):
                    failed += 1
                else:
                    retrying += 1
                continue
            self._sent(int(message_id))
            sent += 1
        return Delivery(sent, retrying, failed)

    def messages(self, application_id: int | None = None) -> list[dict[str, object]]:
        """The outbox rows (of one application if given), oldest first."""
        query = sa.select(outbox).order_by(outbox.c.message_id)
        if application_id is not None:
            query = query.where(outbox.c.application_id == application_id)
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _claim(
        self, message_id: int, next_at: dt.datetime, now: dt.datetime
    ) -> tuple[str, str, int] | None:
        lease = now + dt.timedelta(seconds=self.lease_s)
        with self.store.write() as conn:
            done = conn.execute(
                outbox.update()
                .where(
                    outbox.c.message_id == message_id,
                    outbox.c.state == "pending",
                    outbox.c.next_attempt_at == next_at,
                )
                .values(next_attempt_at=lease, attempts=outbox.c.attempts + 1)
            )
            if done.rowcount != 1:
                return None
            row = conn.execute(
                sa.select(outbox.c.to_phone, outbox.c.body, outbox.c.attempts).where(
                    outbox.c.message_id == message_id
                )
            ).one()
        return str(row.to_phone), str(row.body), int(row.attempts)

    def _failed(self, message_id: int, attempts: int, error: str) -> bool:
        """Record a failed attempt; True when the message is given up."""
        give_up = attempts >= self.max_attempts
        delay = self.first_delay_s * 2 ** (attempts - 1)
        with self.store.write() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.message_id == message_id)
                .values(
                    state="failed" if give_up else "pending",
                    last_error=error[:500],
                    next_attempt_at=self.clock() + dt.timedelta(seconds=delay),
                )
            )
        return give_up

    def _sent(self, message_id: int) -> None:
        with self.store.write() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.message_id == message_id)
                .values(state="sent", sent_at=self.clock(), last_error=None)
            )


class Dispatcher:
    """A daemon thread that calls :meth:`Outbox.deliver_due` every ``interval_s`` seconds until
    :meth:`stop`. A pass that fails (database busy or gone, a sender's own error) is reported to
    ``log`` (stderr by default) and tried again at the next tick: the outbox keeps the messages."""

    def __init__(self, outbox: Outbox, interval_s: float = 10.0, log: TextIO | None = None) -> None:
        if not interval_s > 0:
            raise InvalidInput(f"the dispatch interval must be positive, got {interval_s}")
        self.outbox = outbox
        self.interval_s = interval_s
        self.log = log or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="amayesh-sms", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for the pass in progress (at most ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                done = self.outbox.deliver_due()
            except (sa.exc.SQLAlchemyError, WorkflowError, MatcherError, OSError) as exc:
                print(f"amayesh sms: delivery pass failed: {exc}", file=self.log, flush=True)
                continue
            if done.retrying or done.failed:
                print(
                    f"amayesh sms: {done.sent} sent, {done.retrying} to retry, "
                    f"{done.failed} given up",
                    file=self.log,
                    flush=True,
                )

"""Appointment slots: offices' working days and hours, daily capacity, the round's window.

An office receives at most ``daily_capacity`` households a working day. Its working hours are cut
into that many equal slots, so slot *k* of a day starts at ``opens + k * (closes - opens) //
capacity`` minutes after midnight and every household gets a distinct time. A household is given
the first free slot of the first working day on or after the day asked for, within the round
(1 to 3 weeks); when every working day of the round is full, :class:`CapacityExceeded`.

Pure functions over :class:`Office` and :class:`Round`; the workflow does the reading and the
insert (a UNIQUE (office, day, slot) constraint settles two caseworkers booking at once).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from enrollment.calendar import jalali_year_of, to_jalali_text
from enrollment.errors import CapacityExceeded, InvalidInput

__all__ = [
    "Office",
    "Round",
    "Slot",
    "MIN_ROUND_DAYS",
    "MAX_ROUND_DAYS",
    "IRAN_WORK_WEEK",
    "working_days",
    "slot_start",
    "first_free_slot",
]

#: A round lasts one to three weeks, both days inclusive.
MIN_ROUND_DAYS = 7
MAX_ROUND_DAYS = 21
#: Saturday to Wednesday, as Python weekday numbers (Monday = 0): offices close Thursday, Friday.
IRAN_WORK_WEEK = "56012"
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Office:
    """A card office. Hours are minutes after midnight (local time), ``opens_min`` inclusive,
    ``closes_min`` exclusive; ``working_weekdays`` a string of Python weekday digits."""

    office_id: str
    name: str
    phone: str
    daily_capacity: int
    opens_min: int = 8 * 60
    closes_min: int = 14 * 60
    working_weekdays: str = IRAN_WORK_WEEK
    payment_instructions: str = "واریز به حساب اعلام‌شده دولت در بانک و ارائه فیش در دفتر"

    def __post_init__(self) -> None:
        if not self.office_id or not self.office_id.isprintable() or len(self.office_id) > 32:
            raise InvalidInput("an office id is 1-32 printable characters")
        if not self.name.strip():
            raise InvalidInput(f"office {self.office_id}: a name is required")
        if isinstance(self.daily_capacity, bool) or not isinstance(self.daily_capacity, int):
            raise InvalidInput(f"office {self.office_id}: daily capacity must be an integer")
        if not 0 <= self.opens_min < self.closes_min <= MINUTES_PER_DAY:
            raise InvalidInput(
                f"office {self.office_id}: working hours must satisfy 0 <= opens < closes <= "
                f"{MINUTES_PER_DAY} minutes"
            )
        if not 1 <= self.daily_capacity <= self.closes_min - self.opens_min:
            raise InvalidInput(
                f"office {self.office_id}: daily capacity must be 1 to one household a minute "
                f"of working hours, got {self.daily_capacity}"
            )
        days = self.working_weekdays
        if not days or len(set(days)) != len(days) or not set(days) <= set("0123456"):
            raise InvalidInput(
                f"office {self.office_id}: working weekdays are distinct digits 0-6 "
                f"(Monday = 0), got {days!r}"
            )


@dataclass(frozen=True)
class Round:
    """The renewal round of a Jalali year, open from ``starts_on`` through ``ends_on``."""

    jalali_year: int
    starts_on: dt.date
    ends_on: dt.date

    def __post_init__(self) -> None:
        days = (self.ends_on - self.starts_on).days + 1
        if not MIN_ROUND_DAYS <= days <= MAX_ROUND_DAYS:
            raise InvalidInput(
                f"a round lasts {MIN_ROUND_DAYS} to {MAX_ROUND_DAYS} days; "
                f"{self.starts_on}..{self.ends_on} is {days}"
            )
        if jalali_year_of(self.starts_on) != self.jalali_year:
            raise InvalidInput(
                f"the round of {self.jalali_year} must open within that Jalali year; "
                f"{to_jalali_text(self.starts_on)} is not"
            )


@dataclass(frozen=True)
class Slot:
    office_id: str
    day: dt.date
    slot: int
    starts_min: int

    @property
    def time_text(self) -> str:
        return f"{self.starts_min // 60:02d}:{self.starts_min % 60:02d}"


def working_days(office: Office, first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """The office's working days from ``first`` through ``last``, in order."""
    day = first
    while day <= last:
        if str(day.weekday()) in office.working_weekdays:
            yield day
        day += dt.timedelta(days=1)


def slot_start(office: Office, slot: int) -> int:
    """Minutes after midnight at which slot ``slot`` (0-based) of a working day starts."""
    if not 0 <= slot < office.daily_capacity:
        raise InvalidInput(f"slot {slot} is outside 0..{office.daily_capacity - 1}")
    return office.opens_min + slot * (office.closes_min - office.opens_min) // office.daily_capacity


def first_free_slot(
    office: Office,
    round_: Round,
    booked: Mapping[dt.date, set[int]],
    on_or_after: dt.date | None = None,
    exact_day: bool = False,
) -> Slot:
    """The earliest free slot at ``office`` within the round, on or after ``on_or_after`` (the
    round's first day by default). ``booked``: day -> slots taken. ``exact_day``: only that day.
    :class:`CapacityExceeded` when none is left, saying where and when it looked."""
    start = on_or_after or round_.starts_on
    if not round_.starts_on <= start <= round_.ends_on:
        raise InvalidInput(
            f"{to_jalali_text(start)} is outside the round "
            f"({to_jalali_text(round_.starts_on)} - {to_jalali_text(round_.ends_on)})"
        )
    last = start if exact_day else round_.ends_on
    looked = 0
    for day in working_days(office, start, last):
        looked += 1
        taken = booked.get(day, set())
        for slot in range(office.daily_capacity):
            if slot not in taken:
                return Slot(office.office_id, day, slot, slot_start(office, slot))
    if exact_day and looked == 0:
        raise InvalidInput(f"office {office.office_id} does not work on {start.isoformat()}")
    raise CapacityExceeded(
        f"office {office.office_id} is full ({office.daily_capacity} households a working day) "
        f"from {start.isoformat()} to {last.isoformat()}; choose another office or day"
    )

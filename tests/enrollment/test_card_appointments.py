"""enrollment.appointments: working days, slot times, capacity, round windows (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest

from enrollment.appointments import Office, Round, first_free_slot, slot_start, working_days
from enrollment.errors import CapacityExceeded, InvalidInput

OFFICE = Office("Q", "Qom", "0253", daily_capacity=4, opens_min=8 * 60, closes_min=14 * 60)
ROUND = Round(1403, dt.date(2024, 5, 4), dt.date(2024, 5, 10))  # Saturday to Friday


def test_offices_work_saturday_to_wednesday_by_default() -> None:
    days = list(working_days(OFFICE, ROUND.starts_on, ROUND.ends_on))
    assert [d.strftime("%a") for d in days] == ["Sat", "Sun", "Mon", "Tue", "Wed"]


def test_slots_share_the_working_hours() -> None:
    assert [slot_start(OFFICE, k) for k in range(4)] == [480, 570, 660, 750]
    with pytest.raises(InvalidInput):
        slot_start(OFFICE, 4)


def test_the_first_free_slot_and_then_capacity_exceeded() -> None:
    booked: dict[dt.date, set[int]] = {}
    given = []
    for _ in range(5 * OFFICE.daily_capacity):
        s = first_free_slot(OFFICE, ROUND, booked)
        booked.setdefault(s.day, set()).add(s.slot)
        given.append((s.day, s.slot))
    assert len(set(given)) == 20 and given[0] == (ROUND.starts_on, 0)
    assert given[4] == (dt.date(2024, 5, 5), 0)
    with pytest.raises(CapacityExceeded, match="full"):
        first_free_slot(OFFICE, ROUND, booked)
    # A freed slot is given again; a day asked for is honoured or refused.
    booked[dt.date(2024, 5, 6)].discard(2)
    assert first_free_slot(OFFICE, ROUND, booked).time_text == "11:00"
    with pytest.raises(CapacityExceeded):
        first_free_slot(OFFICE, ROUND, booked, dt.date(2024, 5, 7), exact_day=True)
    with pytest.raises(InvalidInput, match="does not work"):
        first_free_slot(OFFICE, ROUND, {}, dt.date(2024, 5, 9), exact_day=True)  # Thursday
    with pytest.raises(InvalidInput, match="outside the round"):
        first_free_slot(OFFICE, ROUND, {}, dt.date(2024, 6, 1))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt.date(2024, 5, 4), dt.date(2024, 5, 9)),  # 6 days: under a week
        (dt.date(2024, 5, 4), dt.date(2024, 5, 25)),  # 22 days: over three weeks
        (dt.date(2024, 3, 1), dt.date(2024, 3, 10)),  # opens in 1402
    ],
)
def test_a_round_lasts_one_to_three_weeks_within_its_year(start: dt.date, end: dt.date) -> None:
    with pytest.raises(InvalidInput):
        Round(1403, start, end)


@pytest.mark.parametrize(
    "kw",
    [
        {"daily_capacity": 0},
        {"opens_min": 900, "closes_min": 800},
        {"working_weekdays": "78"},
        {"working_weekdays": "00"},
        {"daily_capacity": 500, "opens_min": 480, "closes_min": 500},
    ],
)
def test_bad_offices_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Office("Q", "Qom", "0253", **{"daily_capacity": 4, **kw})  # type: ignore[arg-type]

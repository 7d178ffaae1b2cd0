"""enrollment.calendar: Jalali card validity, leap years and Esfand 30, Persian text, rials."""

from __future__ import annotations

import datetime as dt

import pytest

from enrollment.calendar import (
    CARD_FEE_RIALS,
    card_validity,
    esfand_days,
    from_jalali,
    is_leap,
    jalali_year_of,
    persian_digits,
    rials_text,
    to_jalali,
    to_jalali_numeric,
    to_jalali_text,
)
from enrollment.errors import InvalidInput


@pytest.mark.parametrize(
    ("year", "first", "last"),
    [
        (1402, dt.date(2023, 6, 21), dt.date(2024, 6, 19)),  # Esfand 1402 has 29 days
        (1403, dt.date(2024, 6, 20), dt.date(2025, 6, 20)),  # ... 1403 has 30: 366 days
        (1404, dt.date(2025, 6, 21), dt.date(2026, 6, 20)),
        (1407, dt.date(2028, 6, 20), dt.date(2029, 6, 19)),  # 1408 is the leap year, not 1407
        (1408, dt.date(2029, 6, 20), dt.date(2030, 6, 20)),
    ],
)
def test_card_validity_runs_from_khordad_31_to_khordad_30(
    year: int, first: dt.date, last: dt.date
) -> None:
    assert card_validity(year) == (first, last)
    j_first, j_last = to_jalali(first), to_jalali(last)
    assert (j_first.year, j_first.month, j_first.day) == (year, 3, 31)
    assert (j_last.year, j_last.month, j_last.day) == (year + 1, 3, 30)
    # One card year: 366 days exactly when Esfand 30 of the round's year falls inside.
    assert (last - first).days + 1 == 365 + is_leap(year)


def test_consecutive_rounds_leave_no_gap_and_no_overlap() -> None:
    for year in range(1395, 1420):
        assert card_validity(year)[1] + dt.timedelta(days=1) == card_validity(year + 1)[0]


def test_leap_years_and_esfand_30() -> None:
    leap = [y for y in range(1395, 1412) if is_leap(y)]
    assert leap == [1395, 1399, 1403, 1408]
    assert esfand_days(1403) == 30 and esfand_days(1404) == 29
    assert from_jalali(1403, 12, 30) == dt.date(2025, 3, 20)
    assert from_jalali(1403, 12, 30) + dt.timedelta(days=1) == from_jalali(1404, 1, 1)
    assert from_jalali(1404, 12, 29) + dt.timedelta(days=1) == from_jalali(1405, 1, 1)
    with pytest.raises(InvalidInput, match="not a Jalali date"):
        from_jalali(1404, 12, 30)
    with pytest.raises(InvalidInput):
        from_jalali(1403, 7, 31)  # the second half-year's months have 30 days
    assert to_jalali_text(dt.date(2025, 3, 20)) == "۳۰ اسفند ۱۴۰۳"


def test_every_day_round_trips_and_years_have_their_length() -> None:
    for year in range(1398, 1410):
        start = from_jalali(year, 1, 1)
        length = (from_jalali(year + 1, 1, 1) - start).days
        assert length == 365 + is_leap(year)
        for offset in range(length):
            day = start + dt.timedelta(days=offset)
            j = to_jalali(day)
            assert from_jalali(j.year, j.month, j.day) == day
            assert jalali_year_of(day) == year


def test_text_uses_persian_digits_and_month_names() -> None:
    assert to_jalali_text(dt.date(2024, 6, 20)) == "۳۱ خرداد ۱۴۰۳"
    assert to_jalali_numeric(dt.date(2024, 3, 20)) == "۱۴۰۳/۰۱/۰۱"
    assert to_jalali_text(dt.datetime(2024, 3, 19, 23, 0)) == "۲۹ اسفند ۱۴۰۲"
    assert persian_digits("HH-0123") == "HH-۰۱۲۳"
    assert rials_text(CARD_FEE_RIALS) == "۵۰۰٬۰۰۰ ریال"
    assert rials_text(2_500_000) == "۲٬۵۰۰٬۰۰۰ ریال"


@pytest.mark.parametrize("bad", [2024, 0, 1403.0, True, "1403"])
def test_bad_years_and_money_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        card_validity(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        rials_text(500_000.0)  # type: ignore[arg-type]

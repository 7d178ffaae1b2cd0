"""Jalali (Solar Hijri) dates, card validity and money for the card round.

DESIGN.md, "Calendar and money": dates are stored as Gregorian ISO dates and shown to people in
the Jalali calendar with Persian digits; the validity of a card is computed in the Jalali calendar;
money is integer rials.

Jalali facts used here (``jdatetime`` does the arithmetic):

- months 1-6 have 31 days, 7-11 have 30, Esfand (12) has 29, or 30 in a leap year; so Khordad 31
  (3/31) exists every year and Esfand 30 only in leap years (e.g. 1399, 1403, 1408);
- a card of round *Y* is valid from Khordad 31 of *Y* through Khordad 30 of *Y + 1* (the day before
  Khordad 31 of *Y + 1*): 365 days, or 366 when Esfand 30 of *Y* falls inside.
"""

from __future__ import annotations

import datetime as dt

import jdatetime

from enrollment.errors import InvalidInput

__all__ = [
    "CARD_FEE_RIALS",
    "VALIDITY_MONTH",
    "VALIDITY_DAY",
    "card_validity",
    "is_leap",
    "esfand_days",
    "jalali_year_of",
    "to_jalali",
    "from_jalali",
    "to_jalali_text",
    "to_jalali_numeric",
    "parse_date",
    "persian_digits",
    "rials_text",
]

#: The legal fee of one card, in rials (integer money only).
CARD_FEE_RIALS = 500_000
#: Cards start on Khordad 31 (month 3, day 31) of the round's Jalali year.
VALIDITY_MONTH = 3
VALIDITY_DAY = 31
#: Years this module accepts: wide enough for any document a refugee holds, narrow enough to
#: catch a Gregorian year passed by mistake.
MIN_YEAR, MAX_YEAR = 1300, 1500

_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_ASCII_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
_MONTHS_FA = (
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
)


def _check_year(jalali_year: object) -> int:
    if isinstance(jalali_year, bool) or not isinstance(jalali_year, int):
        raise InvalidInput(f"a Jalali year must be an integer, got {jalali_year!r}")
    if not MIN_YEAR <= jalali_year <= MAX_YEAR:
        raise InvalidInput(
            f"Jalali year {jalali_year} is outside {MIN_YEAR}-{MAX_YEAR} (a Gregorian year?)"
        )
    return jalali_year


def is_leap(jalali_year: int) -> bool:
    """Whether Esfand of ``jalali_year`` has 30 days (jdatetime's calendar, which follows the
    official one, including years such as 1408 where a plain 33-year rule errs)."""
    return bool(jdatetime.date(_check_year(jalali_year), 1, 1).isleap())


def esfand_days(jalali_year: int) -> int:
    """Days in Esfand of ``jalali_year``: 30 in a leap year, else 29."""
    return 30 if is_leap(jalali_year) else 29


def to_jalali(day: dt.date) -> jdatetime.date:
    """The Jalali date of a Gregorian ``datetime.date``."""
    if not isinstance(day, dt.date):
        raise InvalidInput(f"expected a datetime.date, got {type(day).__name__}")
    if isinstance(day, dt.datetime):
        day = day.date()
    return jdatetime.date.fromgregorian(date=day)


def from_jalali(year: int, month: int, day: int) -> dt.date:
    """The Gregorian date of Jalali ``year/month/day``; :class:`InvalidInput` for a day that does
    not exist (Esfand 30 of a common year, Mehr 31, ...)."""
    _check_year(year)
    try:
        return jdatetime.date(year, month, day).togregorian()
    except ValueError as exc:
        raise InvalidInput(f"{year}/{month:02d}/{day:02d} is not a Jalali date: {exc}") from None


def jalali_year_of(day: dt.date) -> int:
    """The Jalali year ``day`` falls in (a year starts at Nowruz, Farvardin 1, about March 21)."""
    return int(to_jalali(day).year)


def card_validity(jalali_year: int) -> tuple[dt.date, dt.date]:
    """``(first_day, last_day)``, Gregorian, of the cards issued in the round of ``jalali_year``:
    Khordad 31 of that year through Khordad 30 of the next, both inclusive."""
    year = _check_year(jalali_year)
    first = from_jalali(year, VALIDITY_MONTH, VALIDITY_DAY)
    last = from_jalali(year + 1, VALIDITY_MONTH, VALIDITY_DAY - 1)
    return first, last


def persian_digits(text: object) -> str:
    """``str(text)`` with ASCII digits written as Persian (Extended Arabic-Indic) digits."""
    return str(text).translate(_PERSIAN_DIGITS)


def to_jalali_text(day: dt.date) -> str:
    """``day`` as people read it: ``"۳۱ خرداد ۱۴۰۳"`` (day, Persian month name, year)."""
    j = to_jalali(day)
    return persian_digits(f"{j.day} {_MONTHS_FA[j.month - 1]} {j.year}")


def to_jalali_numeric(day: dt.date) -> str:
    """``day`` as ``"۱۴۰۳/۰۳/۳۱"``, the form printed on cards."""
    j = to_jalali(day)
    return persian_digits(f"{j.year:04d}/{j.month:02d}/{j.day:02d}")


def rials_text(amount_rials: int) -> str:
    """An amount as ``"۵۰۰٬۰۰۰ ریال"`` (Persian digits, Arabic thousands separator)."""
    if isinstance(amount_rials, bool) or not isinstance(amount_rials, int):
        raise InvalidInput(f"money is integer rials, got {amount_rials!r}")
    return persian_digits(f"{amount_rials:,}".replace(",", "٬")) + " ریال"


def parse_date(text: str) -> dt.date:
    """A date typed by a person or sent by a client: ``"2024-05-04"`` or ``"2024/05/04"``
    (Gregorian), or the same shapes with a Jalali year (1300-1500), ``"1403/02/15"``; Persian
    digits are accepted. :class:`InvalidInput` for anything else."""
    if not isinstance(text, str):
        raise InvalidInput(f"a date is text, got {type(text).__name__}")
    parts = text.strip().translate(_TO_ASCII_DIGITS).replace("-", "/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidInput(f"{text!r} is not a date (YYYY-MM-DD, or YYYY/MM/DD in Jalali)")
    year, month, day = (int(p) for p in parts)
    if MIN_YEAR <= year <= MAX_YEAR:
        return from_jalali(year, month, day)
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a date: {exc}") from None

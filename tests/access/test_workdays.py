"""Working-day arithmetic (access/workdays.py): weekends, holidays, year ends, leap years,
and the holiday calendar's parsing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rechenwerk.access.workdays import (
    add_working_days,
    is_working_day,
    parse_holidays,
    working_days_between,
)
from rechenwerk.errors import InvalidInput


def test_weekdays_only() -> None:
    # Wednesday 2026-12-02 + 2 -> Friday; + 3 -> Monday
    assert add_working_days(date(2026, 12, 2), 2) == date(2026, 12, 4)
    assert add_working_days(date(2026, 12, 2), 3) == date(2026, 12, 7)


def test_friday_plus_two_is_tuesday_and_weekend_start() -> None:
    assert add_working_days(date(2026, 12, 4), 2) == date(2026, 12, 8)
    # submitted on Saturday: Monday is the first working day
    assert add_working_days(date(2026, 12, 5), 1) == date(2026, 12, 7)


def test_zero_days() -> None:
    assert add_working_days(date(2026, 12, 2), 0) == date(2026, 12, 2)
    assert add_working_days(date(2026, 12, 5), 0) == date(2026, 12, 7)
    with pytest.raises(ValueError):
        add_working_days(date(2026, 12, 2), -1)


def test_across_the_year_end_with_holidays() -> None:
    hol = {date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31), date(2027, 1, 1)}
    # Wed 23 Dec 2026 + 4: Thu 24 (hol), Fri 25 (hol), Mon 28, Tue 29, Wed 30, Thu 31 (hol),
    # Fri 1 Jan (hol), Mon 4 Jan
    assert add_working_days(date(2026, 12, 23), 3) == date(2026, 12, 28)  # no holidays
    assert working_days_between(date(2026, 12, 23), date(2027, 1, 4), hol) == 4
    assert add_working_days(date(2026, 12, 23), 4, hol) == date(2027, 1, 4)
    assert add_working_days(date(2026, 12, 23), 10, hol) == date(2027, 1, 12)


def test_holiday_on_a_weekend_costs_nothing() -> None:
    # 2027-12-25 is a Saturday: listing it changes no deadline
    assert date(2027, 12, 25).weekday() == 5
    plain = add_working_days(date(2027, 12, 22), 5)
    assert add_working_days(date(2027, 12, 22), 5, {date(2027, 12, 25)}) == plain


def test_leap_years() -> None:
    # 2028 is a leap year: Mon 28 Feb + 1 is Tue 29 Feb
    assert add_working_days(date(2028, 2, 28), 1) == date(2028, 2, 29)
    assert add_working_days(date(2028, 2, 28), 2) == date(2028, 3, 1)
    # 2027 is not: Fri 26 Feb + 1 -> Mon 1 Mar
    assert add_working_days(date(2027, 2, 26), 1) == date(2027, 3, 1)
    # a holiday on 29 Feb 2028
    assert add_working_days(date(2028, 2, 28), 1, {date(2028, 2, 29)}) == date(2028, 3, 1)


def test_is_working_day() -> None:
    assert is_working_day(date(2026, 12, 7))
    assert not is_working_day(date(2026, 12, 6))
    assert not is_working_day(date(2026, 12, 7), {date(2026, 12, 7)})


def test_parse_holidays_list_and_file(tmp_path: Path) -> None:
    assert parse_holidays("") == frozenset()
    assert parse_holidays("2026-12-25, 2027-01-01") == {date(2026, 12, 25), date(2027, 1, 1)}
    f = tmp_path / "holidays.txt"
    f.write_text("# Germany 2026\n2026-12-25  # Christmas\n2026-12-26\n\n", encoding="utf-8")
    assert parse_holidays(str(f)) == {date(2026, 12, 25), date(2026, 12, 26)}


def test_parse_holidays_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_holidays("2026-13-01")
    assert exc.value.field == "holidays" and "2026-13-01" in exc.value.message
    with pytest.raises(InvalidInput, match="cannot read the holiday file"):
        parse_holidays(str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("2026-12-25\nChristmas\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="'Christmas'"):
        parse_holidays(str(bad))

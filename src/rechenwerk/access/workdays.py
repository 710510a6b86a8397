"""Working-day arithmetic for decision deadlines: add N working days to a date, skipping
Saturdays, Sundays and the centre's holidays (a plain set of dates).

Pure and typed: no clock, no database, no settings object. The holiday calendar comes
from :func:`parse_holidays` (``RECHENWERK_HOLIDAYS``: ISO dates separated by commas or
whitespace, or the path of a file with one ISO date per line, ``#`` comments allowed).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, timedelta
from pathlib import Path

from rechenwerk.errors import InvalidInput


def is_working_day(day: date, holidays: Collection[date] = frozenset()) -> bool:
    """Monday to Friday and not a holiday."""
    return day.weekday() < 5 and day not in holidays


def add_working_days(start: date, days: int, holidays: Collection[date] = frozenset()) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself never counts, so
    a proposal submitted on Friday with 2 working days is due on Tuesday). ``days`` = 0
    gives ``start`` if it is a working day, else the next working day."""
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    day = start
    if days == 0:
        while not is_working_day(day, holidays):
            day += timedelta(days=1)
        return day
    left = days
    while left:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            left -= 1
    return day


def working_days_between(start: date, end: date,
                         holidays: Collection[date] = frozenset()) -> int:
    """Working days in ``(start, end]`` (0 if ``end <= start``): the inverse of
    :func:`add_working_days` for working-day ends."""
    n, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            n += 1
    return n


def _parse_dates(tokens: Iterable[str], source: str) -> frozenset[date]:
    out: set[date] = set()
    for token in tokens:
        try:
            out.add(date.fromisoformat(token))
        except ValueError:
            raise InvalidInput(f"holidays: {token!r} in {source} is not an ISO date "
                               "(YYYY-MM-DD)", field="holidays") from None
    return frozenset(out)


def parse_holidays(value: str) -> frozenset[date]:
    """The holiday calendar of a ``RECHENWERK_HOLIDAYS`` value: empty for none; ISO dates
    separated by commas or whitespace; otherwise the path of a file of ISO dates (one per
    line, ``#`` starts a comment). A bad date or a missing file is InvalidInput naming
    ``holidays``."""
    text = value.strip()
    if not text:
        return frozenset()
    tokens = text.replace(",", " ").split()
    if all(len(t) == 10 and t[4] == "-" and t[7] == "-" for t in tokens):
        return _parse_dates(tokens, "the list")
    path = Path(text).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"holidays: cannot read the holiday file {text!r}: "
                           f"{exc.strerror or exc}", field="holidays",
                           hint="Give ISO dates separated by commas, or a file of them.") from None
    file_tokens = [t for line in lines for t in line.split("#", 1)[0].replace(",", " ").split()]
    return _parse_dates(file_tokens, str(path))

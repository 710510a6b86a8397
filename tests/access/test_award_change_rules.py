"""The period arithmetic of award changes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rechenwerk.access.award_change_rules import ended_early, extended, supplemented
from rechenwerk.errors import InvalidInput


def d(month: int, day: int = 1, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


PERIODS = [(d(1), d(4), 2500.0), (d(4), d(7), 2500.0)]


def test_an_extension_moves_the_last_end_only() -> None:
    assert extended(PERIODS, d(9)) == [(d(1), d(4), 2500.0), (d(4), d(9), 2500.0)]
    with pytest.raises(InvalidInput, match="must end after the award's end") as err:
        extended(PERIODS, d(7))
    assert err.value.field == "until"


def test_a_supplement_goes_to_the_periods_not_ended() -> None:
    # during the first period both get a share; the last takes the remainder
    assert supplemented(PERIODS, 1000, d(2)) == [(d(1), d(4), 3000.0), (d(4), d(7), 3000.0)]
    assert supplemented(PERIODS, 1000, d(5)) == [(d(1), d(4), 2500.0), (d(4), d(7), 3500.0)]
    three = [*PERIODS, (d(7), d(10), 0.0)]
    split = supplemented(three, 100, d(2))
    assert [h for *_, h in split] == [2533.333333, 2533.333333, 33.333334]
    assert sum(h for *_, h in split) == pytest.approx(5100, abs=1e-6)
    with pytest.raises(InvalidInput, match="every period of the award has ended"):
        supplemented(PERIODS, 10, d(8))
    with pytest.raises(InvalidInput, match="positive"):
        supplemented(PERIODS, 0, d(2))


def test_an_early_end_cuts_and_releases() -> None:
    assert ended_early(PERIODS, d(2, 15)) == [(d(1), d(2, 15), 2500.0)]
    assert ended_early(PERIODS, d(4)) == [(d(1), d(4), 2500.0)]  # the second never starts
    assert ended_early(PERIODS, d(5)) == [(d(1), d(4), 2500.0), (d(4), d(5), 2500.0)]
    with pytest.raises(InvalidInput, match="has not started"):
        ended_early(PERIODS, d(1))
    with pytest.raises(InvalidInput, match="before the award's end"):
        ended_early(PERIODS, d(7))

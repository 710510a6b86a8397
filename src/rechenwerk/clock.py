"""Time comes from an injected clock so that the scheduler, the simulator and tests agree.

All timestamps are timezone-aware UTC datetimes (``*_at`` columns) or, inside the pure
scheduling core and the simulator, float seconds on that clock's axis.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    """The real UTC wall clock (production)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand; thread-safe so a scheduler thread may read it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def utcnow() -> datetime:
    """Wall-clock UTC now, for code outside the scheduling core that has no injected clock."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Databases such as SQLite drop tzinfo; treat naive values as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

"""Data for the portal tests: the platform's demo centre plus its few weeks of finished
jobs (``jobs/demo_history.py``, what ``rechenwerk admin demo`` loads), so balances,
burn-down charts and reports have a history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from rechenwerk.access.demo import DemoResult, load_demo
from rechenwerk.jobs.demo_history import add_demo_history


def load_portal_demo(session: Session, *, now: datetime) -> DemoResult:
    result = load_demo(session, now=now)
    add_demo_history(session, now=now)
    return result

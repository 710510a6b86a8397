"""The demo centre's support requests: one per state that matters, their mails queued,
and response times for the report."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0
from rechenwerk.access.demo import load_demo
from rechenwerk.access.models import User
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.support import service as support
from rechenwerk.support.report import support_report


def test_demo_has_plausible_support_requests(session: Session) -> None:
    result = load_demo(session, now=T0)
    assert result.support_requests == 3
    op = session.scalars(select(User).where(User.username == "operator")).one()
    items = support.list_requests(session, op).items
    assert sorted((r.project.slug, r.kind, r.state) for r in items) == [
        ("lumen-vision", "onboarding", "closed"),
        ("nordlicht-llm", "porting", "answered"),
        ("nordstadt-climate", "data", "open"),
    ]
    events = set(session.scalars(select(OutboxMessage.event)))
    assert {"support_new", "support_answered"} <= events
    totals = support_report(session, op, start=T0.replace(year=2025), end=T0).totals
    assert (totals["requests"], totals["answered"], totals["closed"]) == (3, 2, 1)
    assert totals["median_close_h"] == 5.0
    greta = session.scalars(select(User).where(User.username == "greta")).one()
    assert [r.subject for r in support.list_requests(session, greta).items] == [
        "NCCL all-reduce stalls beyond 4 nodes"
    ]  # her project's, as its PI

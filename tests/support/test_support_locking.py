"""Two changes of one support request at once (PostgreSQL): the second waits for the
first's row lock and is then checked against the state the first left, so a request is
closed once (one audit entry, one mail), not twice."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, make_project, make_user
from rechenwerk.access.models import AuditEntry
from rechenwerk.errors import InvalidTransition
from rechenwerk.support import service as support
from waiting import wait_for


def test_concurrent_closes_close_once(session_factory: sessionmaker[Session], db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time")
    with session_factory() as s:
        op = make_user(s, operator=True)
        member = make_user(s)
        make_project(s, slug="locked", pi=make_user(s), members={member: "member"})
        rid = support.open_request(
            s, member, project="locked", kind="other", subject="s", body="b", now=T0
        ).id
        op_id = op.id
        s.commit()
    first = session_factory()
    outcome: dict[str, Any] = {}

    def second() -> None:
        with session_factory() as s2:
            actor = s2.get(type(op), op_id)
            assert actor is not None
            try:
                req = support.visible_request(s2, actor, rid, lock=True)
                support.close(s2, actor, req, now=T0)
                s2.commit()
                outcome["result"] = "closed"
            except InvalidTransition as exc:
                outcome["result"] = exc.message

    try:
        actor = first.get(type(op), op_id)
        assert actor is not None
        support.close(first, actor, support.visible_request(first, actor, rid, lock=True), now=T0)
        thread = threading.Thread(target=second)
        thread.start()
        with session_factory() as watcher:  # the second waits for the first's lock
            # each poll in a new transaction: pg_stat_activity is a per-transaction snapshot
            wait_for(
                lambda: watcher.rollback() or watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ),
                "the second close to wait",
            )
        first.commit()
        thread.join(timeout=60)
    finally:
        first.close()
    assert outcome["result"] == f"support request {rid} is already closed"
    with session_factory() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "support.close")
            )
            == 1
        )

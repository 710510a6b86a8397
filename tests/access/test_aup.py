"""The acceptable-use policy service (access/aup.py) on SQLite and PostgreSQL: nothing is
gated until an AUP is published; then each user must accept the current version, and
again after a new one; publishing and accepting are audited and raise the auth
generation (so every process's token cache notices)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, make_user
from rechenwerk.access.aup import (
    accept_aup,
    current_aup,
    pending_aup_version,
    publish_aup,
    require_aup_accepted,
)
from rechenwerk.access.auth_generation import read_auth_generation
from rechenwerk.access.models import AuditEntry, AupAcceptance, User
from rechenwerk.errors import AupNotAccepted, Conflict, InvalidInput, NotFound, PermissionDenied
from rechenwerk.store.session import session_scope
from waiting import DEADLINE_S, wait_for


def test_nothing_is_gated_without_a_published_aup(session: Session) -> None:
    user = make_user(session)
    assert current_aup(session) is None
    assert pending_aup_version(session, user.id) is None
    require_aup_accepted(session, user)  # no error
    with pytest.raises(NotFound, match="has not published"):
        accept_aup(session, user, 1, now=T0)


def test_publish_accept_and_a_new_version(session: Session) -> None:
    op = make_user(session, operator=True)
    user = make_user(session)
    g0 = read_auth_generation(session)
    v1 = publish_aup(session, op, "  Be nice.\n", now=T0)
    assert (v1.version, v1.text, v1.published_by) == (1, "Be nice.", op.username)
    assert read_auth_generation(session) > g0
    assert pending_aup_version(session, user.id) == 1
    with pytest.raises(AupNotAccepted, match=r"acceptable-use policy \(version 1\)") as err:
        require_aup_accepted(session, user)
    assert err.value.http_status == 403 and "rechenwerk aup accept" in (err.value.hint or "")

    g1 = read_auth_generation(session)
    accept_aup(session, user, 1, now=T0)
    assert read_auth_generation(session) > g1
    assert pending_aup_version(session, user.id) is None
    assert pending_aup_version(session, op.id) == 1  # each user accepts for themselves
    accept_aup(session, user, 1, now=T0)  # again: nothing new
    assert len(session.scalars(select(AupAcceptance)).all()) == 1

    v2 = publish_aup(session, op, "Be nicer.", now=T0)
    assert v2.version == 2 and current_aup(session) is v2
    assert pending_aup_version(session, user.id) == 2
    with pytest.raises(Conflict, match="version 1 is not the current"):
        accept_aup(session, user, 1, now=T0)  # only the text shown now can be accepted
    accept_aup(session, user, 2, now=T0)
    assert pending_aup_version(session, user.id) is None
    actions = [(e.action, e.actor, e.entity_id) for e in session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "aup").order_by(AuditEntry.id))]
    assert actions == [("aup.publish", op.username, "1"), ("aup.accept", user.username, "1"),
                       ("aup.publish", op.username, "2"), ("aup.accept", user.username, "2")]
    [accepted] = session.scalars(select(AuditEntry).where(
        AuditEntry.action == "aup.accept", AuditEntry.entity_id == "2")).all()
    assert accepted.changes == {"user": user.username, "version": 2}


def test_only_operators_publish_and_text_must_not_be_empty(session: Session) -> None:
    op = make_user(session, operator=True)
    with pytest.raises(PermissionDenied):
        publish_aup(session, make_user(session), "text", now=T0)
    with pytest.raises(InvalidInput, match="empty"):
        publish_aup(session, op, " \n ", now=T0)
    assert current_aup(session) is None


def test_two_acceptances_at_once_record_one(session_factory: sessionmaker[Session]) -> None:
    """Two requests of one user accept at the same moment (a double click): the second
    waits for the first and returns its acceptance instead of failing."""
    with session_scope(session_factory) as s:
        op = make_user(s, operator=True)
        user_id = make_user(s).id
        publish_aup(s, op, "Rule.", now=T0)
    first, second = session_factory(), session_factory()
    try:
        mine = accept_aup(first, first.get(User, user_id), 1, now=T0)  # not committed
        result: dict[str, Any] = {}

        def other() -> None:
            try:
                result["acceptance"] = accept_aup(second, second.get(User, user_id), 1,
                                                  now=T0)
                second.commit()
            except Exception as exc:
                result["error"] = exc

        thread = threading.Thread(target=other)
        thread.start()
        engine = session_factory.kw["bind"]
        if engine.dialect.name == "postgresql":  # let the second insert wait on the first
            def waiting() -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                        "ON a.pid = l.pid WHERE NOT l.granted "
                        "AND a.datname = current_database()")).scalar())
            wait_for(waiting, "the second acceptance to wait for the first")
        first.commit()
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive() and "error" not in result, result
        assert result["acceptance"].id == mine.id
    finally:
        first.close()
        second.close()
    with session_scope(session_factory) as s:
        assert len(s.scalars(select(AupAcceptance)).all()) == 1
        assert len(s.scalars(select(AuditEntry).where(
            AuditEntry.action == "aup.accept")).all()) == 1

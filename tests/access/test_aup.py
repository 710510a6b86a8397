"""The acceptable-use policy service (access/aup.py) on SQLite and PostgreSQL: nothing is
gated until an AUP is published; then each user must accept the current version, and
again after a new one; publishing and accepting are audited and raise the auth
generation (so every process's token cache notices)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_user
from rechenwerk.access.aup import (
    accept_aup,
    current_aup,
    pending_aup_version,
    publish_aup,
    require_aup_accepted,
)
from rechenwerk.access.auth_generation import read_auth_generation
from rechenwerk.access.models import AuditEntry, AupAcceptance
from rechenwerk.errors import AupNotAccepted, Conflict, InvalidInput, NotFound, PermissionDenied


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

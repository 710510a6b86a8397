"""The per-process API-token cache (rechenwerk.access.security): a hit needs one read of
the auth generation, and revocation, deactivation, expiry and the last-used resolution
are still honoured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, make_token, make_user
from rechenwerk.access import security
from rechenwerk.access.models import ApiToken, User
from rechenwerk.access.security import (
    authenticate_token,
    cached_token_user,
    clear_token_cache,
    revoke_token,
)
from rechenwerk.errors import Unauthenticated
from rechenwerk.store.session import session_scope


@pytest.fixture
def token(session_factory: sessionmaker[Session]) -> Iterator[tuple[int, str]]:
    """A committed user and token (id, secret), authenticated once (so cached)."""
    clear_token_cache()
    with session_scope(session_factory) as s:
        user = make_user(s)
        secret = make_token(s, user, expires_at=T0 + timedelta(days=1))
        user_id = user.id
    with session_scope(session_factory) as s:
        assert authenticate_token(s, secret, now=T0).id == user_id
    yield user_id, secret
    clear_token_cache()


def test_hit_needs_one_generation_read_and_attaches_the_user(
    session_factory: sessionmaker[Session], token: tuple[int, str]
) -> None:
    user_id, secret = token
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    with session_scope(session_factory) as s:
        engine = s.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            user = cached_token_user(s, secret, now=T0 + timedelta(seconds=30))
            assert user is not None and user.id == user_id and user in s
            assert user.is_active and not user.is_operator
        finally:
            event.remove(engine, "before_cursor_execute", count)
    # One primary-key read of the auth generation (plus SQLite's BEGIN), nothing else.
    queries = [q for q in seen if not q.startswith("BEGIN")]
    assert len(queries) == 1 and "FROM auth_generation" in queries[0], seen


def test_revocation_in_this_process_takes_effect_at_once(
    session_factory: sessionmaker[Session], token: tuple[int, str]
) -> None:
    user_id, secret = token
    with session_scope(session_factory) as s:
        owner = s.get(User, user_id)
        assert owner is not None
        token_id = s.query(ApiToken.id).filter(ApiToken.user_id == user_id).scalar()
        revoke_token(s, owner, token_id, now=T0)
    with session_scope(session_factory) as s:
        assert cached_token_user(s, secret, now=T0) is None
        with pytest.raises(Unauthenticated, match="revoked"):
            authenticate_token(s, secret, now=T0)


def test_deactivating_the_user_clears_the_cache(
    session_factory: sessionmaker[Session], token: tuple[int, str]
) -> None:
    user_id, secret = token
    with session_scope(session_factory) as s:
        user = s.get(User, user_id)
        assert user is not None
        user.is_active = False
    with session_scope(session_factory) as s:
        assert cached_token_user(s, secret, now=T0) is None
        with pytest.raises(Unauthenticated, match="deactivated"):
            authenticate_token(s, secret, now=T0)


def test_expiry_is_checked_on_every_hit(
    session_factory: sessionmaker[Session], token: tuple[int, str]
) -> None:
    _, secret = token
    with session_scope(session_factory) as s, pytest.raises(Unauthenticated, match="expired"):
        cached_token_user(s, secret, now=T0 + timedelta(days=1))


def test_old_entries_and_due_last_used_go_to_the_database(
    session_factory: sessionmaker[Session], token: tuple[int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, secret = token
    with session_scope(session_factory) as s:
        # last_used_at (T0) is older than its one-minute resolution: refresh it.
        assert cached_token_user(s, secret, now=T0 + timedelta(minutes=2)) is None
        monkeypatch.setattr(security, "TOKEN_CACHE_TTL_S", -1.0)
        assert cached_token_user(s, secret, now=T0) is None


def test_unknown_token_is_never_cached(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as s:
        assert cached_token_user(s, "rw_unknown", now=T0) is None
        with pytest.raises(Unauthenticated, match="unknown"):
            authenticate_token(s, "rw_unknown", now=T0)
        assert cached_token_user(s, "rw_unknown", now=T0) is None


def test_change_committed_elsewhere_ends_the_hit_through_the_generation(
    session_factory: sessionmaker[Session], token: tuple[int, str]
) -> None:
    """As another process would: plain SQL on a connection of its own, so no ORM event
    clears this process's cache; only the auth generation tells."""
    from sqlalchemy import update

    from rechenwerk.access.auth_generation import bump_auth_generation

    user_id, secret = token
    engine = session_factory.kw["bind"]
    with engine.begin() as conn:  # without the counter: this process cannot know yet
        conn.execute(update(ApiToken).where(ApiToken.user_id == user_id)
                     .values(revoked_at=T0))
    with session_scope(session_factory) as s:
        assert cached_token_user(s, secret, now=T0) is not None
    with engine.begin() as conn:
        bump_auth_generation(conn)
    with session_scope(session_factory) as s:
        assert cached_token_user(s, secret, now=T0) is None
        with pytest.raises(Unauthenticated, match="revoked"):
            authenticate_token(s, secret, now=T0)

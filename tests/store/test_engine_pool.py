"""Pooled PostgreSQL connections survive a server-side disconnect (restart, idle
timeout): a connection that sat idle in the pool is checked before use and replaced,
without a ping on every checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from rechenwerk.store import session as store_session
from rechenwerk.store.session import make_engine
from waiting import wait_for

pytestmark = pytest.mark.postgres


def _kill_backend(admin_url: str, pid: int) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        # pg_terminate_backend only signals: wait until the backend is really gone, or
        # the next checkout could still reach it on a loaded machine.
        wait_for(lambda: conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE pid = :p"), {"p": pid}).scalar() == 0,
                 f"PostgreSQL backend {pid} to exit")
    admin.dispose()


def _count_pings(engine: Engine) -> list[int]:
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        pings.append(1)
        return original(dbapi_conn)

    engine.dialect.do_ping = counting  # type: ignore[method-assign]
    return pings


def _pooled_backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pg_url(_pg_database: str) -> str:
    return _pg_database


def test_idle_connection_killed_by_server_is_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    pings = _count_pings(engine)
    pid = _pooled_backend_pid(engine)  # now idle in the pool
    _kill_backend(pg_url, pid)
    monkeypatch.setattr(store_session, "PING_AFTER_IDLE_S", 0.0)  # "idle long enough"
    assert _pooled_backend_pid(engine) != pid  # checked, found dead, replaced
    assert pings == [1]
    engine.dispose()


def test_connection_in_steady_use_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Well above any pause between two checkouts, even on a loaded machine (at the real
    # 1 s, a descheduled test would see a correct ping and fail).
    monkeypatch.setattr(store_session, "PING_AFTER_IDLE_S", 60.0)
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    pings = _count_pings(engine)
    for _ in range(20):
        _pooled_backend_pid(engine)
    assert pings == []
    engine.dispose()


def test_without_the_check_a_killed_connection_fails_the_request(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: proves the first test exercises the check, not luck."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    pid = _pooled_backend_pid(engine)
    _kill_backend(pg_url, pid)
    monkeypatch.setattr(store_session, "PING_AFTER_IDLE_S", 3600.0)
    with pytest.raises(Exception, match=r"terminat|closed|connection"):
        _pooled_backend_pid(engine)
    assert _pooled_backend_pid(engine) != pid  # the pool was invalidated and recovers
    engine.dispose()


def test_explicit_pre_ping_still_honoured(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_pre_ping=True, pool_size=1, max_overflow=0)
    pid = _pooled_backend_pid(engine)
    _kill_backend(pg_url, pid)
    assert _pooled_backend_pid(engine) != pid
    engine.dispose()

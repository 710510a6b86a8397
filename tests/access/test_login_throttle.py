"""Login throttle (access/security.py): one atomic counter per username and per client
address in the database, taken BEFORE the argon2 check, so parallel requests cannot run
more checks than the limit; unknown users cost one argon2 check like everyone else."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_user
from rechenwerk.access.models import LoginAttempt
from rechenwerk.access.security import (
    LOGIN_FAILURE_WINDOW,
    LOGIN_MAX_FAILURES,
    LOGIN_MAX_FAILURES_PER_ADDRESS,
    address_key,
    hash_password,
    login_with_password,
)
from rechenwerk.clock import FakeClock
from rechenwerk.errors import TooManyAttempts, Unauthenticated
from waiting import DEADLINE_S

PARALLEL = 30


class Verifications:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.during: list[Any] = []  # callables run inside each verification
        self.seen: list[Any] = []  # what they returned


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[Verifications]:
    """Counts argon2 verifications (every password check goes through it)."""
    seen = Verifications()
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: Any, password: Any) -> bool:
        with seen.lock:
            seen.count += 1
        seen.seen.extend(f() for f in seen.during)
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    yield seen


@pytest.fixture
def greta(session: Session) -> str:
    make_user(session, username="greta", password_hash=hash_password("greta-secret"))
    session.commit()
    return "greta"


def _attempt(factory: sessionmaker[Session], clock: FakeClock, username: str, password: str,
             address: str) -> str:
    """One login in its own session, as one request; "ok", "401" or "429: message"."""
    s = factory()
    try:
        login_with_password(s, username, password, now=clock.now(), source="api",
                            address=address)
        s.commit()
        return "ok"
    except TooManyAttempts as exc:
        s.rollback()
        return f"429: {exc.message}"
    except Unauthenticated:
        s.commit()  # as the API does: the audit entry stays
        return "401"
    finally:
        s.close()


def _in_parallel(factory: sessionmaker[Session], clock: FakeClock,
                 logins: list[tuple[str, str, str]]) -> list[str]:
    """All logins at once: every thread waits at a barrier, then tries."""
    barrier = threading.Barrier(len(logins), timeout=DEADLINE_S)
    results: list[str] = [""] * len(logins)

    def run(i: int, username: str, password: str, address: str) -> None:
        barrier.wait()
        try:
            results[i] = _attempt(factory, clock, username, password, address)
        except Exception as exc:  # reported by the assertions below
            results[i] = f"error: {exc!r}"

    threads = [threading.Thread(target=run, args=(i, *login))
               for i, login in enumerate(logins)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads)
    return results


def _kinds(results: list[str]) -> Counter[str]:
    return Counter(r.split(":")[0] for r in results)


def test_parallel_wrong_passwords_for_one_user_run_at_most_the_limit_of_checks(
        session_factory: sessionmaker[Session], greta: str, clock: FakeClock,
        verifications: Verifications) -> None:
    logins = [(greta, f"guess-{i}", f"198.51.100.{i}") for i in range(PARALLEL)]
    results = _in_parallel(session_factory, clock, logins)
    assert verifications.count == LOGIN_MAX_FAILURES, results
    assert _kinds(results) == {"401": LOGIN_MAX_FAILURES,
                               "429": PARALLEL - LOGIN_MAX_FAILURES}, results
    assert all("too many failed logins for 'greta': try again in 15 min" in r
               for r in results if r.startswith("429"))
    # Locked for the window, the right password included, and without a check.
    assert _attempt(session_factory, clock, greta, "greta-secret", "192.0.2.1").startswith(
        "429: too many failed logins for 'greta'")
    assert verifications.count == LOGIN_MAX_FAILURES
    clock.advance(LOGIN_FAILURE_WINDOW.total_seconds())
    assert _attempt(session_factory, clock, greta, "greta-secret", "192.0.2.1") == "ok"


def test_parallel_attempts_from_one_address_across_usernames_are_capped(
        session_factory: sessionmaker[Session], greta: str, clock: FakeClock,
        verifications: Verifications) -> None:
    logins = [(f"name{i}", "guess", "203.0.113.7") for i in range(PARALLEL)]
    results = _in_parallel(session_factory, clock, logins)
    assert verifications.count == LOGIN_MAX_FAILURES_PER_ADDRESS, results
    assert _kinds(results) == {"401": LOGIN_MAX_FAILURES_PER_ADDRESS,
                               "429": PARALLEL - LOGIN_MAX_FAILURES_PER_ADDRESS}, results
    assert all("from your address 203.0.113.7: try again in" in r
               for r in results if r.startswith("429"))
    # That address is refused for real users too; other addresses are not affected.
    assert _attempt(session_factory, clock, greta, "greta-secret", "203.0.113.7"
                    ).startswith("429")
    assert _attempt(session_factory, clock, greta, "greta-secret", "192.0.2.1") == "ok"


def test_a_success_gives_back_only_its_own_slots(
        session_factory: sessionmaker[Session], greta: str, clock: FakeClock) -> None:
    attacker, owner = "203.0.113.66", "192.0.2.10"
    for _ in range(LOGIN_MAX_FAILURES - 1):
        assert _attempt(session_factory, clock, greta, "guess", attacker) == "401"
    # The owner logs in from elsewhere: it does not wipe the failures counted so far.
    assert _attempt(session_factory, clock, greta, "greta-secret", owner) == "ok"
    assert _attempt(session_factory, clock, greta, "guess", attacker) == "401"
    assert _attempt(session_factory, clock, greta, "greta-secret", owner).startswith("429")


def test_unknown_users_cost_one_verification_like_known_ones(
        api_client: Any, session: Session, greta: str, verifications: Verifications) -> None:
    make_user(session, username="nopass")  # a user without a password
    session.commit()
    for username in ("nobody", "nopass", greta):
        before = verifications.count
        r = api_client.post("/api/v1/auth/token",
                            json={"username": username, "password": "wrong-password"})
        assert r.status_code == 401, r.text
        assert r.json()["detail"] == "wrong username or password"
        assert verifications.count == before + 1, username


def test_api_counts_the_client_address_across_usernames(api_client: Any,
                                                         verifications: Verifications) -> None:
    codes = [api_client.post("/api/v1/auth/token",
                             json={"username": f"name{i}", "password": "guess"})
             for i in range(LOGIN_MAX_FAILURES_PER_ADDRESS + 3)]
    assert [r.status_code for r in codes] == (
        [401] * LOGIN_MAX_FAILURES_PER_ADDRESS + [429] * 3)
    assert codes[-1].json()["code"] == "too_many_attempts"
    assert "from your address testclient" in codes[-1].json()["detail"]
    assert verifications.count == LOGIN_MAX_FAILURES_PER_ADDRESS


def test_no_database_lock_is_held_while_argon2_runs(
        session_factory: sessionmaker[Session], greta: str, clock: FakeClock,
        verifications: Verifications, session: Session) -> None:
    """SQLite: every transaction takes the write lock, so a login that kept its
    transaction open during argon2 would stall every other writer meanwhile."""
    url = session.get_bind().engine.url
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's database-wide write lock")

    def try_to_write() -> bool:
        conn = sqlite3.connect(str(url.database), timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # fails at once while someone writes
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    verifications.during.append(try_to_write)
    assert _attempt(session_factory, clock, greta, "guess", "192.0.2.1") == "401"
    assert _attempt(session_factory, clock, greta, "greta-secret", "192.0.2.1") == "ok"
    assert _attempt(session_factory, clock, "nobody", "guess", "192.0.2.1") == "401"
    assert verifications.seen == [True, True, True]


def test_counters_of_ended_windows_are_forgotten(
        session_factory: sessionmaker[Session], greta: str, clock: FakeClock,
        session: Session) -> None:
    for i in range(3):
        _attempt(session_factory, clock, f"name{i}", "guess", f"192.0.2.{i}")
    assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 6
    session.rollback()
    clock.advance(LOGIN_FAILURE_WINDOW.total_seconds())
    assert _attempt(session_factory, clock, greta, "greta-secret", "198.51.100.1") == "ok"
    keys = set(session.execute(select(LoginAttempt.kind, LoginAttempt.key)).tuples())
    assert keys == {("user", "greta"), ("address", "198.51.100.1")}


def test_ipv6_addresses_count_by_their_64_network() -> None:
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") \
        == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:203.0.113.7") == address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::1") == "::1" and address_key(None) == "unknown"

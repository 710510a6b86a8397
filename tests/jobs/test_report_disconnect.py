"""A report whose client has gone stops, and one over the time limit is answered 422,
with a real ``rechenwerk server`` process and a real client socket (PostgreSQL).

Nothing here races the machine's speed: the test holds an exclusive lock on
``usage_records``, so the report's first query waits for it for as long as the test
wants (any machine, any load); the test closes the client's socket only once the
database shows that query waiting, and then waits (``wait_for``) for the server's log
line. The lock is released only after the line, so the report cannot have finished on
its own: it was stopped. The database then shows no server connection left in a
transaction.

PostgreSQL only: SQLite cannot interrupt a transaction that waits for its lock (its busy
timeout runs out first), so the same set-up cannot be made there; the SQLite side of the
interrupt is in ``tests/reports/test_report_guard.py``. (Here, beside the other tests
that start a real server with ``jobs_server``.)
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jobs_server import Server
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from factories import make_project, make_token, make_user
from rechenwerk.access.security import hash_password
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.store.session import make_engine, session_scope
from waiting import wait_for

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"
# Ten years of days: 3,653 periods, just under the limit.
QUERY = "period=day&from=2016-01-01&to=2026-01-01"


@dataclass
class World:
    token: str
    db_url: str


@pytest.fixture
def world(db_url: str, session_factory: sessionmaker[Session]) -> World:
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: a SQLite transaction waiting for the database's lock "
                    "cannot be interrupted (see the module's doc)")
    now = datetime.now(UTC)
    with session_scope(session_factory) as s:
        op = make_user(s, username="op", operator=True, password_hash=hash_password(PASSWORD))
        project = make_project(s, pi=op, slug="alpha")
        for day in range(0, 3000, 100):  # 30 runs of 4 GPUs x 12 h
            start = datetime(2016, 1, 1, tzinfo=UTC) + timedelta(days=day)
            s.add(UsageRecord(project_id=project.id, gpu_type="A100-80GB", gpus=4,
                              started_at=start, ended_at=start + timedelta(hours=12),
                              gpu_hours=48.0, source="local", created_at=start))
        token = make_token(s, op, now=now)
    return World(token, db_url)


def _server(tmp_path: Path, db_url: str, timeout_s: str) -> Server:
    server = Server(tmp_path / "var", db_url)
    server.env["RECHENWERK_SCHEDULER_ENABLED"] = "false"  # nothing else in the database
    server.env["RECHENWERK_REPORT_TIMEOUT_S"] = timeout_s
    server.start()
    return server


class Database:
    """The test's own connections: one holds the lock, one watches pg_stat_activity."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, isolation_level="AUTOCOMMIT")
        self.watch = self.engine.connect()
        self.locker: Connection | None = None
        self.locker_pid = 0

    def lock_usage_records(self) -> None:
        self.locker = self.engine.connect().execution_options(isolation_level="READ COMMITTED")
        self.locker.begin()
        self.locker.execute(text("LOCK TABLE usage_records IN ACCESS EXCLUSIVE MODE"))
        self.locker_pid = int(self.locker.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def unlock(self) -> None:
        if self.locker is not None:
            self.locker.rollback()
            self.locker.close()
            self.locker = None

    def _others(self, condition: str) -> int:
        return int(self.watch.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            f"AND pid <> pg_backend_pid() AND pid <> :locker AND ({condition})"),
            {"locker": self.locker_pid}).scalar_one())

    def report_waits_for_the_lock(self) -> bool:
        return self._others("wait_event_type = 'Lock' AND query LIKE '%usage_records%'") > 0

    def server_connections_in_a_transaction(self) -> int:
        return self._others("backend_type = 'client backend' AND state IN "
                            "('active', 'idle in transaction', 'idle in transaction (aborted)')")

    def close(self) -> None:
        self.unlock()
        self.watch.close()
        self.engine.dispose()


@pytest.fixture
def database(world: World) -> Iterator[Database]:
    db = Database(world.db_url)
    yield db
    db.close()


def _log_has(server: Server, line: str) -> bool:
    return server.log.exists() and line in server.log.read_text()


def test_report_stops_when_its_client_disconnects(world: World, database: Database,
                                                  tmp_path: Path) -> None:
    server = _server(tmp_path, world.db_url, "3600")  # the time limit never fires here
    try:
        database.lock_usage_records()
        client = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        client.sendall((f"GET /api/v1/reports/utilisation?{QUERY} HTTP/1.1\r\n"
                        f"Host: 127.0.0.1:{server.port}\r\n"
                        f"Authorization: Bearer {world.token}\r\n\r\n").encode())
        wait_for(database.report_waits_for_the_lock, "the report's query to wait for the lock")
        client.close()  # the client goes away while its report is being computed
        wait_for(lambda: _log_has(server, "report cancelled: client disconnected"),
                 "the server to log that it stopped the report")
        line = next(x for x in server.log.read_text().splitlines() if "report cancelled" in x)
        assert "(utilisation report, after" in line
        assert "transaction rolled back, database connection returned" in line
        # Logged after the rollback: nothing of the server is left waiting or in a
        # transaction, and the lock (still held) had no part in ending it.
        assert not database.report_waits_for_the_lock()
        assert database.server_connections_in_a_transaction() == 0
        database.unlock()
        # The server answers the same report normally once it can.
        r = httpx.get(f"{server.url}/api/v1/reports/utilisation?{QUERY}", timeout=120,
                      headers={"Authorization": f"Bearer {world.token}"})
        assert r.status_code == 200, r.text[:500]
        rows = r.json()["rows"]
        assert len(rows) == 3653 and sum(x["busy_gpu_hours"] for x in rows) == pytest.approx(
            30 * 48.0)
        assert server.log.read_text().count("report cancelled") == 1
    finally:
        server.stop()


def test_report_over_the_time_limit_is_a_422_that_says_to_narrow_the_range(
        world: World, database: Database, tmp_path: Path) -> None:
    server = _server(tmp_path, world.db_url, "1")
    try:
        database.lock_usage_records()
        # The lock outlasts the limit, whatever the machine's speed: the limit stops it.
        r = httpx.get(f"{server.url}/api/v1/reports/utilisation?{QUERY}", timeout=120,
                      headers={"Authorization": f"Bearer {world.token}"})
        assert r.status_code == 422, r.text[:500]
        body = r.json()
        assert body["code"] == "report_too_large" and body["title"] == "Report too large"
        assert body["detail"] == ("report too large: the utilisation report took longer than "
                                  "the server's limit of 1 s and was stopped")
        assert "Narrow the range" in body["hint"] and "coarser period" in body["hint"]
        assert _log_has(server, "report stopped: over the time limit of 1 s (utilisation "
                                "report, after")
        assert database.server_connections_in_a_transaction() == 0

        # The portal's report page: the same limit, as an error page.
        with httpx.Client(base_url=server.url, timeout=120) as portal:
            page = portal.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf, page.text[:500]
            r = portal.post("/login", data={"username": "op", "password": PASSWORD,
                                            "csrf_token": csrf.group(1)})
            assert r.status_code in (200, 303), r.text[:500]
            r = portal.get("/reports?from=2016-01-01&to=2025-12-31&period=day")
            assert r.status_code == 422
            assert "Report too large" in r.text and "Narrow the range" in r.text
        assert _log_has(server, "report stopped: over the time limit of 1 s (reports page, "
                                "after")
        assert database.server_connections_in_a_transaction() == 0
    finally:
        server.stop()

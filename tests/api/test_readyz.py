"""/healthz and /readyz: what each check says, and readiness that follows the database
(gone and back, without a restart of the server)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from rechenwerk.app import create_app
from rechenwerk.config import Settings
from rechenwerk.errors import BackendUnavailable
from rechenwerk.execution.base import BackendJobStatus, NodeInventory, ReconcileReport
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.store.migrate import upgrade
from rechenwerk.store.session import make_engine
from waiting import wait_for


def _settings(tmp_path: Path, url: str, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=url, local_cluster="1x4",
                    scheduler_interval_s=0.2, **kw)  # type: ignore[arg-type]


def _migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'var' / 'rechenwerk.db'}"
    upgrade(url)
    return url


def test_healthz_touches_nothing(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, "sqlite:////nonexistent/dir/db.sqlite",
                               scheduler_enabled=False))
    with TestClient(app) as client:
        r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_ready_with_scheduler_leading(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, _migrated_sqlite(tmp_path)))
    with TestClient(app) as client:
        body = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 and "leading" in
                                 r.json()["checks"]["scheduler"]["detail"] else None)(
            client.get("/readyz")), "the scheduler to lead")
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True, "detail": body["checks"]["database"][
        "detail"]} and "schema at" in body["checks"]["database"]["detail"]
    assert body["checks"]["backend"] == {"ok": True, "detail": "local answers"}


def test_unmigrated_database_is_unready(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app(_settings(tmp_path, url, scheduler_enabled=False))
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "unready"
    detail = r.json()["checks"]["database"]["detail"]
    assert "no revision" in detail and "rechenwerk admin db upgrade" in detail
    assert r.json()["checks"]["scheduler"] == {
        "ok": True, "detail": "disabled in this process (RECHENWERK_SCHEDULER_ENABLED)"}


class _DownBackend(LocalExecutor):
    def ping(self) -> None:
        raise BackendUnavailable("slurmctld does not answer: connection refused")


def test_unreachable_backend_is_unready(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _migrated_sqlite(tmp_path), scheduler_enabled=False)
    app = create_app(settings, backend=_DownBackend(tmp_path / "var", cluster="1x4"))
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["backend"] == {
        "ok": False,
        "detail": "unreachable: BackendUnavailable: slurmctld does not answer: connection "
                  "refused"}


class _NoPing:
    """A backend without ping(): readiness does not guess."""

    name = "plain"

    def submit(self, request: object) -> str:
        raise NotImplementedError

    def cancel(self, handle: str) -> None: ...
    def preempt(self, handle: str) -> None: ...

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        return {}

    def inventory(self) -> Sequence[NodeInventory]:
        return (NodeInventory("n1", 4, "GPU"),)

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return ReconcileReport(known={})

    def close(self) -> None: ...


def test_backend_without_check(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _migrated_sqlite(tmp_path), scheduler_enabled=False)
    app = create_app(settings, backend=_NoPing())  # type: ignore[arg-type]
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["backend"]["detail"] == "_NoPing has no check"


class _Proxy:
    """A TCP forwarder to PostgreSQL that the test can cut and restore: the database
    "unreachable" for the server while the machine's PostgreSQL keeps serving others."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        self.port = lst.getsockname()[1]
        lst.listen(64)
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return  # closed by cut()
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not,
            # and the port would go on accepting.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


# As in tests/conftest.py (not imported: "conftest" is ambiguous across test folders).
PG_ADMIN_URL = os.environ.get(
    "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_database() -> Iterator[str]:
    try:
        probe = make_engine(PG_ADMIN_URL, pool_size=1)
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__})")
    name = f"rw_ready_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _advisory_locks(database: str) -> int:
    from rechenwerk.jobs.leadership import Leadership

    admin = make_engine(PG_ADMIN_URL, pool_size=1)
    try:
        with admin.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :key "
                "AND d.datname = :db"), {"key": Leadership.ADVISORY_KEY, "db": database}
            ).scalar_one())
    finally:
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_readiness_follows_the_database(tmp_path: Path, pg_database: str) -> None:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    upgrade(f"{base}/{pg_database}")
    proxy = _Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = f"{base.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}/{pg_database}"
    app = create_app(_settings(tmp_path, url))
    try:
        with TestClient(app) as client:
            def status(want: int) -> dict[str, object] | None:
                r = client.get("/readyz")
                return r.json() if r.status_code == want else None  # type: ignore[no-any-return]

            wait_for(lambda: status(200), "ready with the database there")
            proxy.cut()

            def database_down() -> dict[str, object] | None:
                body = status(503)
                checks = body["checks"] if body else None
                return body if isinstance(checks, dict) and not checks["database"][
                    "ok"] else None

            down = wait_for(database_down, "unready with the database gone")
            checks = down["checks"]
            assert isinstance(checks, dict)
            assert checks["database"]["detail"].startswith("unreachable: OperationalError")
            proxy.start()  # the same port again
            up = wait_for(lambda: status(200), "ready again, without a restart")
            assert up["status"] == "ready"
            # The session holding the scheduler's advisory lock died with the cut; the
            # loop leads again only after re-taking the lock (never two leaders).
            wait_for(lambda: _advisory_locks(pg_database) == 1, "the lock to be re-taken")
            assert "leading" in client.get("/readyz").json()["checks"]["scheduler"]["detail"]
    finally:
        proxy.cut()

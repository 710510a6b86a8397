"""Shared fixtures. Every test that asks for ``db_url``/``engine``/``session`` runs twice:
on a SQLite file and on PostgreSQL (127.0.0.1:5432, database ``test``); the PostgreSQL
variant skips with a clear message when the server is unreachable.

Each test session gets its own PostgreSQL database (``rw_test_<random>``), created from
the ``test`` database and dropped at the end, so parallel runs never see each other.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.clock import FakeClock
from rechenwerk.store.session import make_engine, make_session_factory
from rechenwerk.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_reachable() -> str | None:
    """None when reachable, else the reason."""
    try:
        eng = make_engine(PG_ADMIN_URL, pool_size=1, max_overflow=0)
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session", autouse=True)
def _wide_cli_consoles() -> None:
    """CLI tests read table output; fix its width so CI's terminal (80 columns, or
    COLUMNS set) cannot wrap it differently from a developer's."""
    from rechenwerk.cli import output

    output.console.width = output.PIPED_WIDTH
    output.err_console.width = output.PIPED_WIDTH


class PgDatabases:
    """Creates PostgreSQL databases (``<prefix>_<random>``) on the server of the ``test``
    database and drops them (``WITH (FORCE)``) at :meth:`drop_all`."""

    def __init__(self) -> None:
        self._admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
        self._names: list[str] = []

    def create(self, prefix: str = "rw_test", *, template: str | None = None) -> str:
        """The URL of a new database: empty, or a copy of the database at the URL
        ``template`` (which nobody may be connected to)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        self._names.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in reversed(self._names):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._names.clear()
        self._admin.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """Fresh PostgreSQL databases on demand (``pg_databases.create()``), e.g. for a real
    server that migrates its own schema; all are dropped at the end of the session.
    Skips when PostgreSQL is unreachable."""
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    dbs = PgDatabases()
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="session")
def _pg_database(pg_databases: PgDatabases) -> str:
    return pg_databases.create()


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'rechenwerk.db'}"
    url: str = request.getfixturevalue("_pg_database")
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    metadata.create_all(eng)
    yield eng
    eng.dispose()


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    _wipe(engine)
    yield make_session_factory(engine)
    _wipe(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    s = session_factory()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (traces, reference figures)."""
    here = Path(__file__).resolve().parents[1]
    for cand in (here.parent / "shared", here / "shared"):
        if cand.is_dir():
            return cand
    pytest.skip("../shared (traces, reference data) not found beside the checkout")


@pytest.fixture
def api_settings() -> dict[str, Any]:
    """Settings of ``api_client`` beyond the database and data dir; a test module
    overrides this fixture to run the API with e.g. a holiday calendar."""
    return {}


@pytest.fixture
def api_client(db_url: str, session_factory: sessionmaker[Session], session: Session,
               clock: FakeClock, tmp_path: Path,
               api_settings: dict[str, Any]) -> Iterator[object]:
    """A FastAPI TestClient over ``create_app`` bound to the test database (SQLite and
    PostgreSQL) and the ``clock`` fixture. Lifespan (background loops) does not run.
    Authenticate with ``headers=bearer(make_token(session, user))``
    (``from factories import bearer, make_token``).

    Before each request the test's ``session`` is committed when it has a transaction
    open: what the test wrote is visible to the server on both databases, and a read
    transaction never holds SQLite's write lock (every SQLite transaction takes it, see
    ``store/session.py``) while the server waits for it."""
    from fastapi.testclient import TestClient

    from rechenwerk.app import create_app
    from rechenwerk.config import Settings

    class _Client(TestClient):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if session.in_transaction():
                session.commit()
            return super().request(*args, **kwargs)

    settings = Settings(data_dir=tmp_path / "var", database_url=db_url, **api_settings)
    app = create_app(settings, session_factory=session_factory, clock=clock)
    client = _Client(app, raise_server_exceptions=False)
    yield client
    client.close()


@pytest.fixture
def live_server(db_url: str, session_factory: sessionmaker[Session], tmp_path: Path,
                api_settings: dict[str, Any]) -> Iterator[str]:
    """The app on a real uvicorn server (wall clock, no background loops) over the test
    database; yields its URL. Run the CLI against it with ``live_server.run_cli``.
    Commit what the test wrote before the server reads it."""
    from live_server import serving
    from rechenwerk.app import create_app
    from rechenwerk.config import Settings

    settings = Settings(data_dir=tmp_path / "var", database_url=db_url, **api_settings)
    with serving(create_app(settings, session_factory=session_factory)) as url:
        yield url


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright, ONE per test process: the portal's and the
    sign-in tests' (two sync Playwright instances cannot live in one process)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install "
                    "chromium) to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()

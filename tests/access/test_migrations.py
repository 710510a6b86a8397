"""``alembic upgrade head`` on an empty database gives exactly the schema of the models
(``store.tables.metadata``), on SQLite and PostgreSQL. Generic: it covers every domain's
migrations in the chain, so a model change without a migration fails here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from rechenwerk.store.migrate import MIGRATIONS_DIR, alembic_config, downgrade, upgrade
from rechenwerk.store.session import make_engine
from rechenwerk.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    try:
        admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc})")
    name = f"rw_mig_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_revision_chain_is_linear_and_starts_with_access() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, f"several heads: {heads}; set down_revision to chain them"
    base = script.get_bases()
    assert base == ["0001_access"]
    assert MIGRATIONS_DIR.is_dir()


def test_upgrade_head_matches_models(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    diff = _diff(empty_db_url)
    assert diff == [], "schema after `alembic upgrade head` differs from the models:\n" + "\n".join(
        map(str, diff)
    )
    engine = make_engine(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables


def test_downgrade_to_base_and_up_again(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")
    engine = make_engine(empty_db_url)
    try:
        left = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert left == set()
    upgrade(empty_db_url)
    assert _diff(empty_db_url) == []

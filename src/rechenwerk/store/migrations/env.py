"""Alembic environment: migrations run against the URL given by ``store.migrate``."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import event, pool
from sqlalchemy.engine import Connection, Engine

from rechenwerk.store.session import make_engine
from rechenwerk.store.tables import metadata

config = context.config


def migration_engine(url: str) -> Engine:
    engine = make_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        # Batch mode rebuilds a SQLite table (create a copy, copy the rows, drop the old
        # one, rename): with foreign keys enforced, dropping a table that other rows
        # reference fails ("FOREIGN KEY constraint failed" upgrading a populated database
        # through 0006). Alembic's advice: keys off while migrating, then check them.
        # After make_engine's listener, which turns them on; outside any transaction,
        # where the pragma takes effect.
        @event.listens_for(engine, "connect")
        def _foreign_keys_off(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=OFF")

    return engine


def check_foreign_keys(connection: Connection) -> None:
    """SQLite: every row still references an existing one (raises before the commit)."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left rows with dangling foreign keys: {broken[:5]}")


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = migration_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,  # SQLite needs batch mode for ALTER
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
            check_foreign_keys(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

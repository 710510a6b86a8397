"""Empty databases of their own for tests that need several (backup and restore,
migrations): SQLite files, or PostgreSQL databases with unique names created from the
``test`` database and dropped (WITH FORCE) when the factory closes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rechenwerk.store.session import make_engine

PG_ADMIN_URL = os.environ.get(
    "RECHENWERK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class ScratchDatabases:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.pg_names: list[str] = []
        self.pg_roles: list[str] = []
        self._admin = None
        if kind == "postgresql":
            try:
                self._admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                          pool_size=1)
                with self._admin.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # pragma: no cover - depends on the machine
                pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc})")

    def new(self, label: str, *, owner: str | None = None) -> str:
        """The URL of a new, empty database (PostgreSQL: owned by and connecting as
        ``owner`` when given, a role from :meth:`new_role`)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp_path / f'{label}.db'}"
        assert self._admin is not None
        name = f"rw_{label}_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'
                              + (f' OWNER "{owner}"' if owner else "")))
        self.pg_names.append(name)
        url = make_url(PG_ADMIN_URL).set(database=name)
        if owner:
            url = url.set(username=owner)
        return url.render_as_string(hide_password=False)

    def new_role(self, label: str) -> str:
        """A new login role without superuser rights (dropped at the end)."""
        assert self._admin is not None
        name = f"rw_{label}_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB'))
        self.pg_roles.append(name)
        return name

    def close(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.pg_names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for role in self.pg_roles:
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        self._admin.dispose()


@contextmanager
def scratch_databases(kind: str, tmp_path: Path) -> Iterator[ScratchDatabases]:
    dbs = ScratchDatabases(kind, tmp_path)
    try:
        yield dbs
    finally:
        dbs.close()

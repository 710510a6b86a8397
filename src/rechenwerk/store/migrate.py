"""Run Alembic migrations programmatically (``rechenwerk admin db upgrade``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    if url.startswith("sqlite:///"):
        Path(url.split("///", 1)[1]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def revisions() -> list[tuple[str, str]]:
    """(revision, first line of its description) from the first migration to the newest."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    out = [(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "")
           for r in script.walk_revisions("base", "heads")]
    out.reverse()
    return out


def current(url: str) -> list[str]:
    """The revisions the database is at (empty: never migrated)."""
    from rechenwerk.store.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()

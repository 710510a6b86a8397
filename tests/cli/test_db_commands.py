"""``rechenwerk admin db upgrade|downgrade|current``: the commands the upgrade and
downgrade procedure in docs/operations.md uses (SQLite here; the migrations themselves
are tested on both databases in tests/store/test_migrations_populated.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.store.migrate import revisions

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'rw.db'}"
    monkeypatch.setenv("RECHENWERK_DATABASE_URL", url)
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path / "var"))
    from rechenwerk.config import get_settings

    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _current() -> dict[str, object]:
    res = runner.invoke(app, ["admin", "db", "current", "--json"])
    assert res.exit_code == 0, res.output
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_upgrade_downgrade_current(db: str) -> None:
    known = [r for r, _ in revisions()]
    assert _current() == {"current": [], "head": known[-1], "revisions": [
        {"revision": r, "description": d} for r, d in revisions()]}
    res = runner.invoke(app, ["admin", "db", "current"])
    assert "not migrated: run `rechenwerk admin db upgrade`" in res.stdout

    assert runner.invoke(app, ["admin", "db", "upgrade"]).exit_code == 0
    assert _current()["current"] == [known[-1]]
    assert "up to date" in runner.invoke(app, ["admin", "db", "current"]).stdout

    res = runner.invoke(app, ["admin", "db", "downgrade", known[-3]])
    assert res.exit_code == 0, res.output
    assert f"is at revision {known[-3]}" in res.stdout
    assert _current()["current"] == [known[-3]]
    assert "behind" in runner.invoke(app, ["admin", "db", "current"]).stdout

    assert runner.invoke(app, ["admin", "db", "upgrade"]).exit_code == 0
    assert _current()["current"] == [known[-1]]


def test_downgrade_needs_a_known_revision(db: str) -> None:
    assert runner.invoke(app, ["admin", "db", "downgrade"]).exit_code == 2
    res = runner.invoke(app, ["admin", "db", "downgrade", "0042_nope"])
    assert res.exit_code == 2
    assert "unknown revision '0042_nope'" in res.stderr
    assert "0001_access" in res.stderr

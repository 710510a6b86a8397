"""The server refuses the public development secret key outside the embedded default
(SQLite and the local executor), with one line naming RECHENWERK_SECRET_KEY."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.config import DEV_SECRET_KEY, Settings, check_secret_key, get_settings
from rechenwerk.errors import InvalidInput

PG_URL = "postgresql+psycopg://nobody@127.0.0.1:1/none"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_dev_secret_is_refused_with_postgresql_or_slurm(tmp_path: Path) -> None:
    for settings in (Settings(data_dir=tmp_path, database_url=PG_URL),
                     Settings(data_dir=tmp_path, executor="slurm"),
                     Settings(data_dir=tmp_path, database_url=PG_URL, secret_key="short")):
        with pytest.raises(InvalidInput) as err:
            check_secret_key(settings)
        assert "RECHENWERK_SECRET_KEY" in err.value.message
        assert "secrets.token_hex(32)" in err.value.message
        assert "\n" not in err.value.message and not err.value.hint


def test_dev_secret_is_allowed_with_a_warning_on_the_embedded_default(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path)
    assert embedded.secret_key == DEV_SECRET_KEY
    warning = check_secret_key(embedded)
    assert warning is not None and warning.startswith("warning: RECHENWERK_SECRET_KEY")
    assert "\n" not in warning
    good = Settings(data_dir=tmp_path, database_url=PG_URL, executor="slurm",
                    secret_key=secrets.token_hex(32))
    assert check_secret_key(good) is None


def _no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    return calls


def test_server_command_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    calls = _no_serving(monkeypatch)
    monkeypatch.delenv("RECHENWERK_SECRET_KEY", raising=False)
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RECHENWERK_DATABASE_URL", PG_URL)
    r = CliRunner().invoke(app, ["server", "--port", "1"])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: RECHENWERK_SECRET_KEY")
    assert "secrets.token_hex(32)" in lines[0] and "Traceback" not in r.output
    assert calls == []  # never started serving


def test_server_command_warns_once_on_the_embedded_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _no_serving(monkeypatch)
    monkeypatch.delenv("RECHENWERK_SECRET_KEY", raising=False)
    monkeypatch.delenv("RECHENWERK_DATABASE_URL", raising=False)
    monkeypatch.delenv("RECHENWERK_EXECUTOR", raising=False)
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path))
    r = CliRunner().invoke(app, ["server", "--port", "1"])
    assert r.exit_code == 0, r.output
    assert sum("RECHENWERK_SECRET_KEY" in line for line in r.output.splitlines()) == 1
    assert len(calls) == 1

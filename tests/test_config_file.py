"""The TOML configuration file: every setting, environment variables override it, typos
and bad values are one line naming the file; `admin config check` masks secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.config import Settings, get_settings
from rechenwerk.errors import InvalidInput


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rechenwerk.toml"
    path.write_text(
        'port = 8081\nscheduler_policy = "fifo"\n'
        'database_url = "postgresql+psycopg://rw:hunter2@db.example.eu/rechenwerk"\n'
        'secret_key = "0123456789abcdef0123456789abcdef"\n'
        '[qos_max_walltime]\nhigh = "12h"\n')
    monkeypatch.setenv("RECHENWERK_CONFIG", str(path))
    for var in ("RECHENWERK_PORT", "RECHENWERK_SCHEDULER_POLICY", "RECHENWERK_DATABASE_URL",
                "RECHENWERK_SECRET_KEY", "RECHENWERK_QOS_MAX_WALLTIME"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_file_values_and_env_override(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.port, s.scheduler_policy, s.qos_max_walltime) == (8081, "fifo", {"high": "12h"})
    monkeypatch.setenv("RECHENWERK_PORT", "9000")
    assert Settings().port == 9000  # the environment wins
    assert Settings(port=7000).port == 7000  # and explicit arguments over both


def test_unknown_key_names_the_closest(config: Path) -> None:
    config.write_text("prot = 8081\n")
    with pytest.raises(InvalidInput, match="unknown setting 'prot'") as exc:
        get_settings()
    assert exc.value.hint == "Did you mean 'port'?"


def test_bad_value_names_the_file(config: Path) -> None:
    config.write_text("port = 0\n")
    with pytest.raises(InvalidInput, match=rf"{config}: port: .*greater than or equal to 1"):
        get_settings()


@pytest.mark.parametrize(("text", "message"), [
    ("port = \n", "is not valid TOML"), (b"\xff\xfe", "is not UTF-8")])
def test_broken_files(config: Path, text: str | bytes, message: str) -> None:
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InvalidInput, match=message):
        get_settings()


def test_missing_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHENWERK_CONFIG", str(config.with_name("nope.toml")))
    with pytest.raises(InvalidInput, match=r"nope\.toml does not exist"):
        get_settings()


def test_config_check_masks_secrets(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHENWERK_PORT", "9000")
    monkeypatch.delenv("RECHENWERK_CONFIG")
    monkeypatch.setenv("RECHENWERK_CONFIG", "")  # restored after the --config below
    r = CliRunner().invoke(app, ["--config", str(config), "admin", "config", "check", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    got = out["settings"]
    assert out["config_file"] == str(config)
    assert got["port"] == {"value": 9000, "from": "environment"}
    assert got["scheduler_policy"] == {"value": "fifo", "from": f"file {config}"}
    assert got["secret_key"]["value"] == "********"
    assert got["database_url"]["value"] == (
        "postgresql+psycopg://rw:********@db.example.eu/rechenwerk")
    assert "hunter2" not in r.output and "0123456789abcdef" not in r.output
    assert got["executor"] == {"value": "local", "from": "default"}


def test_config_check_bad_file_is_one_line(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("executor = 'kubernetes'\n")
    monkeypatch.setenv("RECHENWERK_CONFIG", "")
    get_settings.cache_clear()
    r = CliRunner().invoke(app, ["admin", "config", "check", str(bad)])
    get_settings.cache_clear()
    assert r.exit_code == 2
    assert f"{bad}: executor:" in r.output and "Traceback" not in r.output

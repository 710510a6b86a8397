"""The AUP and token options through the CLI against a real uvicorn server (SQLite and
PostgreSQL): an operator publishes with `rechenwerk admin aup publish --file`, a user is
refused a token until `rechenwerk aup accept`, and `rechenwerk token create --scope read
--days N` makes a token that may only read. Errors are one line with an exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app as cli
from rechenwerk.config import get_settings


@pytest.fixture
def rw(live_server: str, db_url: str, tmp_path: Path) -> Any:
    runner = CliRunner()

    def run(*args: str, token: str = "", code: int = 0, stdin: str | None = None) -> Any:
        env = {"RECHENWERK_DATABASE_URL": db_url, "XDG_CONFIG_HOME": str(tmp_path / "home"),
               "RECHENWERK_API_URL": live_server, "RECHENWERK_TOKEN": token}
        get_settings.cache_clear()
        result = runner.invoke(cli, list(args), env=env, input=stdin)
        get_settings.cache_clear()
        assert result.exit_code == code, (args, result.exit_code, result.output)
        if code == 0 and "--json" in args:
            return json.loads(result.stdout)
        return result

    return run


def test_publish_accept_and_token_scope(rw: Any, tmp_path: Path) -> None:
    rw("admin", "user", "create", "olga", "--email", "o@x.eu", "--operator")
    rw("admin", "user", "create", "pia", "--email", "p@x.eu")
    pia = rw("admin", "token", "create", "pia", "--json")["token"]
    missing = rw("aup", "show", token=pia, code=3)
    assert "has not published an acceptable-use policy" in missing.stderr

    text = tmp_path / "aup.txt"
    text.write_text("1. Science only.\n2. Keep your tokens secret.\n", encoding="utf-8")
    bad = rw("admin", "aup", "publish", "--file", str(tmp_path / "nope.txt"), code=2)
    assert "cannot read" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2
    published = rw("admin", "aup", "publish", "--file", str(text), "--json")
    assert published["version"] == 1

    logged_in = rw("login", "--token", pia)
    assert "accept its acceptable-use policy (version 1): rechenwerk aup accept" in (
        logged_in.stdout)
    refused = rw("token", "create", "--name", "x", token=pia, code=4)
    assert "acceptable-use policy (version 1)" in refused.stderr
    assert "rechenwerk aup accept" in refused.stderr
    declined = rw("aup", "accept", token=pia, code=2, stdin="n\n")
    assert "1. Science only." in declined.stdout and "not accepted" in declined.stderr
    accepted = rw("aup", "accept", token=pia, stdin="y\n")
    assert "accepted the acceptable-use policy, version 1" in accepted.stdout
    shown = rw("aup", "show", "--json", token=pia)
    assert shown["version"] == 1 and shown["accepted_at"]
    assert "already" in rw("aup", "accept", "--yes", token=pia).stdout
    assert "acceptable-use" not in rw("login", "--token", pia).stdout

    ro = rw("token", "create", "--name", "ro", "--scope", "read", "--days", "7", "--json",
            token=pia)
    assert ro["scope"] == "read" and ro["expires_at"]
    assert rw("whoami", "--json", token=ro["token"])["username"] == "pia"
    read_only = rw("token", "create", "--name", "y", token=ro["token"], code=4)
    assert "read-only" in read_only.stderr
    rw("token", "create", "--scope", "admin", token=pia, code=2)
    too_long = rw("token", "create", "--days", "400", token=pia, code=2)
    assert "expires_in_days" in too_long.stderr
    listed = {t["name"]: t["scope"] for t in rw("token", "list", "--json", token=pia)}
    assert listed == {"cli": "full", "ro": "read"}
    versions = rw("admin", "aup", "list", "--json")
    assert [(v["version"], v["accepted_by"]) for v in versions] == [(1, 1)]

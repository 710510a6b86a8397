"""``rechenwerk proposal edit`` and ``proposal withdraw`` against a real uvicorn server
(SQLite and PostgreSQL): partial edits, one-line errors with the right exit codes."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from factories import make_call, make_org, make_project, make_token, make_user
from rechenwerk.app import create_app
from rechenwerk.cli.main import app as cli
from rechenwerk.config import Settings, get_settings
from waiting import wait_for


@pytest.fixture
def server(db_url: str, session_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    app = create_app(Settings(data_dir=tmp_path / "var", database_url=db_url),
                     session_factory=session_factory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the test server died while starting"
        return bool(srv.started)

    wait_for(started, "the test server to start", step=0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def tokens(session: Session) -> dict[str, str]:
    sme = make_org(session, kind="sme")
    pi = make_user(session, username="pia", org=sme)
    member = make_user(session, username="mem", org=sme)
    make_project(session, pi=pi, slug="alpha", members={member: "member"})
    now = datetime.now(UTC)  # the live server runs on the wall clock
    make_call(session, slug="inno", access_mode="innovation", max_gpu_hours=1000,
              opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=30))
    out = {"pi": make_token(session, pi), "member": make_token(session, member)}
    session.commit()  # the server's transactions must not wait for ours (SQLite)
    return out


def run(url: str, home: Path, token: str, *args: str, code: int = 0) -> Any:
    env = {"RECHENWERK_API_URL": url, "RECHENWERK_TOKEN": token,
           "XDG_CONFIG_HOME": str(home)}
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=env)
    get_settings.cache_clear()
    assert result.exit_code == code, (args, result.exit_code, result.output)
    if code == 0 and "--json" in args:
        return json.loads(result.stdout)
    return result


def test_edit_and_withdraw_through_the_cli(server: str, tokens: dict[str, str],
                                           tmp_path: Path) -> None:
    pi, member = tokens["pi"], tokens["member"]
    p = run(server, tmp_path, pi, "proposal", "create", "--call", "inno", "--project",
            "alpha", "--title", "LLM", "--gpu-type", "A100-80GB", "--gpu-hours", "500",
            "--json")
    pid = str(p["id"])
    edited = run(server, tmp_path, pi, "proposal", "edit", pid, "--gpu-hours", "800",
                 "--title", "LLM, continued", "--json")
    assert (edited["requested_gpu_hours"], edited["title"]) == (800.0, "LLM, continued")
    assert edited["gpu_type"] == "A100-80GB"  # not given: unchanged

    # Errors: one line on stderr (plus the hint), exit code of the error class.
    bad = run(server, tmp_path, pi, "proposal", "edit", pid, "--gpu-hours", "5000", code=2)
    assert "requested_gpu_hours" in bad.stderr and "maximum of 1000" in bad.stderr
    assert "Traceback" not in bad.output
    nothing = run(server, tmp_path, pi, "proposal", "edit", pid, code=2)
    assert "nothing to change" in nothing.stderr and "--gpu-hours" in nothing.stderr
    denied = run(server, tmp_path, member, "proposal", "edit", pid, "--title", "x", code=4)
    assert "only the PI" in denied.stderr
    run(server, tmp_path, pi, "proposal", "edit", "9999", "--title", "x", code=3)

    run(server, tmp_path, pi, "proposal", "submit", pid)
    late = run(server, tmp_path, pi, "proposal", "edit", pid, "--title", "x", code=5)
    assert "only drafts can be edited" in late.stderr
    assert f"rechenwerk proposal withdraw {pid}" in late.stderr

    shown = run(server, tmp_path, pi, "proposal", "withdraw", pid, "--reason", "duplicate")
    assert "withdrawn" in shown.stdout and "by pia" in shown.stdout
    again = run(server, tmp_path, pi, "proposal", "withdraw", pid, code=5)
    assert "already withdrawn" in again.stderr
    listed = run(server, tmp_path, pi, "proposal", "list", "--state", "withdrawn", "--json")
    assert [x["id"] for x in listed["items"]] == [int(pid)]

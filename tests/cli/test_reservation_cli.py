"""``rechenwerk reservation create|list|delete`` against a real server (SQLite and
PostgreSQL): operator writes, a user's view, and one-line errors with exit codes."""

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

from factories import make_project, make_token, make_user
from rechenwerk.app import create_app
from rechenwerk.cli.main import app as cli
from rechenwerk.cli.reservations import parse_when
from rechenwerk.config import Settings, get_settings
from rechenwerk.errors import InvalidInput
from waiting import wait_for


@pytest.fixture
def server_url(session_factory: sessionmaker[Session], db_url: str,
               tmp_path: Path) -> Iterator[str]:
    app = create_app(Settings(data_dir=tmp_path / "var", database_url=db_url),
                     session_factory=session_factory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: bool(server.started), "the test server to start", step=0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _run(url: str, home: Path, token: str, *args: str, code: int = 0) -> Any:
    env = {"XDG_CONFIG_HOME": str(home), "RECHENWERK_API_URL": url, "RECHENWERK_TOKEN": token}
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == code, (args, result.output)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_reservation_commands(server_url: str, session: Session, tmp_path: Path) -> None:
    op, pi, other = make_user(session, operator=True), make_user(session), make_user(session)
    project = make_project(session, pi=pi)
    make_project(session, pi=other)
    t_op, t_pi, t_other = (make_token(session, u) for u in (op, pi, other))
    session.commit()
    home = tmp_path / "home"
    made = _run(server_url, home, t_op, "reservation", "create", "hero-cli", "--start", "+1h",
                "--duration", "6h", "--gpus", "12", "-p", project.slug, "--json")
    assert made["gpus"] == 12 and [n["gpus"] for n in made["nodes"]] == [8, 4]
    out = _run(server_url, home, t_op, "reservation", "create", "maint-cli", "--start",
               "+8h", "--duration", "1h", "--maintenance", "--node", "node01")
    assert "reservation maint-cli created: 8 GPUs (node01:8) for maintenance" in out.output
    mine = _run(server_url, home, t_pi, "reservation", "list", "--json")["items"]
    assert [r["name"] for r in mine] == ["hero-cli", "maint-cli"]
    theirs = _run(server_url, home, t_other, "reservation", "list", "--json")["items"]
    assert [r["name"] for r in theirs] == ["maint-cli"]
    # errors: one line, an exit code, no traceback
    bad = _run(server_url, home, t_op, "reservation", "create", "too-big", "--start", "+2h",
               "--duration", "1h", "--gpus", "5", "-p", project.slug, code=2)
    assert "only 4 are not reserved" in bad.output and "Traceback" not in bad.output
    denied = _run(server_url, home, t_pi, "reservation", "delete", "hero-cli", code=4)
    assert "Traceback" not in denied.output
    _run(server_url, home, t_op, "reservation", "delete", "hero-cli")
    _run(server_url, home, t_op, "reservation", "delete", "hero-cli", code=3)
    bad_time = _run(server_url, home, t_op, "reservation", "create", "x", "--start",
                    "tomorrow", "--duration", "1h", "--maintenance", "--node", "node02",
                    code=2)
    assert "cannot read start 'tomorrow'" in bad_time.output


def test_parse_when() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert parse_when("now", field="start", now=now) == now
    assert parse_when("+90m", field="start", now=now) == now + timedelta(minutes=90)
    assert parse_when("2026-12-08T14:00", field="start") == datetime(2026, 12, 8, 14,
                                                                     tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_when("soon", field="start")

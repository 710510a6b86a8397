"""``rechenwerk reservation create|list|delete`` against a real server (SQLite and
PostgreSQL): operator writes, a user's view, and one-line errors with exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from factories import make_project, make_token, make_user
from live_server import run_cli as _run
from rechenwerk.cli.reservations import parse_when
from rechenwerk.errors import InvalidInput


def test_reservation_commands(live_server: str, session: Session, tmp_path: Path) -> None:
    op, pi, other = make_user(session, operator=True), make_user(session), make_user(session)
    project = make_project(session, pi=pi)
    make_project(session, pi=other)
    t_op, t_pi, t_other = (make_token(session, u) for u in (op, pi, other))
    session.commit()
    home = tmp_path / "home"
    made = _run(live_server, home, t_op, "reservation", "create", "hero-cli", "--start", "+1h",
                "--duration", "6h", "--gpus", "12", "-p", project.slug, "--json")
    assert made["gpus"] == 12 and [n["gpus"] for n in made["nodes"]] == [8, 4]
    out = _run(live_server, home, t_op, "reservation", "create", "maint-cli", "--start",
               "+8h", "--duration", "1h", "--maintenance", "--node", "node01")
    assert "reservation maint-cli created: 8 GPUs (node01:8) for maintenance" in out.output
    mine = _run(live_server, home, t_pi, "reservation", "list", "--json")["items"]
    assert [r["name"] for r in mine] == ["hero-cli", "maint-cli"]
    theirs = _run(live_server, home, t_other, "reservation", "list", "--json")["items"]
    assert [r["name"] for r in theirs] == ["maint-cli"]
    # errors: one line, an exit code, no traceback
    bad = _run(live_server, home, t_op, "reservation", "create", "too-big", "--start", "+2h",
               "--duration", "1h", "--gpus", "5", "-p", project.slug, code=2)
    assert "only 4 are not reserved" in bad.output and "Traceback" not in bad.output
    denied = _run(live_server, home, t_pi, "reservation", "delete", "hero-cli", code=4)
    assert "Traceback" not in denied.output
    _run(live_server, home, t_op, "reservation", "delete", "hero-cli")
    _run(live_server, home, t_op, "reservation", "delete", "hero-cli", code=3)
    bad_time = _run(live_server, home, t_op, "reservation", "create", "x", "--start",
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

"""``rechenwerk proposal edit`` and ``proposal withdraw`` against a real uvicorn server
(SQLite and PostgreSQL): partial edits, one-line errors with the right exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from factories import make_call, make_org, make_project, make_token, make_user
from live_server import run_cli as run


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



def test_edit_and_withdraw_through_the_cli(live_server: str, tokens: dict[str, str],
                                           tmp_path: Path) -> None:
    pi, member = tokens["pi"], tokens["member"]
    p = run(live_server, tmp_path, pi, "proposal", "create", "--call", "inno", "--project",
            "alpha", "--title", "LLM", "--gpu-type", "A100-80GB", "--gpu-hours", "500",
            "--json")
    pid = str(p["id"])
    edited = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--gpu-hours", "800",
                 "--title", "LLM, continued", "--json")
    assert (edited["requested_gpu_hours"], edited["title"]) == (800.0, "LLM, continued")
    assert edited["gpu_type"] == "A100-80GB"  # not given: unchanged

    # Errors: one line on stderr (plus the hint), exit code of the error class.
    bad = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--gpu-hours", "5000", code=2)
    assert "requested_gpu_hours" in bad.stderr and "maximum of 1000" in bad.stderr
    assert "Traceback" not in bad.output
    nothing = run(live_server, tmp_path, pi, "proposal", "edit", pid, code=2)
    assert "nothing to change" in nothing.stderr and "--gpu-hours" in nothing.stderr
    denied = run(live_server, tmp_path, member, "proposal", "edit", pid, "--title", "x", code=4)
    assert "only the PI" in denied.stderr
    run(live_server, tmp_path, pi, "proposal", "edit", "9999", "--title", "x", code=3)

    run(live_server, tmp_path, pi, "proposal", "submit", pid)
    late = run(live_server, tmp_path, pi, "proposal", "edit", pid, "--title", "x", code=5)
    assert "only drafts can be edited" in late.stderr
    assert f"rechenwerk proposal withdraw {pid}" in late.stderr

    shown = run(live_server, tmp_path, pi, "proposal", "withdraw", pid, "--reason", "duplicate")
    assert "withdrawn" in shown.stdout and "by pia" in shown.stdout
    again = run(live_server, tmp_path, pi, "proposal", "withdraw", pid, code=5)
    assert "already withdrawn" in again.stderr
    listed = run(live_server, tmp_path, pi, "proposal", "list", "--state", "withdrawn", "--json")
    assert [x["id"] for x in listed["items"]] == [int(pid)]

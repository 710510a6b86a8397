"""``rechenwerk call-type`` and the call-type options of ``call`` and ``proposal``
against a real server (SQLite and PostgreSQL): presets as published, one-line errors
with exit codes, the due date and the overdue filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from factories import make_org, make_project, make_token, make_user
from live_server import run_cli


def test_call_types_through_the_cli(live_server: str, session: Session,
                                    tmp_path: Path) -> None:
    op = make_token(session, make_user(session, username="olga", operator=True))
    pi_user = make_user(session, username="pia", org=make_org(session, kind="sme",
                                                               country="NL"))
    make_project(session, pi=pi_user, slug="polder")
    pi = make_token(session, pi_user)
    session.commit()

    def rw(token: str, *args: str, code: int = 0) -> Any:
        return run_cli(live_server, tmp_path, token, *args, code=code)

    fl = rw(op, "call-type", "create", "--preset", "fast-lane", "--json")
    assert (fl["key"], fl["max_gpu_hours"], fl["decision_working_days"]) == (
        "fast-lane", 50_000, 4)
    rw(op, "call-type", "create", "--preset", "large-scale")
    own = rw(op, "call-type", "create", "quick", "--title", "Quick access", "--months", "1",
             "--max-gpu-hours", "500", "--step", "eligibility", "--step", "decision",
             "--decision-days", "2", "--submission", "rolling", "--json")
    assert own["review_steps"] == ["eligibility", "decision"] and own["duration_months"] == [1]
    listed = rw(pi, "call-type", "list")
    assert "large-scale" in listed.output and "cutoffs (monthly)" in listed.output
    shown = rw(pi, "call-type", "show", "large-scale")
    assert "eligibility -> technical -> scientific" in shown.output

    # Mistakes: one line each, exit 2 (bad input), 3 (not found), 4 (not allowed), 5 (conflict)
    bad = rw(op, "call-type", "create", "x2", "--title", "X", "--submission", "cutoffs",
             code=2)
    assert "cutoff_period" in bad.stderr and "Traceback" not in bad.output
    assert "no preset 'nope'" in rw(op, "call-type", "create", "--preset", "nope",
                                    code=2).stderr
    rw(op, "call-type", "show", "nope", code=3)
    rw(pi, "call-type", "create", "--preset", "playground", code=4)
    rw(op, "call-type", "create", "--preset", "fast-lane", code=5)

    closes = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()
    call = rw(op, "call", "create", "fl-now", "--title", "Fast Lane", "--mode", "fast_lane",
              "--type", "fast-lane", "--closes", closes, "--json")
    assert call["call_type"]["key"] == "fast-lane"
    assert "decision within" in rw(pi, "call", "show", "fl-now").output
    p = rw(pi, "proposal", "create", "--call", "fl-now", "--project", "polder", "--title",
           "Fine-tune", "--gpu-type", "A100-80GB", "--gpu-hours", "900", "--json")
    pid = str(p["id"])
    missing = rw(pi, "proposal", "submit", pid, code=2)
    assert "duration_months" in missing.stderr and "required" in missing.stderr
    rw(pi, "proposal", "edit", pid, "--months", "9", code=2)
    rw(pi, "proposal", "edit", pid, "--months", "3")
    submitted = rw(pi, "proposal", "submit", pid, "--json")
    assert submitted["due_on"] and submitted["duration_months"] == 3
    assert "decision due" in rw(pi, "proposal", "show", pid).output
    assert rw(op, "proposal", "list", "--overdue", "--json")["total"] == 0

"""``rechenwerk award request|changes|decide-change|change-withdraw|history`` against a
real server (SQLite and PostgreSQL), with the HTTP answers behind them: who may do what
(404 for outsiders, 403 for members and for PIs deciding), one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from factories import make_org, make_project, make_token, make_user
from live_server import run_cli
from rechenwerk.access.awards import create_award


def test_award_changes_through_the_cli(live_server: str, session: Session,
                                       tmp_path: Path) -> None:
    org = make_org(session, kind="university")
    op_user = make_user(session, username="olga", operator=True)
    pi_user = make_user(session, username="pia", org=org)
    member = make_user(session, username="mo", org=org)
    project = make_project(session, pi=pi_user, slug="alpha", members={member: "member"})
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)  # the wall clock
    award = create_award(session, op_user, project=project, gpu_hours=4000, starts_at=start,
                         gpu_type="A100-80GB", period_count=2, period_months=3, now=start)
    op, pi, mo = (make_token(session, u) for u in (op_user, pi_user, member))
    outsider = make_token(session, make_user(session))
    session.commit()
    aid = str(award.id)

    def rw(token: str, *args: str, code: int = 0) -> Any:
        return run_cli(live_server, tmp_path, token, *args, code=code)

    until = (award.expires_at + timedelta(days=60)).date().isoformat()
    ext = rw(pi, "award", "request", aid, "extension", "--until", until, "--reason",
             "The cluster was down for a month.", "--json")
    assert ext["state"] == "requested" and ext["requested_until"].startswith(until)
    sup = rw(pi, "award", "request", aid, "supplement", "--gpu-hours", "1000", "--reason",
             "One more ablation.", "--json")
    bad = rw(pi, "award", "request", aid, "supplement", "--gpu-hours", "5", "--reason", "x",
             code=5)
    assert "already has an open supplement request" in bad.stderr
    assert "kind 'more' is not valid" in rw(pi, "award", "request", aid, "more",
                                             "--reason", "x", code=2).stderr
    rw(mo, "award", "request", aid, "early-end", "--reason", "x", code=4)
    rw(outsider, "award", "request", aid, "early-end", "--reason", "x", code=3)
    listed = rw(op, "award", "changes", "--state", "requested", "--json")
    assert [c["kind"] for c in listed["items"]] == ["supplement", "extension"]
    assert rw(outsider, "award", "changes", "--json")["total"] == 0

    rw(pi, "award", "decide-change", str(ext["id"]), "approve", "--note", "ok", code=4)
    approved = rw(op, "award", "decide-change", str(ext["id"]), "approve", "--note",
                  "Agreed, the outage was ours.", "--json")
    assert approved["state"] == "approved" and approved["version"] == 2
    rejected = rw(op, "award", "decide-change", str(sup["id"]), "reject", "--note",
                  "Apply in the next call.", "--json")
    assert rejected["state"] == "rejected" and rejected["version"] is None
    again = rw(op, "award", "decide-change", str(sup["id"]), "approve", "--note", "n", code=5)
    assert "already rejected" in again.stderr
    shown = rw(pi, "award", "show", aid, "--json")
    assert shown["version"] == 2 and shown["expires_at"].startswith(until)
    assert shown["gpu_hours"] == 4000
    history = rw(pi, "award", "history", aid)
    assert "awarded" in history.output and str(ext["id"]) in history.output
    assert "Apply in the next call." in rw(pi, "award", "change-show", str(sup["id"])).output

    # the HTTP answers behind it
    base = f"{live_server}/api/v1"
    r = httpx.post(f"{base}/awards/{aid}/changes", headers={"Authorization": f"Bearer {pi}"},
                   json={"kind": "early_end", "reason": "r", "gpu_hours": 3})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "gpu_hours"
    r = httpx.get(f"{base}/awards/{aid}/versions",
                  headers={"Authorization": f"Bearer {outsider}"})
    assert r.status_code == 404
    r = httpx.get(f"{base}/awards/{aid}/versions", headers={"Authorization": f"Bearer {pi}"})
    assert [v["version"] for v in r.json()] == [1, 2]

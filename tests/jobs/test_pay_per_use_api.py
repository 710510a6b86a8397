"""Pay-per-use through the REST API and the CLI: a submission accepted and one refused
with the arithmetic, the balance after a settled run, no second charge on a re-poll,
the monthly statement (JSON, CSV) and the CLI's one-line error."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import T0, bearer, make_project, make_token, make_user
from rechenwerk.access.accounts import create_account
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.cli import client as cli_client
from rechenwerk.cli.main import app as cli
from rechenwerk.clock import FakeClock
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.jobs import progress as job_progress
from rechenwerk.jobs import transitions as job_transitions
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.states import JobState

SPEC = {
    "name": "train",
    "command": "python3 train.py",
    "gpus": 4,
    "walltime": "24h",
    "gpu_type": "A100-80GB",
}


def _world(session: Session) -> dict[str, Any]:
    pi = make_user(session)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi)
    account = create_account(
        session, op, project=project, credit_limit_eur=350.0, prices={"A100-80GB": 2.10}, now=T0
    )
    out = {
        "slug": project.slug,
        "account": account.id,
        "pi_name": pi.username,
        "pi_token": make_token(session, pi),
        "stranger": bearer(make_token(session, make_user(session))),
    }
    out["pi"] = bearer(out["pi_token"])
    session.commit()
    return out


def _run(session: Session, job_id: int, clock: FakeClock, hours: float) -> None:
    """The backend starts the job and reports its end (the poll phase's path)."""
    job = session.get(Job, job_id)
    assert job is not None
    start = clock.now()
    assert job_transitions.transition(
        session,
        job,
        JobState.STARTING,
        now=start,
        values={"attempt": 1, "backend_handle": "h", "placement": [["node01", [0, 1, 2, 3]]]},
    )
    job_progress.apply_backend_status(
        session, job, BackendJobStatus("h", BackendJobState.RUNNING, started_at=start), now=start
    )
    end = start + timedelta(hours=hours)
    job_progress.apply_backend_status(
        session,
        job,
        BackendJobStatus(
            "h", BackendJobState.COMPLETED, started_at=start, ended_at=end, exit_code=0
        ),
        now=end,
    )
    session.commit()


@pytest.fixture
def cli_env(
    api_client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """The CLI talks to the test app in-process (its fake clock, its database)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    cli_client.use_transport(api_client._transport)  # type: ignore[attr-defined]
    yield
    cli_client.use_transport(None)


def test_submit_settle_statement(
    api_client: TestClient, session: Session, clock: FakeClock
) -> None:
    w = _world(session)
    r = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"]}, headers=w["pi"])
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["account_id"] == w["account"] and job["eur_per_gpu_hour"] == "2.10"
    bal = api_client.get(f"/api/v1/accounts/{w['slug']}/balance", headers=w["pi"]).json()
    assert (
        bal["credit_limit_eur"],
        bal["settled_eur"],
        bal["committed_eur"],
        bal["remaining_eur"],
    ) == ("350.00", "0.00", "201.60", "148.40")
    assert bal["remaining_cents"] == 14_840

    refused = api_client.post("/api/v1/jobs", json={**SPEC, "project": w["slug"]}, headers=w["pi"])
    assert refused.status_code == 402
    problem = refused.json()
    assert problem["code"] == "budget_exceeded"
    assert problem["detail"] == (
        "this job can cost up to 4 GPUs x 24 h x 2.10 EUR = 201.60 EUR; "
        f"account {w['account']} ({w['slug']}) has 148.40 EUR left (limit 350.00, "
        "settled 0.00, committed 201.60)"
    )
    no_price = api_client.post(
        "/api/v1/jobs", json={**SPEC, "project": w["slug"], "gpu_type": "H100-SXM"}, headers=w["pi"]
    )
    assert no_price.status_code == 422 and "no price for GPU type" in no_price.json()["detail"]

    _run(session, job["id"], clock, hours=1.5)  # 4 x 1.5 h x 2.10 = 12.60
    bal = api_client.get(f"/api/v1/accounts/{w['account']}/balance", headers=w["pi"]).json()
    assert (bal["settled_eur"], bal["committed_eur"], bal["remaining_eur"]) == (
        "12.60",
        "0.00",
        "337.40",
    )
    # the backend reports the same end again on the next poll: charged once
    again = session.get(Job, job["id"])
    assert again is not None
    assert not job_progress.apply_backend_status(
        session,
        again,
        BackendJobStatus(
            "h",
            BackendJobState.COMPLETED,
            started_at=clock.now(),
            ended_at=clock.now() + timedelta(hours=1.5),
            exit_code=0,
        ),
        now=clock.now() + timedelta(hours=3),
    )
    session.commit()
    assert session.scalar(select(func.count(UsageRecord.id))) == 1
    bal = api_client.get(f"/api/v1/accounts/{w['account']}/balance", headers=w["pi"]).json()
    assert bal["settled_eur"] == "12.60"

    st = api_client.get(
        f"/api/v1/accounts/{w['slug']}/statement", params={"month": "2026-01"}, headers=w["pi"]
    ).json()
    assert (st["opening_balance_eur"], st["total_eur"], st["closing_balance_eur"]) == (
        "350.00",
        "12.60",
        "337.40",
    )
    assert [
        (
            i["job_id"],
            i["job_name"],
            i["user"],
            i["gpu_type"],
            i["gpus"],
            i["hours"],
            i["gpu_hours"],
            i["eur_per_gpu_hour"],
            i["amount_eur"],
        )
        for i in st["items"]
    ] == [(job["id"], "train", w["pi_name"], "A100-80GB", 4, "1.5000", "6.0000", "2.10", "12.60")]
    later = api_client.get(
        f"/api/v1/accounts/{w['slug']}/statement", params={"month": "2026-02"}, headers=w["pi"]
    ).json()
    assert later["items"] == [] and later["opening_balance_eur"] == "337.40"

    r = api_client.get(
        f"/api/v1/accounts/{w['slug']}/statement",
        params={"month": "2026-01", "format": "csv"},
        headers=w["pi"],
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == [
        "job_id",
        "job_name",
        "user",
        "gpu_type",
        "gpus",
        "started_at",
        "ended_at",
        "hours",
        "gpu_hours",
        "eur_per_gpu_hour",
        "amount_eur",
    ]
    assert rows[1][:5] == [str(job["id"]), "train", w["pi_name"], "A100-80GB", "4"]
    assert rows[1][7:] == ["1.5000", "6.0000", "2.10", "12.60"]
    assert [(row[0], row[-1]) for row in rows[2:]] == [
        ("opening_balance", "350.00"),
        ("total", "12.60"),
        ("closing_balance", "337.40"),
    ]
    assert rows[3][8] == "6.0000"

    pdf = api_client.get(
        f"/api/v1/accounts/{w['slug']}/statement",
        params={"month": "2026-01", "format": "pdf"},
        headers=w["pi"],
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"/Type /Page" in pdf.content
    assert f"statement-{w['slug']}-2026-01.pdf" in pdf.headers["content-disposition"]


def test_statement_bad_month_and_strangers(api_client: TestClient, session: Session) -> None:
    w = _world(session)
    bad = api_client.get(
        f"/api/v1/accounts/{w['slug']}/statement", params={"month": "2026-13"}, headers=w["pi"]
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "month"
    for path in ("balance", "statement?month=2026-01"):
        r = api_client.get(f"/api/v1/accounts/{w['account']}/{path}", headers=w["stranger"])
        assert r.status_code == 404
    none = api_client.get("/api/v1/accounts/no-such-project/balance", headers=w["pi"])
    assert none.status_code == 404


def test_cli_statement_balance_and_refusal(
    api_client: TestClient,
    session: Session,
    clock: FakeClock,
    cli_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    w = _world(session)
    monkeypatch.setenv("RECHENWERK_TOKEN", w["pi_token"])
    runner = CliRunner()
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({**SPEC, "project": w["slug"]}))
    ok = runner.invoke(cli, ["submit", str(spec), "--json"])
    assert ok.exit_code == 0, ok.output
    job_id = json.loads(ok.stdout)["id"]
    refused = runner.invoke(cli, ["submit", str(spec)])
    assert refused.exit_code == 6
    assert "error: this job can cost up to 4 GPUs x 24 h x 2.10 EUR = 201.60 EUR" in (
        refused.stderr
    )
    assert "Traceback" not in refused.output

    _run(session, job_id, clock, hours=1.5)
    again = runner.invoke(cli, ["submit", str(spec)])  # 337.40 left: it fits again
    assert again.exit_code == 0, again.output
    assert (
        f"charged to pay-per-use account {w['account']} at 2.10 EUR per GPU-hour, "
        "commits up to 201.60 EUR"
    ) in again.stdout
    bal = runner.invoke(cli, ["account", "balance", w["slug"]])
    assert bal.exit_code == 0, bal.output
    assert "135.80" in bal.stdout and "12.60" in bal.stdout  # 350 - 12.60 - 201.60
    out = runner.invoke(cli, ["account", "statement", w["slug"], "--month", "2026-01", "--csv"])
    assert out.exit_code == 0, out.output
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[1][0] == str(job_id) and rows[1][-1] == "12.60"
    assert rows[-1] == ["closing_balance", *[""] * 9, "337.40"]
    out_pdf = tmp_path / "statement.pdf"
    wrote = runner.invoke(cli, ["account", "statement", w["slug"], "--month", "2026-01",
                                "--pdf", str(out_pdf)])
    assert wrote.exit_code == 0, wrote.output
    assert out_pdf.read_bytes().startswith(b"%PDF-")
    table = runner.invoke(cli, ["account", "statement", str(w["account"]), "--month", "2026-01"])
    assert table.exit_code == 0 and "337.40" in table.stdout and "train" in table.stdout
    as_json = runner.invoke(
        cli, ["account", "statement", w["slug"], "--month", "2026-01", "--json"]
    )
    assert json.loads(as_json.stdout)["total_eur"] == "12.60"
    bad = runner.invoke(cli, ["account", "statement", w["slug"], "--month", "11-2026"])
    assert bad.exit_code != 0 and "month" in bad.stderr and "Traceback" not in bad.output
    both = runner.invoke(
        cli, ["account", "statement", w["slug"], "--month", "2026-01", "--csv", "--json"]
    )
    assert both.exit_code != 0 and "give one of --json, --csv, --pdf" in both.stderr

"""A run's GPU use from the backend's status to its usage record, then out again: the
job resource, `rechenwerk job show`, the portal job page, and the gpu-use report (API,
table, --json, --csv); on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import T0, bearer, make_award, make_org, make_project, make_token, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.accounting.charging import record_gpu_use, settle_usage
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.cli.main import app as cli
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.execution.gpu_use import GpuUse, aggregate_recorded, parse_nvidia_smi_csv
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.progress import apply_backend_status

LOG = Path(__file__).parents[1] / "execution" / "data" / "nvidia_smi_4gpu_starved.csv"
RANGE = {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}


def _recorded() -> GpuUse:
    use = aggregate_recorded(parse_nvidia_smi_csv(LOG.read_text()), [0, 1, 2, 3])
    assert use is not None
    return use


def _running_job(session: Session, project: Any, user: Any, *, gpus: int, name: str) -> Job:
    job = Job(
        project_id=project.id,
        user_id=user.id,
        name=name,
        spec={"command": ["t"]},
        state="running",
        qos="normal",
        requested_qos="normal",
        over_budget=False,
        gpus=gpus,
        walltime_s=7200,
        attempt=1,
        attained_gpu_s=0.0,
        backend="local",
        backend_handle=f"{name}.1",
        submitted_at=T0,
        started_at=T0,
        updated_at=T0,
    )
    session.add(job)
    session.flush()
    return job


@pytest.fixture
def world(session: Session) -> Iterator[dict[str, Any]]:
    org = make_org(session, name="Uni A")
    pi = make_user(session, username="pia", org=org, password_hash=_hash())
    bob = make_user(session, username="bob", org=org, password_hash=_hash())
    op = make_user(session, username="op", org=org, operator=True)
    alpha = make_project(session, pi=pi, slug="alpha", members={bob: "member"})
    beta = make_project(session, pi=op, slug="beta")
    make_award(session, alpha, gpu_hours=500.0)
    make_award(session, beta, gpu_hours=500.0)
    end = T0 + timedelta(hours=1)
    # alpha/bob: 4 GPUs, measured by NVML (the recorded log: 14 %, 990 idle GPU-s)
    starved = _running_job(session, alpha, bob, gpus=4, name="starved")
    apply_backend_status(
        session,
        starved,
        BackendJobStatus(
            starved.backend_handle or "",
            BackendJobState.COMPLETED,
            started_at=T0,
            ended_at=end,
            exit_code=0,
            gpu_use=_recorded(),
        ),
        now=end,
    )
    # alpha/pia: busy, 2 GPUs at 90 %
    busy = _running_job(session, alpha, pi, gpus=2, name="busy")
    apply_backend_status(
        session,
        busy,
        BackendJobStatus(
            busy.backend_handle or "",
            BackendJobState.COMPLETED,
            started_at=T0,
            ended_at=end,
            exit_code=0,
            gpu_use=GpuUse("nvml", 2, 90.0, 40 << 30, 0.0, 3600.0, 360),
        ),
        now=end,
    )
    # beta/op: not measured, and why
    blind = _running_job(session, beta, op, gpus=1, name="blind")
    apply_backend_status(
        session,
        blind,
        BackendJobStatus(
            blind.backend_handle or "",
            BackendJobState.COMPLETED,
            started_at=T0,
            ended_at=end,
            exit_code=0,
            gpu_use_note="NVML is not installed (pip install 'rechenwerk[gpu]')",
        ),
        now=end,
    )
    running = _running_job(session, alpha, bob, gpus=1, name="running")
    session.commit()
    yield {
        "starved": starved.id,
        "busy": busy.id,
        "blind": blind.id,
        "running": running.id,
        "op": op,
        "bob": bob,
        "alpha": alpha,
    }


def test_the_run_keeps_its_gpu_use(session: Session, world: dict[str, Any]) -> None:
    rec = session.scalars(select(UsageRecord).where(UsageRecord.job_id == world["starved"])).one()
    use = _recorded()
    assert (rec.gpu_use_source, rec.gpu_measured, rec.gpu_util_mean_pct) == ("nvml", 4, 13.86)
    assert rec.gpu_mem_max_bytes == use.max_mem_bytes and rec.gpu_idle_s == 990.0
    assert rec.gpu_measured_s == 360.0 and rec.gpu_use_note is None
    blind = session.scalars(select(UsageRecord).where(UsageRecord.job_id == world["blind"])).one()
    assert blind.gpu_use_source is None and blind.gpu_util_mean_pct is None
    assert blind.gpu_use_note is not None and "NVML is not installed" in blind.gpu_use_note


def test_late_figures_fill_a_settled_run_once(session: Session, world: dict[str, Any]) -> None:
    # Slurm's step usage reaches slurmdbd after the run was settled from its live status
    rec = settle_usage(
        session,
        project_id=world["alpha"].id,
        gpus=1,
        started_at=T0,
        ended_at=T0 + timedelta(hours=1),
        now=T0,
        external_id="slurm:77",
    )
    assert rec.gpu_use_source is None
    late = GpuUse("slurm", 1, 12.0, 2 << 30, 0.0, 3600.0)
    assert record_gpu_use(rec, late) is True
    assert (rec.gpu_use_source, rec.gpu_util_mean_pct) == ("slurm", 12.0)
    # a measured run is never overwritten, and settling again keeps it
    assert record_gpu_use(rec, GpuUse("slurm", 1, 99.0, 0, 0.0, 1.0)) is False
    again = settle_usage(
        session,
        project_id=world["alpha"].id,
        gpus=1,
        started_at=T0,
        ended_at=T0 + timedelta(hours=1),
        now=T0,
        external_id="slurm:77",
        gpu_use=GpuUse("slurm", 1, 50.0, 0, 0.0, 1.0),
    )
    assert again.id == rec.id and again.gpu_util_mean_pct == 12.0


def test_job_resource(session: Session, world: dict[str, Any], api_client: Any) -> None:
    token = make_token(session, world["bob"])
    session.commit()
    starved = api_client.get(f"/api/v1/jobs/{world['starved']}", headers=bearer(token))
    assert starved.status_code == 200, starved.text
    use = starved.json()["gpu_use"]
    assert use["measured"] is True and use["source"] == "nvml" and use["attempt"] == 1
    assert use["gpus_measured"] == 4 and use["mean_util_pct"] == 13.86
    assert use["idle_gpu_hours"] == pytest.approx(990.0 / 3600.0, abs=1e-4)
    assert use["hint"].startswith("this job used 14% of its 4 GPUs on average")
    busy = api_client.get(f"/api/v1/jobs/{world['busy']}", headers=bearer(token)).json()
    assert busy["gpu_use"]["measured"] and busy["gpu_use"]["hint"] is None
    running = api_client.get(f"/api/v1/jobs/{world['running']}", headers=bearer(token)).json()
    assert running["gpu_use"] == {
        "attempt": 1,
        "measured": False,
        "note": "measured when the run ends",
        "hint": None,
    }
    op = make_token(session, world["op"])
    session.commit()
    blind = api_client.get(f"/api/v1/jobs/{world['blind']}", headers=bearer(op)).json()
    assert blind["gpu_use"]["measured"] is False and blind["gpu_use"]["hint"] is None
    assert "NVML is not installed" in blind["gpu_use"]["note"]


@pytest.fixture
def cli_env(
    session: Session, world: dict[str, Any], api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    from rechenwerk.cli import client

    token = make_token(session, world["op"])
    session.commit()
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "200")
    yield CliRunner()
    client.use_transport(None)


def test_cli_job_show(cli_env: CliRunner, world: dict[str, Any]) -> None:
    r = cli_env.invoke(cli, ["job", "show", str(world["starved"])])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "14% mean utilisation over 4 GPUs" in text and "0.28 idle GPU-hours" in text
    assert "measured by NVML" in text
    assert "hint: this job used 14% of its 4 GPUs on average" in text
    r = cli_env.invoke(cli, ["job", "show", str(world["blind"])])
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "not measured: NVML is not installed" in text
    assert "hint:" not in text
    r = cli_env.invoke(cli, ["job", "show", str(world["busy"]), "--json"])
    assert json.loads(r.output)["gpu_use"]["mean_util_pct"] == 90.0


def test_portal_job_page(world: dict[str, Any], api_client: Any) -> None:
    _login(api_client, "bob")
    html = api_client.get(f"/jobs/{world['starved']}").text
    hint = re.search(r'data-testid="gpu-use-hint">(.*?)</div>', html, re.S)
    assert hint is not None and "this job used 14% of its 4 GPUs on average" in hint.group(1)
    cell = re.search(r'data-testid="gpu-use"[^>]*>(.*?)</td>', html, re.S)
    assert cell is not None and "14% mean utilisation over 4 GPUs" in cell.group(1)
    busy = api_client.get(f"/jobs/{world['busy']}").text
    assert 'data-testid="gpu-use-hint"' not in busy and "90% mean utilisation" in busy
    running = api_client.get(f"/jobs/{world['running']}").text
    assert "not measured: measured when the run ends" in running


def test_gpu_use_report_api(session: Session, world: dict[str, Any], api_client: Any) -> None:
    op = make_token(session, world["op"])
    bob = make_token(session, world["bob"])
    session.commit()
    r = api_client.get("/api/v1/reports/gpu-use", params=RANGE, headers=bearer(op))
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    alpha = rows["alpha"]
    # starved 4 GPU-h (990 GPU-s idle) + busy 2 GPU-h; beta's run was not measured
    assert alpha["gpu_hours"] == pytest.approx(6.0)
    assert alpha["idle_gpu_hours"] == pytest.approx(990.0 / 3600.0)
    # weighted by measured GPU time: 13.86 % x 4 x 360 s and 90 % x 2 x 3600 s
    assert alpha["mean_util_pct"] == pytest.approx(
        (13.86 * 4 * 360 + 90.0 * 2 * 3600) / (4 * 360 + 2 * 3600)
    )
    assert alpha["idle_share"] == pytest.approx(990.0 / (4 * 360 + 2 * 3600), abs=1e-6)
    assert (alpha["runs"], alpha["runs_not_measured"]) == (2, 0)
    assert rows["beta"]["runs_not_measured"] == 1 and rows["beta"]["mean_util_pct"] is None
    by_user = api_client.get(
        "/api/v1/reports/gpu-use", params={**RANGE, "by": "user"}, headers=bearer(op)
    ).json()
    users = {row["key"]: row for row in by_user["rows"]}
    assert users["bob"]["idle_gpu_hours"] == pytest.approx(0.275)
    assert users["pia"]["idle_gpu_hours"] == 0.0 and users["op"]["runs_not_measured"] == 1
    # a member sees their projects only; a bad grouping names the field
    mine = api_client.get("/api/v1/reports/gpu-use", params=RANGE, headers=bearer(bob))
    assert [row["key"] for row in mine.json()["rows"]] == ["alpha"]
    bad = api_client.get(
        "/api/v1/reports/gpu-use", params={**RANGE, "by": "colour"}, headers=bearer(bob)
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "by"


def test_gpu_use_report_cli(cli_env: CliRunner) -> None:
    args = ["--from", "2026-01-01", "--to", "2026-03-01"]
    r = cli_env.invoke(cli, ["report", "gpu-use", "--by", "user", "--json", *args])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["rows"][0]["key"] == "bob"  # the most idle GPU-hours first
    assert data["totals"]["idle_gpu_hours"] == pytest.approx(0.275)
    r = cli_env.invoke(cli, ["report", "gpu-use", "--csv", *args])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == (
        "Project,Title,Idle GPU-hours,Idle share of measured GPU time,"
        "Mean GPU utilisation (%),Measured GPU-hours,GPU-hours,Runs,"
        "Runs not measured"
    )
    assert lines[1].startswith("alpha,Project alpha,0.275,")
    r = cli_env.invoke(cli, ["report", "gpu-use", *args])
    assert r.exit_code == 0 and "Idle GPU-hours by project" in r.output
    r = cli_env.invoke(cli, ["report", "gpu-use", "--by", "org", *args])
    assert r.exit_code != 0 and "--by 'org' is not valid for the gpu-use report" in r.output

"""`rechenwerk trace import --from-db` on SQLite and PostgreSQL: jobs of two projects
(one array with a %N limit, a dependency chain, a multi-node job, a job that never
started, one still running, one outside --since) become a native trace that reads back
and replays with `rechenwerk simulate`; --anonymise leaves no slug and no job id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import make_org, make_project, make_user
from rechenwerk.cli.main import app
from rechenwerk.config import get_settings
from rechenwerk.jobs.models import Job, JobArray, JobDependency
from rechenwerk.simulation.traces import read_trace

T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


def _job(session: Session, project: Any, *, submit_s: float, start_s: float | None,
         run_s: float | None, gpus: int = 1, gpn: int | None = None, state: str = "completed",
         qos: str = "normal", array: tuple[int, int] | None = None) -> Job:
    start = None if start_s is None else T0 + timedelta(seconds=start_s)
    end = None if start is None or run_s is None else start + timedelta(seconds=run_s)
    job = Job(project_id=project.id, user_id=project.pi_user_id, name="j", spec={},
              state=state, qos=qos, requested_qos=qos, over_budget=False, gpus=gpus,
              gpus_per_node=gpn, nodes=None if gpn is None else gpus // gpn,
              gpu_type="a100", walltime_s=3600, attempt=1 if start else 0,
              attained_gpu_s=0.0, submitted_at=T0 + timedelta(seconds=submit_s),
              started_at=start, ended_at=end, updated_at=T0,
              array_job_id=array[0] if array else None,
              array_task_id=array[1] if array else None)
    session.add(job)
    session.flush()
    return job


@pytest.fixture
def history(session: Session) -> dict[str, Any]:
    sme = make_user(session, org=make_org(session, kind="sme"))
    alpha = make_project(session, pi=sme, slug="alpha-secret")
    beta = make_project(session, slug="beta-secret")
    old = _job(session, alpha, submit_s=-86400, start_s=-86000, run_s=100)
    first = _job(session, alpha, submit_s=0, start_s=10, run_s=600, gpus=2)
    after = _job(session, alpha, submit_s=5, start_s=610, run_s=60, qos="high")
    session.add(JobDependency(job_id=after.id, kind="after_ok", depends_on_id=first.id))
    big = _job(session, beta, submit_s=20, start_s=700, run_s=300, gpus=8, gpn=4)
    session.add(JobDependency(job_id=big.id, kind="after_any", depends_on_id=old.id))
    task0 = _job(session, beta, submit_s=30, start_s=40, run_s=50, array=(0, 0))
    task0.array_job_id = task0.id
    session.add(JobArray(id=task0.id, expression="0-1%1", task_count=2, task_limit=1))
    _job(session, beta, submit_s=30, start_s=90, run_s=50, array=(task0.id, 1))
    _job(session, beta, submit_s=40, start_s=None, run_s=None, state="cancelled")
    _job(session, alpha, submit_s=50, start_s=1000, run_s=None, state="running")
    from rechenwerk.access.models import User

    users = {p.slug: session.get(User, p.pi_user_id).username  # type: ignore[union-attr]
             for p in (alpha, beta)}
    session.commit()
    return {"first": first.id, "after": after.id, "big": big.id, "array": task0.id,
            "old": old.id, "users": users}


def _rw(db_url: str, *args: str) -> Any:
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env={"RECHENWERK_DATABASE_URL": db_url})
    finally:
        get_settings.cache_clear()


def test_import_from_db_reads_back_and_simulates(db_url: str, history: dict[str, Any],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "db.csv"
    r = _rw(db_url, "trace", "import", "--from-db", "--out", str(out),
            "--since", "2026-10-01", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["jobs"] == 5
    assert result["dropped_dependencies"] == 1  # big's on the old job, before --since
    assert result["left_out"] == {"never started": 1,
                                  "still running (or waiting to be requeued)": 1}
    jobs = {j.job_id: j for j in read_trace(out).jobs}
    first, after, array = (str(history[k]) for k in ("first", "after", "array"))
    assert sorted(jobs) == sorted([first, after, str(history["big"]),
                                   f"{array}_0", f"{array}_1"])
    assert jobs[first].submit_time == 0 and jobs[first].duration_s == 600
    assert jobs[first].project == "alpha-secret" and jobs[first].walltime_s == 3600
    assert {j.project: j.user for j in jobs.values()} == history["users"]  # who submitted
    assert jobs[first].kind == "sme" and jobs[str(history["big"])].kind == "university"
    assert jobs[after].depends_on == (("after_ok", first),) and jobs[after].qos == "high"
    big = jobs[str(history["big"])]
    assert (big.gpus, big.gpus_per_node, big.gpu_type, big.submit_time) == (8, 4, "a100", 20)
    assert jobs[f"{array}_1"].array_id == array and jobs[f"{array}_1"].array_limit == 1
    sim = tmp_path / "sim.json"
    r = _rw(db_url, "simulate", "--trace", str(out), "--cluster", "2x4:a100",
            "--policy", "fifo", "--json", str(sim))
    assert r.exit_code == 0, r.output
    fifo = json.loads(sim.read_text())["policies"]["fifo"]
    assert fifo["jobs"] == 5
    # waits per organisation kind from the trace's kind column: alpha (sme) 2 jobs, beta
    # (university) 3
    assert {k: v["jobs"] for k, v in fifo["per_kind"].items()} == {"sme": 2,
                                                                    "university": 3}
    assert "Waits by organisation kind" in r.output
    r = _rw(db_url, "trace", "import", "--from-db", "--out", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["jobs"] == 6  # no --since: the old job
    assert read_trace(out).jobs[3].depends_on == (("after_any", str(history["old"])),)


def test_anonymised_db_trace_names_no_project_and_no_job(db_url: str,
                                                         history: dict[str, Any],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "anon.csv"
    r = _rw(db_url, "trace", "import", "--from-db", "--out", str(out), "--anonymise",
            "--salt", "pepper")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "secret" not in text and "2026" not in text
    trace = read_trace(out)
    originals = {str(v) for k, v in history.items() if k != "users"}
    for username in history["users"].values():
        assert username not in text
    assert len({j.user for j in trace.jobs}) == 2
    assert all(j.user and j.user.startswith("u") for j in trace.jobs)
    # organisation kinds are no names: they stay readable (the per-kind waits need them)
    assert {j.kind for j in trace.jobs} == {"sme", "university"}
    assert not {j.job_id.split("_")[0] for j in trace.jobs} & originals
    assert len({j.project for j in trace.jobs}) == 2
    dependent = [j for j in trace.jobs if j.depends_on]
    assert len(dependent) == 2  # the dependencies survive, on the hashed ids
    assert {d.depends_on[0][1] for d in dependent} <= {j.job_id for j in trace.jobs}


def test_empty_range_is_a_clear_error(db_url: str, history: dict[str, Any],
                                      tmp_path: Path) -> None:
    r = _rw(db_url, "trace", "import", "--from-db", "--out", str(tmp_path / "x.csv"),
            "--since", "2030-01-01")
    assert r.exit_code == 2 and "no job to import" in r.output
    assert not (tmp_path / "x.csv").exists()


def test_unmigrated_database_is_a_clear_error(tmp_path: Path) -> None:
    r = _rw(f"sqlite:///{tmp_path / 'empty.db'}", "trace", "import", "--from-db",
            "--out", str(tmp_path / "x.csv"))
    assert r.exit_code != 0 and "rechenwerk admin db upgrade" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.csv").exists()


def test_progress_counts_the_rows_of_the_range(session: Session,
                                               history: dict[str, Any]) -> None:
    from rechenwerk.jobs.trace_import import count_jobs, history_from_db
    from rechenwerk.simulation.traces.history import ImportSummary

    since = datetime(2026, 10, 1, tzinfo=UTC)
    total = count_jobs(session, since, None)
    assert total == 7  # every job of the fixture but the old one, started or not
    seen: list[int] = []
    jobs = history_from_db(session, ImportSummary(), since=since, progress=seen.append)
    assert seen == [total] and len(jobs) == 5  # one batch of 1,000 holds them all

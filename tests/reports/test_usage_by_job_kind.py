"""The usage report split into batch jobs and interactive sessions (issue 20): a
session's run is charged like any job and counted under its kind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from report_data import JAN, Centre, add_job, add_usage
from sqlalchemy.orm import Session

from rechenwerk.reports.service import usage_report
from rechenwerk.reports.tables import Scope


def test_usage_by_job_kind_counts_sessions_apart(session: Session, centre: Centre) -> None:
    notebook = add_job(session, centre.alpha, centre.pi_alpha, submitted=JAN + timedelta(days=6),
                       wait_h=0.5)
    notebook.kind = "jupyterlab"
    batch = add_job(session, centre.alpha, centre.pi_alpha, submitted=JAN + timedelta(days=6),
                    wait_h=0.5)
    session.flush()
    add_usage(session, centre.alpha, start=JAN + timedelta(days=7), hours=3.0,
              gpus=1).job_id = notebook.id
    add_usage(session, centre.alpha, start=JAN + timedelta(days=8), hours=1.5,
              gpus=1).job_id = batch.id
    session.commit()
    table = usage_report(session, scope=Scope(None), by="job-kind", start=JAN,
                         end=JAN + timedelta(days=59))
    rows = {r["key"]: r for r in table.rows}
    # the centre's other 35 GPU-hours have no job of ours (imported runs): batch work
    assert rows["batch"]["gpu_hours"] == pytest.approx(35.0 + 1.5)
    assert rows["jupyterlab"]["gpu_hours"] == pytest.approx(3.0)
    assert rows["jupyterlab"]["label"] == "interactive sessions (JupyterLab)"
    assert rows["jupyterlab"]["jobs"] == 1
    assert table.totals["gpu_hours"] == pytest.approx(39.5)
    # a PI of beta sees only beta's records
    scoped = usage_report(session, scope=Scope((centre.beta.id,)), by="job-kind",
                          start=JAN, end=JAN + timedelta(days=59))
    assert {r["key"]: r["gpu_hours"] for r in scoped.rows} == {"batch": pytest.approx(5.0)}

"""The usage report by cluster (several clusters: docs/slurm.md): each run under the
cluster it ran on; runs from before clusters were declared under the one cluster."""

from __future__ import annotations

from datetime import timedelta

import pytest
from report_data import JAN, Centre, add_usage
from sqlalchemy.orm import Session

from rechenwerk.reports.service import NO_CLUSTER, usage_report
from rechenwerk.reports.tables import Scope


def test_usage_by_cluster(session: Session, centre: Centre) -> None:
    add_usage(session, centre.alpha, start=JAN + timedelta(days=7), hours=3.0,
              gpus=1).cluster = "old"
    add_usage(session, centre.alpha, start=JAN + timedelta(days=8), hours=1.5,
              gpus=1).cluster = "new"
    session.commit()
    table = usage_report(session, scope=Scope(None), by="cluster", start=JAN,
                         end=JAN + timedelta(days=59))
    rows = {r["key"]: r["gpu_hours"] for r in table.rows}
    assert rows == {NO_CLUSTER: pytest.approx(35.0), "old": pytest.approx(3.0),
                    "new": pytest.approx(1.5)}
    assert [c.key for c in table.columns][:2] == ["key", "gpu_hours"]
    scoped = usage_report(session, scope=Scope((centre.beta.id,)), by="cluster",
                          start=JAN, end=JAN + timedelta(days=59))
    assert {r["key"] for r in scoped.rows} == {NO_CLUSTER}

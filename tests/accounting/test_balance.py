"""Balance per award period (carry-over, expiry, several awards) and idempotent settling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project, make_user
from rechenwerk.accounting.balance import balances_at, project_balance
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.errors import InvalidInput


def test_carry_over_into_the_next_period_is_capped(session: Session) -> None:
    project = make_project(session)
    award = make_award(session, project, gpu_hours=400, periods=2, period_months=3,
                       carry_over_limit_gpu_hours=50)
    first, second = award.periods
    settle_usage(session, project_id=project.id, gpus=4, started_at=T0,
                 ended_at=T0 + timedelta(hours=25), now=T0, external_id="slurm-1",
                 source="slurm")  # 100 GPU-hours in the first period: 100 unused
    during = project_balance(session, project, T0 + timedelta(days=30))
    assert [p.award_period_id for p in during.periods] == [first.id]
    assert during.settled_gpu_hours == pytest.approx(100)
    assert during.available_gpu_hours == pytest.approx(100)
    later = project_balance(session, project, second.starts_at + timedelta(days=1))
    assert [p.award_period_id for p in later.periods] == [second.id]
    assert later.awarded_gpu_hours == pytest.approx(200 + 50)  # capped carry-over
    assert later.settled_gpu_hours == 0
    assert not later.expired_award


def test_balances_at_equals_each_project_balance(session: Session) -> None:
    """All projects' balances in one query (the metrics' award gauges) equal each
    project's own, carry-over included; projects without an active period are left out."""
    carrying, plain, expired = make_project(session), make_project(session), make_project(session)
    make_award(session, carrying, gpu_hours=400, periods=2, carry_over_limit_gpu_hours=50)
    make_award(session, plain, gpu_hours=80)
    make_award(session, plain, gpu_hours=20, gpu_type="H100-80GB")
    make_award(session, expired, gpu_hours=10, starts_at=T0 - timedelta(days=400))
    settle_usage(session, project_id=carrying.id, gpus=4, started_at=T0,
                 ended_at=T0 + timedelta(hours=25), now=T0, external_id="slurm-1",
                 source="slurm")
    # in the first period, and in the carrying award's second (plain's has ended)
    for at, active in ((T0 + timedelta(days=30), (carrying, plain)),
                       (T0 + timedelta(days=100), (carrying,))):
        every = {b.project_id: b for b in balances_at(session, at)}
        assert set(every) == {p.id for p in active}
        for project in active:
            assert every[project.id] == project_balance(session, project, at)
    assert every[carrying.id].awarded_gpu_hours == pytest.approx(200 + 50)


def test_no_carry_over_without_limit(session: Session) -> None:
    project = make_project(session)
    award = make_award(session, project, gpu_hours=400, periods=2)
    bal = project_balance(session, project, award.periods[1].starts_at + timedelta(hours=1))
    assert bal.awarded_gpu_hours == pytest.approx(200)


def test_expired_award(session: Session) -> None:
    project = make_project(session)
    make_award(session, project, gpu_hours=100)
    bal = project_balance(session, project, T0 + timedelta(days=400))
    assert bal.periods == () and bal.expired_award and bal.available_gpu_hours == 0
    other = make_project(session)
    assert not project_balance(session, other, T0).expired_award


def test_best_period_prefers_matching_type_and_earliest_end(session: Session) -> None:
    project = make_project(session)
    a = make_award(session, project, gpu_hours=10, gpu_type="A100-80GB", period_months=6)
    h = make_award(session, project, gpu_hours=10, gpu_type="H100", period_months=3)
    bal = project_balance(session, project, T0 + timedelta(days=1))
    assert bal.awarded_gpu_hours == pytest.approx(20)
    best = bal.best_period()
    assert best is not None and best.award_id == h.id  # ends first
    best_a = bal.best_period("a100-80gb")
    assert best_a is not None and best_a.award_id == a.id
    assert bal.best_period("MI300X") is None
    d = bal.to_dict()
    assert d["available_gpu_hours"] == 20 and len(d["periods"]) == 2


def test_settle_is_idempotent_by_external_id(session: Session) -> None:
    make_user(session)
    project = make_project(session)
    make_award(session, project)
    kw = {"project_id": project.id, "gpus": 2, "started_at": T0,
          "ended_at": T0 + timedelta(minutes=90), "now": T0, "source": "slurm"}
    first = settle_usage(session, external_id="slurm-42", **kw)  # type: ignore[arg-type]
    again = settle_usage(session, external_id="slurm-42", **kw)  # type: ignore[arg-type]
    assert first.id == again.id and first.gpu_hours == pytest.approx(3.0)
    assert session.scalar(select(func.count(UsageRecord.id))) == 1
    assert first.award_period_id is not None
    with pytest.raises(InvalidInput, match="exactly one"):
        settle_usage(session, **kw)  # type: ignore[arg-type]


def test_energy_and_co2_estimated_from_gpu_type(session: Session) -> None:
    project = make_project(session)
    make_award(session, project)
    rec = settle_usage(session, project_id=project.id, gpus=8, started_at=T0,
                       ended_at=T0 + timedelta(hours=2), now=T0, external_id="e1",
                       gpu_type="A100-80GB")
    assert rec.gpu_hours == pytest.approx(16)
    assert rec.energy_kwh is not None and 16 * 0.2 < rec.energy_kwh < 16 * 1.0
    assert rec.co2_kg is not None and rec.co2_kg > 0
    unknown = settle_usage(session, project_id=project.id, gpus=1, started_at=T0,
                           ended_at=T0 + timedelta(hours=1), now=T0, external_id="e2",
                           gpu_type="Imaginary-GPU")
    assert unknown.energy_kwh is None and unknown.co2_kg is None

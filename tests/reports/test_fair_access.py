"""Fair access, measured (``reports/fair_access.py``): per award period with demand the
share of its awarded GPU-hours received, and per organisation kind with the p50 / p90
waits, on a hand-built centre whose every figure is worked out below; through the funder
report, its API, the CLI's --json and the portal page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from report_data import add_usage
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import bearer, make_org, make_project, make_token, make_user
from rechenwerk.access.models import Award, AwardPeriod, Project, User
from rechenwerk.cli.main import app as cli
from rechenwerk.jobs.models import Job
from rechenwerk.reports import fair_access, funder

Q1 = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def d(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _period(session: Session, project: Project, hours: float, start: datetime,
            end: datetime) -> AwardPeriod:
    award = Award(project_id=project.id, gpu_type="A100-80GB", gpu_hours=hours,
                  starts_at=start, expires_at=end, carry_over_limit_gpu_hours=0.0,
                  created_at=start)
    award.periods = [AwardPeriod(starts_at=start, ends_at=end, gpu_hours=hours)]
    session.add(award)
    session.flush()
    return award.periods[0]


def _job(session: Session, project: Project, user: User, submitted: datetime, *,
         started: datetime | None = None, ended: datetime | None = None) -> None:
    session.add(Job(project_id=project.id, user_id=user.id, name="j", spec={},
                    state="completed" if started else ("cancelled" if ended else "pending"),
                    qos="normal", requested_qos="normal", over_budget=False, gpus=1,
                    walltime_s=7200, attempt=1 if started else 0, attained_gpu_s=0.0,
                    submitted_at=submitted, started_at=started, ended_at=ended,
                    updated_at=submitted))


def build(session: Session) -> int:
    """The centre; returns the operator's id. Q1 2026 is the range."""
    uni = make_org(session, name="Uni", kind="university", country="DE")
    sme = make_org(session, name="SME", kind="sme", country="FR")
    startup = make_org(session, name="Startup", kind="startup", country="NL")
    u = make_user(session, username="pu", org=uni)
    s = make_user(session, username="ps", org=sme)
    t = make_user(session, username="pt", org=startup)
    from portal_login import password_hash

    op = make_user(session, username="op", org=uni, operator=True,
                   password_hash=password_hash())
    a = make_project(session, pi=u, slug="a")
    b = make_project(session, pi=s, slug="b")
    c = make_project(session, pi=t, slug="c")
    dd = make_project(session, pi=u, slug="d")
    e = make_project(session, pi=s, slug="e")
    pa = _period(session, a, 100.0, d(1, 1), d(2, 1))
    pa2 = _period(session, a, 100.0, d(2, 1), d(3, 1))
    pb = _period(session, b, 200.0, d(1, 1), d(4, 1))
    _period(session, b, 999.0, d(4, 1), d(5, 1))  # after the range
    pc = _period(session, c, 400.0, d(1, 1), d(4, 1))
    pd = _period(session, dd, 50.0, d(1, 1), d(4, 1))
    pe = _period(session, e, 100.0, d(3, 1), d(5, 1))  # open: ends after the range
    # a: waiting at Jan 1 (started Jan 3, 336 h wait), submitted in January (24 h wait),
    # cancelled in January before starting: 3 jobs of demand for pa, none for pa2 (the
    # first two started before Feb 1, the third ended before it)
    _job(session, a, u, d(12, 20, 2025), started=d(1, 3))
    _job(session, a, u, d(1, 30), started=d(1, 31))
    _job(session, a, u, d(1, 20), ended=d(1, 25))
    # b: one job in its period (2 h wait), one after the range
    _job(session, b, s, d(2, 15), started=d(2, 15) + timedelta(hours=2))
    _job(session, b, s, d(4, 5))
    # c: submitted in December, cancelled Jan 5 without starting (waiting at Jan 1);
    # pending since Mar 31; one with a 10 h wait: 3 jobs
    _job(session, c, t, d(12, 1, 2025), ended=d(1, 5))
    _job(session, c, t, d(3, 31))
    _job(session, c, t, d(1, 10), started=d(1, 10) + timedelta(hours=10))
    # d: only after its period: no demand. e: one job, 4 h wait
    _job(session, dd, u, d(4, 2))
    _job(session, e, s, d(3, 10), started=d(3, 10) + timedelta(hours=4))
    # received: a 80 (+10 in pa2, no demand), b 50, c 300, d 5, e 120 (over its award)
    for proj, period, hours, when in ((a, pa, 60.0, d(1, 5)), (a, pa, 20.0, d(1, 20)),
                                      (a, pa2, 10.0, d(2, 5)), (b, pb, 50.0, d(2, 20)),
                                      (c, pc, 300.0, d(2, 1)), (dd, pd, 5.0, d(1, 2)),
                                      (e, pe, 120.0, d(3, 20))):
        add_usage(session, proj, start=when, hours=hours, gpus=1, period_id=period.id)
    session.commit()
    return op.id


PERIODS = [  # project, kind, from, to, open, demand jobs, awarded, received, share
    ("a", "university", "2026-01-01", "2026-02-01", "no", 3, 100.0, 80.0, 0.8),
    ("b", "sme", "2026-01-01", "2026-04-01", "no", 1, 200.0, 50.0, 0.25),
    ("c", "startup", "2026-01-01", "2026-04-01", "no", 3, 400.0, 300.0, 0.75),
    ("e", "sme", "2026-03-01", "2026-05-01", "yes", 1, 100.0, 120.0, 1.2),
]
# kind, projects, periods, awarded, received, share, median share, lowest, jobs, p50, p90
KINDS = [
    ("sme", 2, 2, 300.0, 170.0, 170 / 300, 0.725, 0.25, 2, 3.0, 3.8),
    ("startup", 1, 1, 400.0, 300.0, 0.75, 0.75, 0.75, 1, 10.0, 10.0),
    # waits 24 h and 336 h: p50 180, p90 24 + 0.9 x 312
    ("university", 1, 1, 100.0, 80.0, 0.8, 0.8, 0.8, 2, 180.0, 304.8),
]


def _period_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["project"], r["kind"], r["from"], r["to"], r["open"], r["demand_jobs"],
             r["awarded_gpu_hours"], r["received_gpu_hours"], r["received_share"])
            for r in rows]


def _kind_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["kind"], r["projects"], r["periods"], r["awarded_gpu_hours"],
             r["received_gpu_hours"], r["received_share"], r["median_share"],
             r["lowest_share"], r["jobs_started"], r["p50_wait_h"], r["p90_wait_h"])
            for r in rows]


def _approx(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(pytest.approx(v) if isinstance(v, float) else v for v in r) for r in rows]


def test_share_received_per_period_with_demand(session: Session) -> None:
    build(session)
    t = fair_access.fair_access_periods(session, *Q1)
    assert _period_rows(t.rows) == _approx(PERIODS)
    # without demand: a's February period (100) and d's (50)
    assert t.totals == {"periods_with_demand": 4, "periods_without_demand": 2,
                        "awarded_gpu_hours_without_demand": pytest.approx(150.0),
                        "awarded_gpu_hours": pytest.approx(800.0),
                        "received_gpu_hours": pytest.approx(550.0),
                        "received_share": pytest.approx(550 / 800),
                        "median_share": pytest.approx((0.75 + 0.8) / 2),
                        "lowest_share": pytest.approx(0.25)}
    assert t.to_csv().splitlines()[1] == (
        "a,university,2026-01-01,2026-02-01,no,3,100.000,80.000,0.800")


def test_by_kind_with_waits_in_the_funder_report(session: Session) -> None:
    build(session)
    rep = funder.funder_report(session, start=Q1[0], end=Q1[1])
    t = rep.section("fair-access-kind")
    assert _kind_rows(t.rows) == _approx(KINDS)
    # every started job: 2, 4, 10, 24, 336 h
    assert t.totals["jobs_started"] == 5
    assert t.totals["p50_wait_h"] == pytest.approx(10.0)
    assert t.totals["p90_wait_h"] == pytest.approx(24 + 0.6 * 312)
    assert t.totals["received_share"] == pytest.approx(550 / 800)
    waits = {r["kind"]: r for r in rep.section("waits").rows}
    assert waits["university"]["p90_wait_h"] == pytest.approx(304.8)


def test_an_empty_range_has_no_rows(session: Session) -> None:
    build(session)
    rep = funder.funder_report(session, start=d(7, 1), end=d(8, 1))
    assert rep.section("fair-access").rows == []
    assert rep.section("fair-access").totals["received_share"] is None
    assert rep.section("fair-access-kind").rows == []


def test_api_cli_and_portal(session: Session, api_client: Any,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from portal_login import login
    from rechenwerk.cli import client

    op = make_token(session, session.get_one(User, build(session)))
    session.commit()
    params = {"from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
    r = api_client.get("/api/v1/reports/funder", params={**params, "section": "fair-access"},
                       headers=bearer(op))
    assert r.status_code == 200, r.text
    assert _period_rows(r.json()["rows"]) == _approx(PERIODS)
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", op)
    try:
        res = CliRunner().invoke(cli, ["report", "funder", "--from", "2026-01-01", "--to",
                                       "2026-04-01", "--section", "fair-access-kind",
                                       "--json"])
    finally:
        client.use_transport(None)
    assert res.exit_code == 0, res.output
    assert _kind_rows(json.loads(res.output)["rows"]) == _approx(KINDS)
    login(api_client, "op")
    html = api_client.get("/reports/funder?from=2026-01-01&to=2026-03-31").text
    assert 'data-testid="funder-table-fair-access"' in html
    assert ("4 periods with demand received 68.8 % of their awarded GPU-hours (lowest "
            "25.0 %); 2 without demand") in html
    assert "university: 80.0 % received, p90 wait 304.8 h" in html

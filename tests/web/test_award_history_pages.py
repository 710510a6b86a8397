"""The whole balance: every award and period of a project (ended, active, upcoming) with
carry-over and use, on the project page with a chart across periods, and awards that
start later on the dashboard (they used not to appear at all)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_award, make_org, make_project, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.access.models import Project
from rechenwerk.accounting.award_history import award_history
from rechenwerk.accounting.models import UsageRecord


def _use(session: Session, project: Project, period_id: int, hours: float) -> None:
    session.add(UsageRecord(project_id=project.id, award_period_id=period_id, gpus=1,
                            started_at=T0, ended_at=T0, gpu_hours=hours, source="local",
                            created_at=T0))


@pytest.fixture
def project(session: Session) -> Project:
    pi = make_user(session, username="pia", org=make_org(session), password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    # started 4 months before T0: period 1 ended, period 2 active, periods 3-4 upcoming
    running = make_award(session, project, gpu_hours=4000.0, periods=4,
                         starts_at=T0 - timedelta(days=120),
                         carry_over_limit_gpu_hours=300.0)
    make_award(session, project, gpu_hours=500.0, starts_at=T0 + timedelta(days=200))
    _use(session, project, running.periods[0].id, 600.0)  # 400 unused, 300 carried
    _use(session, project, running.periods[1].id, 50.0)
    session.commit()
    return project


def test_history_lists_every_period_with_carry_over_and_use(session: Session,
                                                            project: Project) -> None:
    h = award_history(session, project, T0)
    first, later = h.awards
    assert [p.status for p in first.periods] == ["ended", "active", "upcoming", "upcoming"]
    ended, active = first.periods[0], first.periods[1]
    assert (ended.available_gpu_hours, ended.used_gpu_hours) == (1000.0, 600.0)
    assert ended.unused_gpu_hours == pytest.approx(400.0)
    assert active.available_gpu_hours == pytest.approx(1300.0)  # 1000 + 300 carried
    assert active.used_gpu_hours == 50.0 and active.unused_gpu_hours is None
    assert first.status == "active" and later.status == "upcoming"
    assert h.awarded_gpu_hours == pytest.approx(4500.0)
    assert h.used_gpu_hours == pytest.approx(650.0)
    assert h.upcoming_gpu_hours == pytest.approx(2500.0)  # 2 periods + the later award
    assert [a.award_id for a in h.upcoming] == [later.award_id]


def test_project_page_shows_all_awards_and_the_chart(api_client: Any,
                                                     project: Project) -> None:
    client = _login(api_client, "pia")
    html = client.get("/projects/alpha").text
    assert "4,500 GPU-hours</strong> awarded in 2 award(s)" in html
    assert html.count('data-status="upcoming"') == 3
    assert html.count('data-status="ended"') == 1
    award_id = int(re.findall(r'data-testid="award-(\d+)"', html)[0])
    assert f'data-testid="chart-award-{award_id}"' in html
    csv = client.get(f"/projects/alpha/awards/{award_id}.csv")
    assert csv.status_code == 200 and "awarded so far" in csv.text and "used" in csv.text
    assert client.get("/projects/alpha/awards/99999.csv").status_code == 404


def test_dashboard_announces_an_award_that_starts_later(api_client: Any,
                                                         project: Project) -> None:
    html = _login(api_client, "pia").get("/").text
    upcoming = re.search(r'data-testid="upcoming-alpha">(.*?)</p>', html, re.S)
    assert upcoming and "500 GPU-hours" in upcoming.group(1)

"""The funder report's decision times per call type against their deadlines, on a
hand-built set of proposals whose working days (weekends and two holidays skipped) are
counted by hand below; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from factories import T0, make_call, make_org, make_project, make_user
from rechenwerk.access.models import CallType, Project, Proposal, User
from rechenwerk.access.workdays import add_working_days
from rechenwerk.reports import funder

# 2026: Jan 1 is a Thursday (and a holiday), Jan 6 (Tuesday) a holiday; Jan 3/4 and
# 10/11 are weekends.
HOLIDAYS = frozenset({date(2026, 1, 1), date(2026, 1, 6)})
Q1 = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def at(month: int, day: int, hour: int = 10, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def _type(session: Session, key: str, days: int, mode: str) -> CallType:
    row = CallType(key=key, title=key.title(), description="", min_gpu_hours=None,
                   max_gpu_hours=None, duration_months=[], eligible_kinds=["university"],
                   countries="any", review_steps=["decision"], decision_working_days=days,
                   submission_mode=mode, cutoff_period="monthly" if mode == "cutoffs"
                   else None, created_at=T0)
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def centre(session: Session) -> None:
    org = make_org(session, name="Uni", kind="university", country="DE")
    pi = make_user(session, username="pi", org=org)
    project = make_project(session, pi=pi, slug="alpha")
    quick = make_call(session, slug="quick-1", access_mode="fast_lane",
                      call_type=_type(session, "quick", 4, "rolling"))
    large = make_call(session, slug="large-1", access_mode="research",
                      call_type=_type(session, "large", 10, "cutoffs"))

    def prop(call_id: int, submitted: datetime, decided: datetime | None,
             due: date | None, state: str = "accepted") -> None:
        _proposal(session, call_id, project, pi, submitted, decided, due, state)

    # quick (4 working days, rolling): due = 4 working days after submission
    # A: Fri Jan 2 -> Wed Jan 7: Mon 5, Wed 7 = 2 days (Tue 6 a holiday); due Fri Jan 9
    prop(quick.id, at(1, 2), at(1, 7, 9), date(2026, 1, 9))
    # B: Fri Jan 2 -> Mon Jan 12: 5, 7, 8, 9, 12 = 5 days; due Jan 9: late
    prop(quick.id, at(1, 2), at(1, 12), date(2026, 1, 9), "rejected")
    # C: Mon Jan 5 -> Mon Jan 12 17:00: 7, 8, 9, 12 = 4 days; due Jan 12: on time (the day)
    prop(quick.id, at(1, 5), at(1, 12, 17), date(2026, 1, 12))
    # large (10 working days after the monthly cut-off)
    # D: Thu Jan 1 -> Fri Jan 16: 2, 5, 7, 8, 9, 12, 13, 14, 15, 16 = 10; due Jan 15: late
    prop(large.id, at(1, 1), at(1, 16), date(2026, 1, 15))
    # E: submitted before call types (no due date): Tue Dec 30 -> Fri Jan 2: Dec 31, Jan 2
    prop(large.id, at(12, 30, year=2025), at(1, 2), None)
    # not counted: decided before Q1, decided after it, not decided
    prop(large.id, at(12, 1, year=2025), at(12, 20, year=2025), date(2025, 12, 15))
    prop(quick.id, at(3, 30), at(4, 2), date(2026, 4, 3))
    prop(quick.id, at(3, 2), None, date(2026, 3, 6), "submitted")
    session.commit()


def _proposal(session: Session, call_id: int, project: Project, pi: User,
              submitted: datetime, decided: datetime | None, due: date | None,
              state: str) -> None:
    session.add(Proposal(call_id=call_id, project_id=project.id, applicant_user_id=pi.id,
                         title="p", abstract="", justification="", gpu_type="A100-80GB",
                         requested_gpu_hours=1.0, state=state, decision_comment="",
                         created_at=submitted, submitted_at=submitted, decided_at=decided,
                         due_on=due))


def test_the_hand_computed_due_dates_are_the_rule() -> None:
    assert add_working_days(date(2026, 1, 2), 4, HOLIDAYS) == date(2026, 1, 9)
    assert add_working_days(date(2026, 1, 5), 4, HOLIDAYS) == date(2026, 1, 12)


def test_decision_times_per_call_type(session: Session, centre: None) -> None:
    t = funder.deadline_times(session, *Q1, holidays=HOLIDAYS)
    assert t.grouping == "deadlines"
    assert t.rows == [
        {"key": "large", "title": "Large", "deadline_working_days": 10, "decided": 2,
         "median_working_days": pytest.approx(6.0),
         "p90_working_days": pytest.approx(2 + 0.9 * 8),  # of 2, 10
         "on_time": 0, "late": 1, "no_deadline": 1, "on_time_share": 0.0},
        {"key": "quick", "title": "Quick", "deadline_working_days": 4, "decided": 3,
         "median_working_days": pytest.approx(4.0),
         "p90_working_days": pytest.approx(4.8),  # of 2, 4, 5
         "on_time": 2, "late": 1, "no_deadline": 0, "on_time_share": pytest.approx(2 / 3)},
    ]
    assert t.totals == {"decided": 5, "median_working_days": pytest.approx(4.0),
                        "p90_working_days": pytest.approx(5 + 0.6 * 5),  # 2, 2, 4, 5, 10
                        "on_time": 2, "late": 2, "no_deadline": 1, "on_time_share": 0.5}
    assert t.to_csv().splitlines()[0] == (
        "Call type,Name,Deadline (work days),Decided,Median (work days),p90 (work days),"
        "On time,Late,No deadline recorded,Share on time")


def test_holidays_count_as_working_days_when_not_given(session: Session,
                                                        centre: None) -> None:
    rows = {r["key"]: r for r in funder.deadline_times(session, *Q1).rows}
    # without the calendar Jan 1 and Jan 6 are working days: A 3, B 6, C 5; D 11, E 3
    assert rows["quick"]["median_working_days"] == pytest.approx(5.0)
    assert rows["large"]["median_working_days"] == pytest.approx(7.0)
    # on time or late follows the stored due date, not a recount
    assert (rows["quick"]["on_time"], rows["quick"]["late"]) == (2, 1)


def test_the_section_is_in_the_report(session: Session, centre: None) -> None:
    rep = funder.funder_report(session, start=Q1[0], end=Q1[1], holidays=HOLIDAYS)
    assert rep.section("deadlines").totals["on_time_share"] == 0.5
    assert "deadlines" in rep.to_dict()["sections"]
    empty = funder.deadline_times(session, datetime(2020, 1, 1, tzinfo=UTC),
                                  datetime(2021, 1, 1, tzinfo=UTC))
    assert empty.rows == [] and empty.totals["on_time_share"] is None
    assert empty.totals["median_working_days"] is None

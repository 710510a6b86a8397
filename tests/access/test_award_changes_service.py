"""Award changes (issue 15 item 3): a PI asks, an operator decides with a note; an
approval rewrites the periods in place, makes a new version and the live balance follows;
every refusal leaves award, periods and balance as they were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0, make_org, make_project, make_user
from rechenwerk.access.award_changes import (
    award_versions,
    decide_change,
    list_changes,
    request_change,
    visible_change,
    withdraw_change,
)
from rechenwerk.access.awards import create_award
from rechenwerk.access.models import Award, AwardPeriod
from rechenwerk.accounting.balance import project_balance
from rechenwerk.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)

NOW = T0 + timedelta(days=10)  # inside the first of two quarterly periods


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    org = make_org(session, kind="sme")
    op = make_user(session, username="olga", operator=True)
    pi = make_user(session, username="pia", org=org)
    member = make_user(session, username="mo", org=org)
    outsider = make_user(session, username="out")
    project = make_project(session, pi=pi, slug="alpha", members={member: "member"})
    award = create_award(session, op, project=project, gpu_hours=5000, starts_at=T0,
                         gpu_type="A100-80GB", period_count=2, period_months=3, now=T0)
    return {"op": op, "pi": pi, "member": member, "outsider": outsider,
            "project": project, "award": award}


def _state(session: Session, award: Award) -> tuple[Any, ...]:
    session.flush()
    periods = session.execute(select(AwardPeriod.id, AwardPeriod.starts_at,
                                     AwardPeriod.ends_at, AwardPeriod.gpu_hours)
                              .where(AwardPeriod.award_id == award.id)
                              .order_by(AwardPeriod.starts_at)).all()
    return award.gpu_hours, award.expires_at, award.version, tuple(periods)


def test_a_supplement_asked_granted_in_part_and_the_balance_follows(
        session: Session, world: dict[str, Any]) -> None:
    op, pi, award = world["op"], world["pi"], world["award"]
    project = world["project"]
    assert project_balance(session, project, NOW).available_gpu_hours == 2500
    change = request_change(session, pi, award, kind="supplement", extra_gpu_hours=2000,
                            reason="The 13B run needs a second epoch.", now=NOW)
    assert change.state == "requested" and award.gpu_hours == 5000  # nothing changes yet
    decided = decide_change(session, op, change, decision="approved", gpu_hours=1000,
                            note="Granted half: the queue is full this quarter.", now=NOW)
    assert decided.state == "approved" and decided.granted_gpu_hours == 1000
    assert award.gpu_hours == 6000 and award.version == 2 and decided.version == 2
    assert [p.gpu_hours for p in award.periods] == [3000, 3000]
    assert project_balance(session, project, NOW).available_gpu_hours == 3000
    versions = award_versions(session, award)
    assert [(v.version, v.gpu_hours, v.change_id) for v in versions] == [
        (1, 5000, None), (2, 6000, change.id)]
    assert versions[0].periods[0][2] == 2500  # version 1 keeps what was awarded


def test_extension_and_early_end(session: Session, world: dict[str, Any]) -> None:
    op, pi, award = world["op"], world["pi"], world["award"]
    ext = request_change(session, pi, award, kind="extension",
                         until=datetime(2026, 9, 1, tzinfo=UTC), reason="Hardware delay.",
                         now=NOW)
    decide_change(session, op, ext, decision="approved", note="Agreed.", now=NOW)
    assert award.expires_at == datetime(2026, 9, 1, tzinfo=UTC) and award.gpu_hours == 5000
    second_period = award.periods[1].id
    end = request_change(session, pi, award, kind="early_end",
                         until=datetime(2026, 2, 1, tzinfo=UTC), reason="Done early.",
                         now=NOW)
    decide_change(session, op, end, decision="approved", note="Thanks.", now=NOW)
    session.flush()
    assert award.expires_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert [(p.ends_at, p.gpu_hours) for p in award.periods] == [
        (datetime(2026, 2, 1, tzinfo=UTC), 2500)]
    assert award.gpu_hours == 2500 and award.version == 3
    assert session.get(AwardPeriod, second_period) is None  # released, it had not started


def test_bad_requests_and_decisions_change_nothing(session: Session,
                                                   world: dict[str, Any]) -> None:
    op, pi, member, outsider, award = (world[k] for k in ("op", "pi", "member", "outsider",
                                                          "award"))
    before = _state(session, award)
    with pytest.raises(InvalidInput) as err:
        request_change(session, pi, award, kind="extension", reason=" ",
                       extra_gpu_hours=5, now=NOW)
    assert {i.path for i in err.value.issues} == {"reason", "gpu_hours", "until"}
    with pytest.raises(InvalidInput, match="must end after"):
        request_change(session, pi, award, kind="extension", reason="r",
                       until=datetime(2026, 5, 1, tzinfo=UTC), now=NOW)
    with pytest.raises(InvalidInput, match="past"):
        request_change(session, pi, award, kind="early_end", reason="r",
                       until=NOW - timedelta(days=1), now=NOW)
    with pytest.raises(InvalidInput, match="kind"):
        request_change(session, pi, award, kind="more", reason="r", now=NOW)
    with pytest.raises(PermissionDenied):
        request_change(session, member, award, kind="supplement", reason="r",
                       extra_gpu_hours=5, now=NOW)
    with pytest.raises(NotFound):
        request_change(session, outsider, award, kind="supplement", reason="r",
                       extra_gpu_hours=5, now=NOW)
    change = request_change(session, pi, award, kind="supplement", reason="r",
                            extra_gpu_hours=5, now=NOW)
    with pytest.raises(Conflict, match="already has an open supplement request"):
        request_change(session, pi, award, kind="supplement", reason="r",
                       extra_gpu_hours=9, now=NOW)
    with pytest.raises(PermissionDenied):
        decide_change(session, pi, change, decision="approved", note="n", now=NOW)
    with pytest.raises(InvalidInput) as err:
        decide_change(session, op, change, decision="approved", note="",
                      until=NOW + timedelta(days=400), now=NOW)
    assert {i.path for i in err.value.issues} == {"note", "until"}
    with pytest.raises(NotFound):
        visible_change(session, outsider, change.id)
    assert _state(session, award) == before and change.state == "requested"
    withdraw_change(session, pi, change, now=NOW)
    with pytest.raises(InvalidTransition, match="already withdrawn"):
        decide_change(session, op, change, decision="approved", note="n", now=NOW)
    assert _state(session, award) == before
    # an ended award is not changed
    with pytest.raises(Conflict, match="ended"):
        request_change(session, pi, award, kind="extension", reason="r",
                       until=datetime(2027, 1, 1, tzinfo=UTC),
                       now=datetime(2026, 8, 1, tzinfo=UTC))
    assert [c.state for c in list_changes(session, pi).items] == ["withdrawn"]
    assert list_changes(session, outsider).total == 0

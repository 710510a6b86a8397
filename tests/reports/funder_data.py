"""A small hand-built centre for the funder report tests, with every expected figure
worked out by hand in ``EXPECTED`` (the range is 2026-Q1: [Jan 1, Apr 1))."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from report_data import add_job, add_usage
from sqlalchemy.orm import Session

from factories import make_call, make_org, make_project, make_token, make_user
from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Project,
    ProjectMembership,
    Proposal,
    User,
)
from rechenwerk.reports.service import NO_AWARD, NO_CALL

Q1 = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def d(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _award(session: Session, project: Project, hours: float, start: datetime,
           end: datetime, proposal: Proposal | None = None) -> AwardPeriod:
    award = Award(project_id=project.id, proposal_id=proposal.id if proposal else None,
                  gpu_type="A100-80GB", gpu_hours=hours, starts_at=start, expires_at=end,
                  carry_over_limit_gpu_hours=0.0, created_at=start)
    award.periods = [AwardPeriod(starts_at=start, ends_at=end, gpu_hours=hours)]
    session.add(award)
    session.flush()
    return award.periods[0]


@dataclass
class FunderCentre:
    operator_id: int
    pi_id: int


def build(session: Session) -> FunderCentre:
    uni = make_org(session, name="Uni DE", kind="university", country="DE")
    sme = make_org(session, name="SME FR", kind="sme", country="FR")
    startup = make_org(session, name="Startup NL", kind="startup", country="NL")
    pia = make_user(session, username="pia", org=uni)
    pib = make_user(session, username="pib", org=sme)
    pig = make_user(session, username="pig", org=startup)
    sam = make_user(session, username="sam", org=startup)
    late = make_user(session, username="late", org=sme)
    pie = make_user(session, username="pie", org=uni)
    op = make_user(session, username="op", org=uni, operator=True)
    alpha = make_project(session, pi=pia, slug="alpha", members={sam: "member"})
    beta = make_project(session, pi=pib, slug="beta")
    gamma = make_project(session, pi=pig, slug="gamma")
    delta = make_project(session, pi=pia, slug="delta")
    make_project(session, pi=pie, slug="epsilon")  # nothing in Q1: not active
    alpha.field_of_science, beta.field_of_science = "1.2", "2.3"
    delta.field_of_science = "1.5"  # gamma: none
    session.add(ProjectMembership(project_id=beta.id, user_id=late.id, role="member",
                                  created_at=d(4, 5)))  # joined after Q1: still counted
    research = make_call(session, slug="research", access_mode="research")
    innovation = make_call(session, slug="innovation", access_mode="innovation")

    def proposal(call_id: int, project: Project, submitted: datetime,
                 decided: datetime | None, state: str) -> Proposal:
        p = Proposal(call_id=call_id, project_id=project.id, applicant_user_id=pia.id,
                     title="p", abstract="", justification="", gpu_type="A100-80GB",
                     requested_gpu_hours=1.0, state=state, decision_comment="",
                     created_at=submitted, submitted_at=submitted, decided_at=decided)
        session.add(p)
        session.flush()
        return p

    # decisions: research 10, 20, 61 days; innovation 5 days; two not counted
    p1 = proposal(research.id, alpha, d(1, 1), d(1, 11), "accepted")
    proposal(research.id, alpha, d(1, 1), d(1, 21), "rejected")
    p3 = proposal(research.id, delta, d(12, 1, 2025), d(1, 31), "accepted")
    p4 = proposal(innovation.id, beta, d(2, 1), d(2, 6), "accepted")
    proposal(research.id, alpha, d(3, 1), d(4, 2), "accepted")  # decided after Q1
    proposal(research.id, alpha, d(3, 1), None, "submitted")  # not decided

    # awards: alpha 900 all in Q1; beta 400 over Mar 17 - Apr 16, half in Q1 (200);
    # gamma 300 direct (no proposal) in January, 100 in December (outside); delta 100
    pa = _award(session, alpha, 900.0, d(1, 1), d(4, 1), p1)
    pb = _award(session, beta, 400.0, d(3, 17), d(4, 16), p4)
    pg = _award(session, gamma, 300.0, d(1, 1), d(2, 1))
    _award(session, gamma, 100.0, d(12, 1, 2025), d(1, 1))
    _award(session, delta, 100.0, d(2, 1), d(3, 1), p3)

    def use(project: Project, start: datetime, hours: float, gpus: int,
            period: AwardPeriod | None, kwh: float | None, co2: float | None,
            by: User | None = None) -> None:
        rec = add_usage(session, project, start=start, hours=hours, gpus=gpus,
                        period_id=period.id if period else None)
        rec.energy_kwh, rec.co2_kg = kwh, co2
        if by is not None:  # a run of a Rechenwerk job (else as if imported from Slurm)
            job = add_job(session, project, by, submitted=start, wait_h=None, state="pending")
            session.flush()
            rec.job_id = job.id

    # runs by sam (startup user in a university project), pib (sme) and pig (startup)
    use(alpha, d(1, 4), 100.0, 4, pa, 60.0, 23.0, by=sam)
    use(alpha, d(3, 10), 50.0, 5, pa, 40.0, 15.0)
    use(beta, d(3, 18), 40.0, 4, pb, 20.0, 8.0, by=pib)
    use(gamma, d(1, 10), 10.0, 1, None, None, None, by=pig)  # no award, no estimate
    use(gamma, d(2, 10), 20.0, 2, pg, 12.0, 5.0, by=pig)
    use(alpha, d(11, 1, 2025), 999.0, 1, pa, 1.0, 1.0)  # ends Dec 12: before Q1
    use(alpha, d(4, 1) - timedelta(hours=5), 5.0, 1, pa, 1.0, 1.0)  # ends at Apr 1: out

    # waits: university 1, 2, 3 h; sme 4 h; startup 10 h
    for w in (1.0, 2.0, 3.0):
        add_job(session, alpha, pia, submitted=d(1, 2), wait_h=w)
    add_job(session, beta, pib, submitted=d(2, 2), wait_h=4.0)
    add_job(session, gamma, pig, submitted=d(2, 3), wait_h=10.0)
    session.commit()
    return FunderCentre(operator_id=op.id, pi_id=pia.id)


def hours_of(table_dict: dict[str, object]) -> dict[str, tuple[float, float]]:
    rows = table_dict["rows"]
    assert isinstance(rows, list)
    return {r["key"]: (r["awarded_gpu_hours"], r["used_gpu_hours"]) for r in rows}


EXPECTED_HOURS: dict[str, dict[str, tuple[float, float]]] = {
    "country": {"DE": (1000.0, 150.0), "FR": (200.0, 40.0), "NL": (300.0, 30.0)},
    "kind": {"university": (1000.0, 150.0), "sme": (200.0, 40.0),
             "startup": (300.0, 30.0)},
    "field": {"1": (1000.0, 150.0), "2": (200.0, 40.0), "(not given)": (300.0, 30.0)},
    "field-detail": {"1.2": (900.0, 150.0), "1.5": (100.0, 0.0), "2.3": (200.0, 40.0),
                     "(not given)": (300.0, 30.0)},
    "mode": {"research": (1000.0, 150.0), "innovation": (200.0, 40.0),
             NO_CALL: (300.0, 20.0), NO_AWARD: (0.0, 10.0)},
}


def operator_and_pi_tokens(session: Session) -> tuple[str, str]:
    """The funder centre built, with API tokens of its operator and of a PI."""
    centre = build(session)
    op = make_token(session, session.get_one(User, centre.operator_id))
    pi = make_token(session, session.get_one(User, centre.pi_id))
    session.commit()
    return op, pi

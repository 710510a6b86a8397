"""Quick builders for access objects in tests (they flush, never commit).

    org = make_org(session, kind="sme")
    pi = make_user(session, org=org)
    project = make_project(session, pi=pi, members={alice: "member"})
    award = make_award(session, project, gpu_hours=5000, periods=2)
    token = make_token(session, pi)          # secret for "Authorization: Bearer ..."
    session.commit()
    api_client.get("/api/v1/projects", headers=bearer(token))
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from rechenwerk.access.awards import split_periods
from rechenwerk.access.call_types import type_for_access_mode
from rechenwerk.access.calls import DEFAULT_ELIGIBILITY
from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    Call,
    CallType,
    Organization,
    Project,
    ProjectMembership,
    Proposal,
    User,
)
from rechenwerk.access.review_pipeline import (
    Deadlines,
    confirm_ranking,
    record_assessment,
    steps_of,
    submit_reply,
)
from rechenwerk.access.reviews import respond_to_invitation
from rechenwerk.access.security import create_token
from rechenwerk.access.users import get_user

# The FakeClock's default start: factories stamp objects with it unless told otherwise.
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_GPU_TYPE = "A100-80GB"

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_org(session: Session, *, name: str | None = None, kind: str = "university",
             country: str = "DE") -> Organization:
    org = Organization(name=name or f"Org {_n()}", kind=kind, country=country, created_at=T0)
    session.add(org)
    session.flush()
    return org


def make_user(session: Session, *, username: str | None = None, org: Organization | None = None,
              operator: bool = False, reviewer: bool = False,
              password_hash: str | None = None) -> User:
    if org is None:
        org = make_org(session)
    name = username or f"user{_n()}"
    user = User(username=name, email=f"{name}@example.eu", full_name=name.title(),
                organization_id=org.id, organization=org, is_operator=operator,
                is_reviewer=reviewer, password_hash=password_hash, is_active=True,
                created_at=T0)
    session.add(user)
    session.flush()
    return user


def make_project(session: Session, *, pi: User | None = None, slug: str | None = None,
                 title: str | None = None,
                 members: Mapping[User, str] | None = None) -> Project:
    pi = pi or make_user(session)
    assert pi.organization_id is not None
    slug = slug or f"proj{_n()}"
    project = Project(slug=slug, title=title or f"Project {slug}", description="",
                      organization_id=pi.organization_id, pi_user_id=pi.id, created_at=T0)
    session.add(project)
    session.flush()
    session.add(ProjectMembership(project_id=project.id, user_id=pi.id, role="pi",
                                  created_at=T0))
    for user, role in (members or {}).items():
        session.add(ProjectMembership(project_id=project.id, user_id=user.id, role=role,
                                      created_at=T0))
    session.flush()
    return project


def make_call(session: Session, *, slug: str | None = None, access_mode: str = "research",
              opens_at: datetime | None = None, closes_at: datetime | None = None,
              eligible_kinds: list[str] | None = None,
              max_gpu_hours: float | None = None, call_type: CallType | None = None) -> Call:
    """A call of ``access_mode`` with that mode's default type unless ``call_type``."""
    opens = opens_at or T0 - timedelta(days=30)
    ctype = call_type or type_for_access_mode(session, access_mode, actor=None, now=T0)
    call = Call(slug=slug or f"call{_n()}", title="Test call", description="",
                access_mode=access_mode,
                eligible_kinds=eligible_kinds or list(DEFAULT_ELIGIBILITY[access_mode]),
                opens_at=opens, closes_at=closes_at or T0 + timedelta(days=60),
                closed_at=None, max_gpu_hours=max_gpu_hours, created_at=T0,
                call_type_id=ctype.id, call_type=ctype)
    session.add(call)
    session.flush()
    return call


def make_award(session: Session, project: Project, *, gpu_hours: float = 1000.0,
               gpu_type: str = DEFAULT_GPU_TYPE, starts_at: datetime | None = None,
               periods: int = 1, period_months: int = 3,
               carry_over_limit_gpu_hours: float = 0.0) -> Award:
    start = starts_at or T0
    split = split_periods(start, gpu_hours, periods, period_months)
    award = Award(project_id=project.id, project=project, proposal_id=None, gpu_type=gpu_type,
                  gpu_hours=gpu_hours, starts_at=start, expires_at=split[-1][1],
                  carry_over_limit_gpu_hours=carry_over_limit_gpu_hours, created_at=T0)
    award.periods = [AwardPeriod(starts_at=s, ends_at=e, gpu_hours=h) for s, e, h in split]
    session.add(award)
    session.flush()
    return award


def make_token(session: Session, user: User, *, name: str = "test",
               expires_at: datetime | None = None, now: datetime = T0) -> str:
    """Create an API token for ``user``; returns the secret."""
    _, secret = create_token(session, user, name=name, now=now, expires_at=expires_at)
    return secret


def pass_checks(session: Session, operator: User, proposal: Proposal, *,
                now: datetime = T0) -> None:
    """Record a passing eligibility check and technical assessment, where the proposal's
    call type lists them (the review pipeline's operator steps)."""
    for step in ("eligibility", "technical"):
        if step in steps_of(proposal):
            record_assessment(session, operator, proposal, step=step, outcome="pass",
                              note="ok", now=now)


def accept_invitation(session: Session, reviewer: User | str, proposal: Proposal, *,
                      now: datetime = T0) -> None:
    """The invited reviewer (a user or a username) accepts the invitation to review."""
    user = reviewer if isinstance(reviewer, User) else get_user(session, reviewer)
    respond_to_invitation(session, user, proposal, accept=True, now=now)


def reply_to_reviews(session: Session, proposal: Proposal, *, now: datetime = T0) -> None:
    """The PI uses the right to reply, where the call type lists it."""
    if "right_to_reply" in steps_of(proposal):
        submit_reply(session, proposal.project.pi, proposal, text="Thank you.", now=now)


def confirm_call_ranking(session: Session, operator: User, proposal: Proposal, *,
                         now: datetime = T0, deadlines: Deadlines | None = None) -> None:
    """Confirm the ranking of the proposal's call, where its type lists a ranking."""
    if "ranking" in steps_of(proposal):
        confirm_ranking(session, operator, proposal.call, now=now,
                        deadlines=deadlines or Deadlines(today=now.date()))

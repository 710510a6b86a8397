"""REST API of the access domain (``/api/v1/...``). Thin: parse, call the service, shape
the answer. Authorisation lives in the domain modules (``access.projects``,
``access.proposals`` ...); the transaction in ``api.deps``."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access import (
    accounts,
    audit,
    aup,
    awards,
    call_types,
    calls,
    organizations,
    paging,
    projects,
    proposals,
    review_pipeline,
    reviews,
    security,
    users,
)
from rechenwerk.access import schemas as s
from rechenwerk.access.fields_of_science import FIELDS, major_of
from rechenwerk.access.gpu_types import known_gpu_types
from rechenwerk.access.models import (
    AupVersion,
    Call,
    Project,
    ProjectMembership,
    Proposal,
    Review,
    User,
)
from rechenwerk.access.oidc.flows import password_login_allowed
from rechenwerk.api.deps import (
    CurrentUser,
    CurrentUserBeforeAup,
    DbSession,
    Now,
    Operator,
    settings_of,
)
from rechenwerk.errors import InvalidInput, NotFound, TooManyAttempts, Unauthenticated

router = APIRouter(prefix="/api/v1", tags=["access"])

Limit = Query(50, ge=1, le=paging.MAX_LIMIT, description="page size")
Offset = Query(0, ge=0, description="items to skip")


# --------------------------------------------------------------------------- identity


@router.get("/me", response_model=s.WhoAmI, summary="Who am I (user and project roles)")
def whoami(session: DbSession, user: CurrentUser) -> s.WhoAmI:
    rows = session.execute(
        select(Project.slug, ProjectMembership.project_id, ProjectMembership.role)
        .join(Project, Project.id == ProjectMembership.project_id)
        .where(ProjectMembership.user_id == user.id).order_by(Project.slug)
    ).all()
    memberships = [s.MembershipOut(project=slug, project_id=pid, role=role)
                   for slug, pid, role in rows]
    return s.WhoAmI(**s.UserOut.of(user).model_dump(), memberships=memberships)


@router.get("/gpu-types", response_model=list[str], summary="GPU types the centre knows")
def gpu_types(user: CurrentUser) -> list[str]:
    return list(known_gpu_types())


@router.get("/tokens", response_model=list[s.TokenOut], summary="My API tokens")
def list_tokens(session: DbSession, user: CurrentUser) -> list[s.TokenOut]:
    return [s.TokenOut.of(t) for t in security.list_tokens(session, user)]


@router.post("/tokens", response_model=s.TokenCreated, status_code=201,
             summary="Create an API token (the secret is shown once)")
def create_token(body: s.TokenCreate, session: DbSession, user: CurrentUser,
                 now: Now) -> s.TokenCreated:
    owner = user
    if body.username is not None and body.username != user.username:
        security.require_operator(user)
        owner = users.get_user(session, body.username)
    expires = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = security.create_token(session, owner, name=body.name, now=now,
                                          expires_at=expires, actor=user, scope=body.scope)
    return s.TokenCreated(**s.TokenOut.of(token).model_dump(), token=secret)


@router.post("/auth/token", response_model=s.TokenCreated, status_code=201,
             summary="Exchange username and password for a new API token (CLI login)")
def token_for_password(body: s.PasswordLogin, request: Request, session: DbSession,
                       now: Now) -> s.TokenCreated:
    try:
        user = security.login_with_password(
            session, body.username, body.password, now=now, source="api",
            address=request.client.host if request.client else None)
    except TooManyAttempts:
        raise
    except Unauthenticated:
        session.commit()  # keep the "login.failed" audit entry (the throttle counts apart)
        raise
    password_login_allowed(settings_of(request), user)
    token, secret = security.create_token(
        session, user, name=body.name, now=now,
        expires_at=now + timedelta(days=body.expires_in_days), actor=user)
    return s.TokenCreated(**s.TokenOut.of(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token")
def revoke_token(token_id: int, session: DbSession, user: CurrentUserBeforeAup,
                 now: Now) -> Response:
    security.revoke_token(session, user, token_id, now=now)
    return Response(status_code=204)


# --------------------------------------------------------------------------- organisations


@router.get("/organizations", response_model=s.PageOut[s.OrganizationOut])
def list_organizations(session: DbSession, user: CurrentUser, kind: str | None = None,
                       country: str | None = None, limit: int = Limit,
                       offset: int = Offset) -> s.PageOut[s.OrganizationOut]:
    page = organizations.list_organizations(session, kind=kind, country=country, limit=limit,
                                            offset=offset)
    return s.page_out(page, [s.OrganizationOut.of(o) for o in page.items])


@router.post("/organizations", response_model=s.OrganizationOut, status_code=201)
def create_organization(body: s.OrganizationCreate, session: DbSession, user: Operator,
                        now: Now) -> s.OrganizationOut:
    org = organizations.create_organization(session, user, name=body.name, kind=body.kind.value,
                                            country=body.country, now=now)
    return s.OrganizationOut.of(org)


@router.get("/organizations/{ref}", response_model=s.OrganizationOut)
def show_organization(ref: str, session: DbSession, user: CurrentUser) -> s.OrganizationOut:
    return s.OrganizationOut.of(organizations.get_organization(session, ref))


# --------------------------------------------------------------------------- users


@router.get("/users", response_model=s.PageOut[s.UserOut], summary="Users (operators)")
def list_users(session: DbSession, user: Operator, organization: str | None = None,
               is_reviewer: bool | None = None, is_operator: bool | None = None,
               limit: int = Limit, offset: int = Offset) -> s.PageOut[s.UserOut]:
    page = users.list_users(session, user, organization=organization, is_reviewer=is_reviewer,
                            is_operator=is_operator, limit=limit, offset=offset)
    return s.page_out(page, [s.UserOut.of(u) for u in page.items])


@router.post("/users", response_model=s.UserOut, status_code=201, summary="Create a user")
def create_user(body: s.UserCreate, session: DbSession, user: Operator, now: Now) -> s.UserOut:
    created = users.create_user(session, user, username=body.username, email=body.email,
                                full_name=body.full_name, organization=body.organization,
                                is_operator=body.is_operator, is_reviewer=body.is_reviewer,
                                password=body.password, now=now)
    return s.UserOut.of(created)


@router.get("/users/{ref}", response_model=s.UserOut, summary="A user (self or operators)")
def show_user(ref: str, session: DbSession, user: CurrentUser) -> s.UserOut:
    if ref in (user.username, str(user.id)):
        return s.UserOut.of(user)
    if not user.is_operator:
        raise NotFound(f"user {ref!r} not found", field="user")
    return s.UserOut.of(users.get_user(session, ref))


@router.patch("/users/{ref}", response_model=s.UserOut,
              summary="Change a user's profile or global roles (operators)")
def update_user(ref: str, body: s.UserUpdate, session: DbSession, user: Operator,
                now: Now) -> s.UserOut:
    target = users.get_user(session, ref)
    users.update_user(session, user, target, full_name=body.full_name, email=body.email,
                      organization=body.organization, is_operator=body.is_operator,
                      is_reviewer=body.is_reviewer, is_active=body.is_active, now=now)
    return s.UserOut.of(target)


# --------------------------------------------------------------------------- projects


@router.get("/projects", response_model=s.PageOut[s.ProjectOut],
            summary="Projects I am a member of (operators: all)")
def list_projects(session: DbSession, user: CurrentUser, organization: str | None = None,
                  member: str | None = None,
                  approval: str | None = Query(None, description="approved, pending or "
                                               "rejected"),
                  limit: int = Limit, offset: int = Offset) -> s.PageOut[s.ProjectOut]:
    page = projects.list_projects(session, user, organization=organization, member=member,
                                  approval=approval, limit=limit, offset=offset)
    return s.page_out(page, [s.ProjectOut.of(p) for p in page.items])


@router.post("/projects", response_model=s.ProjectOut, status_code=201,
             summary="Create a project (you become its PI; operators may name the PI)")
def create_project(body: s.ProjectCreate, request: Request, session: DbSession,
                   user: CurrentUser, now: Now) -> s.ProjectOut:
    project = projects.create_project(
        session, user, slug=body.slug, title=body.title, description=body.description,
        pi=body.pi, now=now, field_of_science=body.field_of_science,
        require_approval=settings_of(request).project_approval)
    return s.ProjectOut.of(project, projects.project_members(session, project))


@router.post("/projects/{ref}/approval", response_model=s.ProjectOut,
             summary="Approve or reject a pending project (operators)")
def decide_project(ref: str, body: s.ProjectDecision, session: DbSession, user: Operator,
                   now: Now) -> s.ProjectOut:
    project = projects.get_project(session, ref)
    projects.decide_project(session, user, project, decision=body.decision, note=body.note,
                            now=now)
    return s.ProjectOut.of(project, projects.project_members(session, project))


@router.get("/projects/{ref}", response_model=s.ProjectOut)
def show_project(ref: str, session: DbSession, user: CurrentUser) -> s.ProjectOut:
    project = projects.visible_project(session, user, ref)
    return s.ProjectOut.of(project, projects.project_members(session, project))


@router.patch("/projects/{ref}", response_model=s.ProjectOut,
              summary="Change a project's title, description or field of science (PI or "
              "operators)")
def update_project(ref: str, body: s.ProjectUpdate, session: DbSession, user: CurrentUser,
                   now: Now) -> s.ProjectOut:
    project = projects.visible_project(session, user, ref)
    sent = body.model_fields_set
    project = projects.update_project(
        session, user, project, now=now, title=body.title, description=body.description,
        field_of_science=body.field_of_science if "field_of_science" in sent
        else projects.UNSET)
    return s.ProjectOut.of(project, projects.project_members(session, project))


@router.get("/fields-of-science", response_model=list[s.FieldOfScienceOut],
            summary="The fields of science a project may name (OECD FORD, Frascati Manual "
            "2015)")
def list_fields_of_science(user: CurrentUser) -> list[s.FieldOfScienceOut]:
    return [s.FieldOfScienceOut(code=code, name=name, major=major_of(code))
            for code, name in FIELDS.items()]


@router.get("/projects/{ref}/members", response_model=list[s.MemberOut])
def list_members(ref: str, session: DbSession, user: CurrentUser) -> list[s.MemberOut]:
    project = projects.visible_project(session, user, ref)
    return [s.MemberOut.of(m) for m in projects.project_members(session, project)]


@router.post("/projects/{ref}/members", response_model=s.MemberOut, status_code=201,
             summary="Add a member or change a member's role (PI or operators)")
def add_member(ref: str, body: s.MemberAdd, session: DbSession, user: CurrentUser,
               now: Now) -> s.MemberOut:
    project = projects.get_project(session, ref)
    m = projects.add_member(session, user, project, username=body.username, role=body.role, now=now)
    return s.MemberOut.of(m)


@router.delete("/projects/{ref}/members/{username}", status_code=204,
               summary="Remove a member (PI or operators)")
def remove_member(ref: str, username: str, session: DbSession, user: CurrentUser,
                  now: Now) -> Response:
    project = projects.get_project(session, ref)
    projects.remove_member(session, user, project, username=username, now=now)
    return Response(status_code=204)


# --------------------------------------------------------------------------- call types


@router.get("/call-types", response_model=s.PageOut[s.CallTypeOut],
            summary="Call types: the rules each kind of call holds its proposals to")
def list_call_types(session: DbSession, user: CurrentUser, limit: int = Limit,
                    offset: int = Offset) -> s.PageOut[s.CallTypeOut]:
    page = call_types.list_call_types(session, limit=limit, offset=offset)
    return s.page_out(page, [s.CallTypeOut.of(t) for t in page.items])


@router.post("/call-types", response_model=s.CallTypeOut, status_code=201,
             summary="Create a call type (operators); types are not changed once created")
def create_call_type(body: s.CallTypeCreate, session: DbSession, user: Operator,
                     now: Now) -> s.CallTypeOut:
    return s.CallTypeOut.of(call_types.create_call_type(session, user, body.spec(), now=now))


@router.get("/call-types/{ref}", response_model=s.CallTypeOut)
def show_call_type(ref: str, session: DbSession, user: CurrentUser) -> s.CallTypeOut:
    return s.CallTypeOut.of(call_types.get_call_type(session, ref))


# --------------------------------------------------------------------------- calls


@router.get("/calls", response_model=s.PageOut[s.CallOut])
def list_calls(session: DbSession, user: CurrentUser, now: Now, access_mode: str | None = None,
               status: str | None = Query(None, description="open, upcoming or closed"),
               limit: int = Limit, offset: int = Offset) -> s.PageOut[s.CallOut]:
    page = calls.list_calls(session, now=now, access_mode=access_mode, status=status,
                            limit=limit, offset=offset)
    return s.page_out(page, [s.CallOut.of(c, now) for c in page.items])


@router.post("/calls", response_model=s.CallOut, status_code=201, summary="Open a call")
def create_call(body: s.CallCreate, session: DbSession, user: Operator, now: Now) -> s.CallOut:
    call = calls.create_call(
        session, user, slug=body.slug, title=body.title, description=body.description,
        access_mode=body.access_mode.value,
        eligible_kinds=[k.value for k in body.eligible_kinds]
        if body.eligible_kinds is not None else None,
        opens_at=body.opens_at or now, closes_at=body.closes_at,
        max_gpu_hours=body.max_gpu_hours, call_type=body.call_type,
        budget_gpu_hours=body.budget_gpu_hours, now=now)
    return s.CallOut.of(call, now)


def _ranking_out(call: Call, rows: list[review_pipeline.RankRow],
                 confirmed: bool) -> s.RankingOut:
    return s.RankingOut(call=call.slug, budget_gpu_hours=call.budget_gpu_hours,
                        confirmed=confirmed, rows=[s.RankingRowOut(
                            position=r.position, proposal_id=r.proposal.id,
                            title=r.proposal.title, project=r.proposal.project.slug,
                            mean_score=r.mean_score, submitted_at=r.proposal.submitted_at,
                            requested_gpu_hours=r.proposal.requested_gpu_hours,
                            cumulative_gpu_hours=r.cumulative_gpu_hours,
                            recommended_gpu_hours=r.recommended_gpu_hours) for r in rows])


@router.get("/calls/{ref}/ranking", response_model=s.RankingOut,
            summary="The proposals at the ranking step against the call's budget (operators)")
def call_ranking(ref: str, request: Request, session: DbSession, user: Operator,
                 now: Now) -> s.RankingOut:
    call = calls.get_call(session, ref)
    return _ranking_out(call, review_pipeline.call_ranking(session, call,
                                                           _deadlines(request, now)), False)


@router.post("/calls/{ref}/ranking/confirm", response_model=s.RankingOut,
             summary="Confirm the ranking: completes the ranking step (operators)")
def confirm_call_ranking(ref: str, request: Request, session: DbSession, user: Operator,
                         now: Now) -> s.RankingOut:
    call = calls.get_call(session, ref)
    rows = review_pipeline.confirm_ranking(session, user, call, now=now,
                                           deadlines=_deadlines(request, now))
    return _ranking_out(call, rows, True)


@router.get("/calls/{ref}", response_model=s.CallOut)
def show_call(ref: str, session: DbSession, user: CurrentUser, now: Now) -> s.CallOut:
    return s.CallOut.of(calls.get_call(session, ref), now)


@router.post("/calls/{ref}/close", response_model=s.CallOut, summary="Close a call now")
def close_call(ref: str, session: DbSession, user: Operator, now: Now) -> s.CallOut:
    call = calls.close_call(session, user, calls.get_call(session, ref), now=now)
    return s.CallOut.of(call, now)


# --------------------------------------------------------------------------- proposals


def _proposal_out(session: DbSession, user: CurrentUser, proposal_id: int,
                  now: datetime) -> s.ProposalOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    reviewers: list[str] = []
    if user.is_operator:
        reviewers = [r.reviewer.username for r in session.scalars(
            select(Review).where(Review.proposal_id == p.id).order_by(Review.id))]
    return s.ProposalOut.of(p, now, reviewers)


@router.get("/proposals", response_model=s.PageOut[s.ProposalOut],
            summary="Proposals of my projects or assigned to me for review")
def list_proposals(session: DbSession, user: CurrentUser, now: Now, call: str | None = None,
                   project: str | None = None, state: str | None = None,
                   overdue: bool = Query(False, description="only those whose decision "
                                         "is overdue"),
                   limit: int = Limit, offset: int = Offset) -> s.PageOut[s.ProposalOut]:
    page = proposals.list_proposals(session, user, call=call, project=project, state=state,
                                    overdue_on=now.date() if overdue else None,
                                    limit=limit, offset=offset)
    return s.page_out(page, [s.ProposalOut.of(p, now) for p in page.items])


@router.post("/proposals", response_model=s.ProposalOut, status_code=201,
             summary="Draft a proposal (PI of the project)")
def create_proposal(body: s.ProposalCreate, request: Request, session: DbSession,
                    user: CurrentUser, now: Now) -> s.ProposalOut:
    project = projects.visible_project(session, user, body.project)
    call = calls.get_call(session, body.call)
    p = proposals.create_proposal(session, user, call=call, project=project, title=body.title,
                                  abstract=body.abstract, justification=body.justification,
                                  gpu_type=body.gpu_type,
                                  requested_gpu_hours=body.requested_gpu_hours,
                                  duration_months=body.duration_months,
                                  estimate=body.estimate_inputs(),
                                  block_on_overdue_report=settings_of(
                                      request).block_proposals_on_overdue_report, now=now)
    return s.ProposalOut.of(p, now)


@router.get("/proposals/{proposal_id}", response_model=s.ProposalOut)
def show_proposal(proposal_id: int, session: DbSession, user: CurrentUser,
                  now: Now) -> s.ProposalOut:
    return _proposal_out(session, user, proposal_id, now)


@router.patch("/proposals/{proposal_id}", response_model=s.ProposalOut,
              summary="Change a draft: only the fields given; estimate null removes the "
                      "estimate (PI of the project)")
def update_proposal(proposal_id: int, body: s.ProposalUpdate, session: DbSession,
                    user: CurrentUser, now: Now) -> s.ProposalOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    proposals.update_proposal(session, user, p, title=body.title, abstract=body.abstract,
                              justification=body.justification, gpu_type=body.gpu_type,
                              requested_gpu_hours=body.requested_gpu_hours,
                              duration_months=body.duration_months,
                              estimate=body.estimate_inputs(),
                              remove_estimate=body.remove_estimate, now=now)
    return _proposal_out(session, user, proposal_id, now)


@router.post("/proposals/{proposal_id}/withdraw", response_model=s.ProposalOut,
             summary="Withdraw a proposal before the decision (PI of the project)")
def withdraw_proposal(proposal_id: int, session: DbSession, user: CurrentUser, now: Now,
                      body: s.WithdrawIn | None = None) -> s.ProposalOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    proposals.withdraw_proposal(session, user, p, reason=body.reason if body else "", now=now)
    return _proposal_out(session, user, proposal_id, now)


@router.post("/proposals/{proposal_id}/submit", response_model=s.ProposalOut)
def submit_proposal(proposal_id: int, request: Request, session: DbSession,
                    user: CurrentUser, now: Now) -> s.ProposalOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    settings = settings_of(request)
    proposals.submit_proposal(session, user, p, now=now, holidays=settings.holiday_dates,
                              block_on_overdue_report=settings.block_proposals_on_overdue_report)
    return _proposal_out(session, user, proposal_id, now)


@router.post("/proposals/{proposal_id}/reviewers", response_model=s.ReviewOut,
             status_code=201, summary="Assign a reviewer (operators)")
def assign_reviewer(proposal_id: int, body: s.ReviewerAssign, request: Request,
                    session: DbSession, user: Operator, now: Now) -> s.ReviewOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    review = reviews.assign_reviewer(session, user, p, reviewer=body.reviewer, now=now,
                                     due_on=body.due_on,
                                     holidays=settings_of(request).holiday_dates)
    return s.ReviewOut.of(review, show_reviewer=True)


@router.post("/proposals/{proposal_id}/invitation", response_model=s.ReviewOut,
             summary="Accept or decline my invitation to review (invited reviewers)")
def answer_invitation(proposal_id: int, body: s.InvitationAnswer, session: DbSession,
                      user: CurrentUser, now: Now) -> s.ReviewOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    review = reviews.respond_to_invitation(session, user, p, accept=body.accept,
                                           reason=body.reason, now=now)
    return s.ReviewOut.of(review, show_reviewer=True)


@router.post("/proposals/{proposal_id}/reviews", response_model=s.ReviewOut,
             summary="Submit my review (assigned reviewers)")
def submit_review(proposal_id: int, body: s.ReviewCreate, session: DbSession,
                  user: CurrentUser, now: Now) -> s.ReviewOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    review = reviews.submit_review(session, user, p, technical_score=body.technical_score,
                                   scientific_score=body.scientific_score, comment=body.comment,
                                   now=now)
    return s.ReviewOut.of(review, show_reviewer=True)


@router.get("/proposals/{proposal_id}/reviews", response_model=list[s.ReviewOut])
def list_reviews(proposal_id: int, session: DbSession, user: CurrentUser) -> list[s.ReviewOut]:
    p = proposals.visible_proposal(session, user, proposal_id)
    return [s.ReviewOut.of(r, show_reviewer=user.is_operator or r.reviewer_user_id == user.id)
            for r in reviews.list_reviews(session, user, p)]


def _deadlines(request: Request, now: datetime) -> review_pipeline.Deadlines:
    return review_pipeline.Deadlines.from_settings(settings_of(request), now.date())


def _pipeline_out(session: Session, user: User, p: Proposal,
                  deadlines: review_pipeline.Deadlines) -> s.PipelineOut:
    statuses = review_pipeline.pipeline(session, p, deadlines)
    has_reply = "right_to_reply" in review_pipeline.steps_of(p)
    return s.PipelineOut(
        proposal_id=p.id, state=p.state, call_type=p.call.call_type.key,
        step=review_pipeline.current_step(session, p, statuses),
        steps=[s.StepOut(step=st.step, done=st.done, detail=st.detail) for st in statuses],
        assessments=[s.AssessmentOut.of(a, show_by=user.is_operator)
                     for a in review_pipeline.assessments(session, p)],
        reply_due_on=review_pipeline.reply_due(session, p, deadlines) if has_reply else None,
        reply_text=p.reply_text, replied_at=p.replied_at)


@router.get("/proposals/{proposal_id}/pipeline", response_model=s.PipelineOut,
            summary="The review steps of a proposal: which are done, the one it is at")
def proposal_pipeline(proposal_id: int, request: Request, session: DbSession,
                      user: CurrentUser, now: Now) -> s.PipelineOut:
    return _pipeline_out(session, user, proposals.visible_proposal(session, user, proposal_id),
                         _deadlines(request, now))


@router.post("/proposals/{proposal_id}/reply", response_model=s.PipelineOut,
             summary="The applicant's one reply to the reviews (PI of the project)")
def reply_to_reviews(proposal_id: int, body: s.ReplyIn, request: Request,
                     session: DbSession, user: CurrentUser, now: Now) -> s.PipelineOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    deadlines = _deadlines(request, now)
    review_pipeline.submit_reply(session, user, p, text=body.text, now=now,
                                 deadlines=deadlines)
    return _pipeline_out(session, user, p, deadlines)


@router.post("/proposals/{proposal_id}/assessments", response_model=s.PipelineOut,
             status_code=201, summary="Record the eligibility check or the technical "
                                      "assessment: pass or fail with a note (operators)")
def record_assessment(proposal_id: int, body: s.AssessmentIn, request: Request,
                      session: DbSession, user: Operator, now: Now) -> s.PipelineOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    review_pipeline.record_assessment(session, user, p, step=body.step, outcome=body.outcome,
                                      note=body.note, now=now)
    return _pipeline_out(session, user, p, _deadlines(request, now))


@router.post("/proposals/{proposal_id}/decision", response_model=s.ProposalOut,
             summary="Accept or reject (operators)")
def decide(proposal_id: int, body: s.DecisionIn, request: Request, session: DbSession,
           user: Operator, now: Now) -> s.ProposalOut:
    p = proposals.visible_proposal(session, user, proposal_id)
    settings = settings_of(request)
    proposals.decide_proposal(session, user, p, decision=body.decision, comment=body.comment,
                              now=now, holidays=settings.holiday_dates,
                              reply_days=settings.right_to_reply_working_days,
                              granted_gpu_hours=body.granted_gpu_hours)
    return _proposal_out(session, user, proposal_id, now)


# --------------------------------------------------------------------------- awards


@router.get("/awards", response_model=s.PageOut[s.AwardOut])
def list_awards(session: DbSession, user: CurrentUser, project: str | None = None,
                gpu_type: str | None = None,
                active_at: datetime | None = Query(None, description="ISO time"),
                limit: int = Limit, offset: int = Offset) -> s.PageOut[s.AwardOut]:
    if project is not None:
        projects.visible_project(session, user, project)
    page = awards.list_awards(session, user, project=project, gpu_type=gpu_type,
                              active_at=active_at, limit=limit, offset=offset)
    return s.page_out(page, [s.AwardOut.of(a) for a in page.items])


@router.post("/awards", response_model=s.AwardOut, status_code=201,
             summary="Award GPU-hours split into periods (operators)")
def create_award(body: s.AwardCreate, request: Request, session: DbSession, user: Operator,
                 now: Now) -> s.AwardOut:
    project = projects.get_project(session, body.project)
    proposal = proposals.visible_proposal(session, user, body.proposal) if body.proposal else None
    if body.cluster is not None:
        from rechenwerk.execution.clusters import declared_clusters

        names = [c.name for c in declared_clusters(settings_of(request))]
        if body.cluster not in names:
            raise InvalidInput(f"unknown cluster {body.cluster!r}", field="cluster",
                               hint=f"Use one of: {', '.join(names)}, or leave cluster out "
                               "(valid on every cluster).")
    award = awards.create_award(
        session, user, project=project, proposal=proposal, gpu_type=body.gpu_type,
        gpu_hours=body.gpu_hours, starts_at=body.starts_at, expires_at=body.expires_at,
        carry_over_limit_gpu_hours=body.carry_over_limit_gpu_hours,
        period_count=body.period_count, period_months=body.period_months,
        periods=[(p.starts_at, p.ends_at, p.gpu_hours) for p in body.periods]
        if body.periods is not None else None,
        final_report_months=settings_of(request).final_report_months, now=now,
        cluster=body.cluster)
    return s.AwardOut.of(award)


@router.get("/awards/{award_id}", response_model=s.AwardOut)
def show_award(award_id: int, session: DbSession, user: CurrentUser) -> s.AwardOut:
    return s.AwardOut.of(awards.visible_award(session, user, award_id))


# --------------------------------------------------------------------------- pay-per-use


@router.get("/accounts", response_model=s.PageOut[s.AccountOut],
            summary="Pay-per-use accounts of my projects")
def list_accounts(session: DbSession, user: CurrentUser, project: str | None = None,
                  limit: int = Limit, offset: int = Offset) -> s.PageOut[s.AccountOut]:
    if project is not None:
        projects.visible_project(session, user, project)
    page = accounts.list_accounts(session, user, project=project, limit=limit, offset=offset)
    return s.page_out(page, [s.AccountOut.of(a) for a in page.items])


@router.post("/accounts", response_model=s.AccountOut, status_code=201,
             summary="Open a pay-per-use account (operators)")
def create_account(body: s.AccountCreate, session: DbSession, user: Operator,
                   now: Now) -> s.AccountOut:
    project = projects.get_project(session, body.project)
    account = accounts.create_account(session, user, project=project,
                                      credit_limit_eur=body.credit_limit_eur, prices=body.prices,
                                      now=now)
    return s.AccountOut.of(account)


@router.get("/accounts/{account_id}", response_model=s.AccountOut)
def show_account(account_id: int, session: DbSession, user: CurrentUser) -> s.AccountOut:
    return s.AccountOut.of(accounts.visible_account(session, user, account_id))


@router.patch("/accounts/{account_id}", response_model=s.AccountOut,
              summary="Change credit limit, prices or activity (operators)")
def update_account(account_id: int, body: s.AccountUpdate, session: DbSession,
                   user: Operator, now: Now) -> s.AccountOut:
    account = accounts.visible_account(session, user, account_id)
    accounts.update_account(session, user, account, credit_limit_eur=body.credit_limit_eur,
                            prices=body.prices, is_active=body.is_active, now=now)
    return s.AccountOut.of(account)


# --------------------------------------------------------------------------- audit


@router.get("/audit", response_model=s.PageOut[s.AuditOut], summary="Audit log (operators)")
def list_audit(session: DbSession, user: Operator, entity: str | None = None,
               entity_id: str | None = None, actor: str | None = None,
               action: str | None = Query(None, description="prefix, e.g. 'proposal.'"),
               since: datetime | None = None, limit: int = Limit,
               offset: int = Offset) -> s.PageOut[s.AuditOut]:
    page = audit.list_audit(session, user, entity=entity, entity_id=entity_id, user=actor,
                            action=action, since=since, limit=limit, offset=offset)
    return s.page_out(page, [s.AuditOut.of(e) for e in page.items])


# --------------------------------------------------------------------------- AUP
# The acceptable-use policy (issue 14): read, accept, publish (operators). The rule is in
# access/aup.py; the gate in api/deps.py current_user (these routes are never gated).


def _aup_out(session: Session, version: AupVersion, user: User) -> s.AupOut:
    return s.AupOut(version=version.version, text=version.text,
                    published_at=version.published_at, published_by=version.published_by,
                    accepted_at=aup.accepted_at(session, user.id, version.version))


@router.get("/aup", response_model=s.AupOut,
            summary="The centre's current acceptable-use policy (404: none published)")
def current_aup(session: DbSession, user: CurrentUserBeforeAup) -> s.AupOut:
    return _aup_out(session, aup.require_current_aup(session), user)


@router.get("/aup/versions", response_model=list[s.AupOut],
            summary="Every published version, newest first")
def aup_versions(session: DbSession, user: CurrentUserBeforeAup) -> list[s.AupOut]:
    return [_aup_out(session, v, user) for v in aup.list_aup_versions(session)]


@router.post("/aup/accept", response_model=s.AupOut,
             summary="Accept the current acceptable-use policy (give its version)")
def accept_aup(body: s.AupAccept, session: DbSession, user: CurrentUserBeforeAup,
           now: Now) -> s.AupOut:
    aup.accept_aup(session, user, body.version, now=now)
    return _aup_out(session, aup.require_current_aup(session), user)


@router.post("/aup", response_model=s.AupOut, status_code=201,
             summary="Publish a new version (operators); every user must accept it")
def publish_aup(body: s.AupPublish, session: DbSession, user: CurrentUserBeforeAup,
            now: Now) -> s.AupOut:
    security.require_operator(user)
    return _aup_out(session, aup.publish_aup(session, user, body.text, now=now), user)

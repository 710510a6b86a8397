"""Dashboard and project pages: live balance per award period with a burn-down chart,
members (the PI adds and removes them), recent jobs.

Balances come from ``accounting.balance.project_balance``; who may see a project and who
may change its members is the access service's rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.accounts import account_for_project
from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.access.projects import (
    add_member,
    membership,
    project_members,
    remove_member,
    visible_project,
)
from rechenwerk.access.proposals import list_proposals
from rechenwerk.access.review_pipeline import Deadlines
from rechenwerk.accounting.award_history import award_history
from rechenwerk.accounting.balance import project_balance
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.errors import NotFound, RechenwerkError
from rechenwerk.jobs import service as jobs
from rechenwerk.reports.burndown import burn_down
from rechenwerk.web.charts import (
    award_periods_chart,
    burndown_chart,
    chart_context,
    chart_csv,
)
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FORM_KEY, FormErrors, errors_from, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect
from rechenwerk.web.worklist import operator_items, pi_items, reviewer_items

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

DASHBOARD_CHARTS = 4


def project_summary(db: Session, user: User, project: Project, now: datetime,
                    *, charts: bool) -> dict[str, Any]:
    """Balance, role and (optionally) burn-down charts of one project the user may see."""
    balance = project_balance(db, project, now)
    burns = [burn_down(db, project.slug, p, now=now) for p in balance.periods]
    m = membership(db, user, project)
    return {
        "project": project,
        "role": m.role if m else ("operator" if user.is_operator else ""),
        # The submit form lists the projects one works in (operators included): offer
        # "Submit a job" only there, never to viewers.
        "can_submit": (m is not None and m.role in jobs.SUBMIT_ROLES
                       and project.approval == "approved"),
        "balance": balance,
        # a pay-per-use account pays the jobs no award covers (docs/jobs.md)
        "account": account_for_project(db, project),
        "burns": burns,
        "upcoming": award_history(db, project, now).upcoming,
        "charts": [chart_context(burndown_chart(b), f"/projects/{project.slug}/burndown/"
                                 f"{b.period.award_period_id}.csv") for b in burns]
        if charts else [],
    }


@router.get("/")
def dashboard(
    request: Request, user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    # The user's own projects, for operators too (not access.visibility's "all"): the
    # dashboard shows "each of your projects" (docs/portal.md) with its charts, not the
    # whole centre; operators open any other project from the ops pages.
    mine = db.scalars(
        select(Project).join(ProjectMembership, ProjectMembership.project_id == Project.id)
        .where(ProjectMembership.user_id == user.id).order_by(Project.slug)
    ).all()
    summaries = [project_summary(db, user, p, now, charts=i < DASHBOARD_CHARTS)
                 for i, p in enumerate(mine)]
    recent, _ = jobs.list_jobs(db, user, mine=True, limit=8)
    work = reviewer_items(db, user) + pi_items(
        db, user, now.date(), settings_of(request).report_reminder_days)
    cluster = None
    if user.is_operator:
        from rechenwerk.web.pages.cluster import cluster_summary

        cluster = cluster_summary(request, db)
        work += operator_items(db, now, cluster["drained_nodes"],
                               Deadlines.from_settings(settings_of(request), now.date()))
    submit_projects = [s["project"].slug for s in summaries if s["can_submit"]]
    return render(request, "dashboard.html", {
        "title": "Dashboard", "section": "dashboard", "summaries": summaries,
        "recent": recent, "projects_by_id": {p.id: p.slug for p in mine} |
        jobs.project_slugs(db, {j.project_id for j in recent}),
        "work": work, "cluster": cluster, "now": now, "submit_projects": submit_projects,
        "portal_url": str(request.base_url).rstrip("/"),
    })


def _project_page(request: Request, db: Session, user: User, project: Project, now: datetime,
                  *, form: dict[str, str] | None = None, errors: FormErrors | None = None,
                  status_code: int = 200) -> Response:
    summary = project_summary(db, user, project, now, charts=True)
    members = project_members(db, project)
    recent, total = jobs.list_jobs(db, user, project=project.id, limit=10)
    history = award_history(db, project, now)
    award_charts = [chart_context(award_periods_chart(a, now),
                                  f"/projects/{project.slug}/awards/{a.award_id}.csv")
                    for a in history.awards if len(a.periods) > 1]
    proposals = list_proposals(db, user, project=project.id, limit=100).items
    return render(request, "projects/detail.html", {
        "title": project.slug, "section": "dashboard", "s": summary, "members": members,
        "is_pi": summary["role"] == "pi" or user.is_operator,
        "recent": recent, "job_total": total, "history": history,
        "award_charts": award_charts, "proposals": proposals,
        "usernames": jobs.usernames(db, {j.user_id for j in recent}),
        "form": form or {"role": "member"}, "errors": errors or FormErrors(), "now": now,
    }, status_code=status_code)


@router.get("/projects/{slug}")
def project_detail(
    request: Request, slug: str, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    project = visible_project(db, user, slug)
    return _project_page(request, db, user, project, now)


@router.get("/projects/{slug}/burndown/{period_id}.csv")
def burndown_csv(
    slug: str, period_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    project = visible_project(db, user, slug)
    balance = project_balance(db, project, now)
    period = next((p for p in balance.periods if p.award_period_id == period_id), None)
    if period is None:
        raise NotFound(f"award period {period_id} of {slug!r} is not active",
                       hint="The burn-down covers the active award periods shown on the "
                       "project page.")
    chart = burndown_chart(burn_down(db, project.slug, period, now=now))
    return Response(chart_csv(chart), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="burndown-{slug}-{period_id}.csv"'})


@router.get("/projects/{slug}/awards/{award_id}.csv")
def award_chart_csv(
    slug: str, award_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    project = visible_project(db, user, slug)
    award = next((a for a in award_history(db, project, now).awards
                  if a.award_id == award_id), None)
    if award is None:
        raise NotFound(f"award {award_id} is not one of {slug!r}'s", field="award_id",
                       hint="The project page lists the project's awards.")
    chart = award_periods_chart(award, now)
    return Response(chart_csv(chart), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="award-{slug}-{award_id}.csv"'})


@router.post("/projects/{slug}/members")
def member_add(
    request: Request, slug: str, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    project = visible_project(db, user, slug)
    errors = FormErrors()
    status = 422
    if not text(form, "username"):
        errors.add("username", "Username is required")
    else:
        try:
            add_member(db, user, project, username=text(form, "username"),
                       role=text(form, "role") or "member", now=now)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, {"user": "username"}, fields={"username", "role"})
            # a problem with a field is the input's (422); else the error's own status
            status = exc.http_status if FORM_KEY in errors else 422
    if errors:
        project = visible_project(db, user, slug)
        return _project_page(request, db, user, project, now, form=form, errors=errors,
                             status_code=status)
    return flash_redirect(
        request, f"/projects/{slug}#members",
        f"{text(form, 'username')} is now {text(form, 'role') or 'member'} of {slug}.")


@router.post("/projects/{slug}/members/{username}/remove")
def member_remove(
    request: Request, slug: str, username: str, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    project = visible_project(db, user, slug)
    remove_member(db, user, project, username=username, now=now)
    return flash_redirect(request, f"/projects/{slug}#members",
                          f"{username} removed from {slug}.")

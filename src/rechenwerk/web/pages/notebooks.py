"""Interactive sessions in the portal ("Notebooks"): the user's sessions and a start form,
a session's page (state, open JupyterLab once ready, stop through a confirmation), live
while it starts. The rules are ``sessions/service.py``'s; JupyterLab itself is served by
``web/jupyter_proxy.py`` under ``/jupyter/<id>/``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.accounting.balance import project_balance
from rechenwerk.api.deps import backend_of, get_clock, get_now, get_session, settings_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.policy_config import qos_limits
from rechenwerk.jobs.service import project_slugs
from rechenwerk.jobs.specs import format_duration
from rechenwerk.jobs.states import TERMINAL_STATES, JobState
from rechenwerk.sessions import service as sessions
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FormErrors, errors_from, text
from rechenwerk.web.pages.jobs import STDERR_TAIL, _log_chunks, _visible_projects
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
START_FIELDS = {"project", "gpus", "walltime", "gpu_type", "qos", "workdir"}
_ALIASES = {"walltime_s": "walltime"}


def _ended(job: Job) -> bool:
    return JobState(job.state) in TERMINAL_STATES


def _view(request: Request, job: Job, slug: str, now: datetime) -> dict[str, Any]:
    settings = settings_of(request)
    ready = sessions.session_ready(job, settings, lambda: backend_of(request))
    left = None
    if job.started_at is not None and not _ended(job):
        left = max(0.0, job.walltime_s - (now - job.started_at).total_seconds())
    return {"job": job, "project": slug, "ready": ready,
            "ended": _ended(job), "url": sessions.session_url(job),
            "time_left": format_duration(left) if left is not None else None,
            "walltime": format_duration(job.walltime_s)}


def _start_page(request: Request, db: Session, user: User, now: datetime,
                form: dict[str, str], errors: FormErrors, status_code: int = 200) -> Response:
    settings = settings_of(request)
    projects = _visible_projects(db, user, roles=("pi", "member"))
    gpu_types: list[str] = []
    for p in projects:
        for period in project_balance(db, p, now).periods:
            if period.gpu_type not in gpu_types:
                gpu_types.append(period.gpu_type)
    jobs = sessions.list_sessions(db, user)
    slugs = project_slugs(db, {j.project_id for j in jobs})
    return render(request, "notebooks/list.html", {
        "title": "Notebooks", "section": "notebooks", "form": form, "errors": errors,
        "available": bool(settings.session_python) or sessions.jupyterlab_available(),
        "sessions": [_view(request, j, slugs.get(j.project_id, "?"), now) for j in jobs],
        "project_options": [(p.slug, f"{p.slug} — {p.title}") for p in projects],
        "qos_options": [(q, f"{q} (up to {format_duration(s)})")
                        for q, s in qos_limits(settings).items()],
        "gpu_type_options": [("", "any (the project's award decides)")]
        + [(g, g) for g in gpu_types],
    }, status_code=status_code)


@router.get("/sessions")
def session_list(request: Request, project: str = "", user: User = Depends(portal_user),
                 db: Session = Depends(get_session),
                 now: datetime = Depends(get_now)) -> Response:
    form = {"project": project, "gpus": "1", "walltime": "2h", "qos": "normal"}
    return _start_page(request, db, user, now, form, FormErrors())


@router.post("/sessions")
def session_start(request: Request, form: dict[str, str] = Depends(form_data),
                  user: User = Depends(portal_user), db: Session = Depends(get_session),
                  now: datetime = Depends(get_now)) -> Response:
    errors = FormErrors()
    gpus_text = text(form, "gpus") or "1"
    if not gpus_text.isdigit():
        errors.add("gpus", f"must be a whole number of GPUs, got {gpus_text!r}")
    if not text(form, "project"):
        errors.add("project", "choose the project the session is charged to")
    job = None
    if not errors:
        try:
            req = sessions.SessionRequest(
                project=text(form, "project"), gpus=int(gpus_text),
                walltime=text(form, "walltime") or "2h", qos=text(form, "qos") or "normal",
                gpu_type=text(form, "gpu_type") or None,
                workdir=text(form, "workdir") or None)
            job = sessions.start_session(db, user, req, clock=get_clock(request),
                                         settings=settings_of(request))
        except ValidationError as exc:
            errors = errors_from(exc, _ALIASES, fields=START_FIELDS)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, _ALIASES, fields=START_FIELDS)
    if errors or job is None:
        return _start_page(request, db, user, now, form, errors, status_code=422)
    return flash_redirect(
        request, f"/sessions/{job.id}",
        f"Session {job.id} submitted: JupyterLab opens here once the job runs. It "
        f"commits {job.gpus * job.walltime_s / 3600:.2f} GPU-hours until it ends.")


@router.get("/sessions/{session_id}")
def session_page(request: Request, session_id: int, user: User = Depends(portal_user),
                 db: Session = Depends(get_session),
                 now: datetime = Depends(get_now)) -> Response:
    job = sessions.own_session(db, user, session_id)
    slug = project_slugs(db, {job.project_id}).get(job.project_id, "?")
    ctx = {"title": f"Session {job.id}", "section": "notebooks",
           "s": _view(request, job, slug, now), "stderr_tail": ""}
    if job.state == JobState.FAILED.value:  # JupyterLab failed: its last words first
        logs = _log_chunks(request, db, user, job.id)
        ctx["stderr_tail"] = "\n".join(
            logs["stderr"]["text"].rstrip("\n").splitlines()[-STDERR_TAIL:])
    if request.headers.get("hx-request"):
        return render(request, "notebooks/_live.html", ctx)
    return render(request, "notebooks/detail.html", ctx)


@router.get("/sessions/{session_id}/stop")
def session_stop_confirm(request: Request, session_id: int,
                         user: User = Depends(portal_user), db: Session = Depends(get_session),
                         now: datetime = Depends(get_now)) -> Response:
    job = sessions.own_session(db, user, session_id)
    slug = project_slugs(db, {job.project_id}).get(job.project_id, "?")
    return render(request, "notebooks/stop.html", {
        "title": f"Stop session {job.id}", "section": "notebooks",
        "s": _view(request, job, slug, now)})


@router.post("/sessions/{session_id}/stop")
def session_stop(request: Request, session_id: int, user: User = Depends(portal_user),
                 db: Session = Depends(get_session)) -> Response:
    job = sessions.stop_session(db, user, session_id, clock=get_clock(request))
    return flash_redirect(
        request, f"/sessions/{job.id}",
        f"Session {job.id} is stopping: JupyterLab gets SIGTERM, then SIGKILL after "
        "the grace period. Its run is charged until it has ended.", kind="info")

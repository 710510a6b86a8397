"""Jobs: the list with filters (paginated; one indexed query plus a count), the detail with
state history, waiting reason and logs (htmx refresh while it runs), cancel, and the
submit form, which builds the same job spec as ``rechenwerk submit job.yaml``.

Validation, authorisation and budget checks are the jobs service's (``jobs.specs`` and
``jobs.service.submit_job``); log reading is ``jobs.logs.read_log``."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.access.visibility import only_visible
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.gpu_use import job_gpu_use
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.api.deps import (
    backend_of,
    get_clock,
    get_now,
    get_session,
    queue_orders_of,
    settings_of,
)
from rechenwerk.errors import NotFound, RechenwerkError
from rechenwerk.execution.gpu_use import describe_gpu_use
from rechenwerk.jobs import service as jobs
from rechenwerk.jobs.dependencies import dependencies_of, dependents_of
from rechenwerk.jobs.policy_config import qos_limits
from rechenwerk.jobs.queue_order import job_priority
from rechenwerk.jobs.specs import format_duration, parse_duration, parse_spec, walltime_error
from rechenwerk.jobs.states import TERMINAL_STATES, JobState
from rechenwerk.web.deps import form_data, portal_user
from rechenwerk.web.forms import FormErrors, errors_from, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

PAGE_SIZE = 50
PROJECT_SUGGESTIONS = 200
STDERR_TAIL = 12  # lines of stderr shown beside a failed job's state
LOG_TAIL_BYTES = 64 * 1024
STATES = [s.value for s in JobState]


def _visible_projects(db: Session, user: User, roles: tuple[str, ...] | None = None
                      ) -> list[Project]:
    """The projects ``user`` may see (the list's filter), or with ``roles`` only those
    where ``user`` has one of them. The latter holds for operators too, on purpose: the
    submit form offers the projects one works in, not every project of the centre."""
    if roles is None:
        return list(db.scalars(only_visible(select(Project).order_by(Project.slug),
                                            Project.id, db, user)))
    stmt = (select(Project).join(ProjectMembership, ProjectMembership.project_id == Project.id)
            .where(ProjectMembership.user_id == user.id).order_by(Project.slug))
    if roles:
        stmt = stmt.where(ProjectMembership.role.in_(roles))
    return list(db.scalars(stmt))


@router.get("/jobs")
def job_list(
    request: Request, project: str = "", state: str = "", mine: str = "", page: int = 1,
    sort: str = "-id", q: str = "",
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    page = max(page, 1)
    project = project.strip()
    project_error = ""
    try:
        items, total = jobs.list_jobs(
            db, user, project=project or None, states=[state] if state else (),
            mine=mine in ("1", "on", "true"), limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE, group_arrays=True, sort=sort, q=q)
    except NotFound as exc:
        if exc.field != "project":
            raise
        # a typed slug that names no project the user may see: say so beside the field
        project_error = f"no project {project!r} you may see; pick one from the list"
        items, total = [], 0
    # The field suggests one's own projects (all of them for most users; an operator
    # types any slug): a centre's 1,000 projects are not sent with every page.
    projects = _visible_projects(db, user, roles=())[:PROJECT_SUGGESTIONS]
    heads = [j.id for j in items if jobs.is_array_head(j)]
    counts = jobs.array_state_counts(db, heads)
    arrays = {aid: {"display": f"{aid}_[{info.expression}]",
                    "states": jobs.describe_array_states(counts.get(aid, {}))}
              for aid, info in jobs.array_infos(db, heads).items()}
    context = {
        "title": "Jobs", "section": "jobs", "jobs": items, "total": total, "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)), "first": (page - 1) * PAGE_SIZE + 1,
        "filters": {"project": project, "state": state, "mine": mine, "q": q},
        "project_error": project_error,
        "listing": {"sort": sort.removeprefix("-"), "descending": sort.startswith("-")},
        "sortable": True,
        "states": STATES, "project_options": [p.slug for p in projects],
        "slugs": jobs.project_slugs(db, {j.project_id for j in items}),
        "names": jobs.usernames(db, {j.user_id for j in items}), "now": now,
        "arrays": arrays,
        "can_submit": bool(_visible_projects(db, user, roles=tuple(jobs.SUBMIT_ROLES))),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "job-results":
        return render(request, "jobs/_results.html", context)  # htmx swaps 200s only
    return render(request, "jobs/list.html", context, status_code=404 if project_error else 200)


def _log_chunks(request: Request, db: Session, user: User, job_id: int) -> dict[str, Any]:
    """The tail of stdout and stderr (``jobs.logs.read_log``: the job's authorisation)."""
    from rechenwerk.job_files import UnsafeJobPath
    from rechenwerk.jobs.logs import read_log

    data_dir = Path(settings_of(request).data_dir)
    out: dict[str, Any] = {}
    for stream in ("stdout", "stderr"):
        # Reading from far past the end returns no data, only the file's size.
        try:
            probe = read_log(db, user, job_id, data_dir=data_dir, stream=stream,
                             offset=1 << 62, limit=0)
        except UnsafeJobPath as exc:  # the rest of the page still shows
            out[stream] = {"text": "", "truncated": False, "attempt": -1,
                           "error": exc.message}
            continue
        if probe.attempt < 1:  # never started: no log yet
            out[stream] = {"text": "", "truncated": False, "attempt": 0, "next_offset": 0}
            continue
        offset = max(probe.size - LOG_TAIL_BYTES, 0)
        chunk = read_log(db, user, job_id, data_dir=data_dir, stream=stream, offset=offset,
                         limit=LOG_TAIL_BYTES)
        out[stream] = {"text": chunk.data, "truncated": offset > 0, "attempt": chunk.attempt,
                       "next_offset": chunk.next_offset}
    return out


def _detail_context(request: Request, db: Session, user: User, job_id: int,
                    now: Any) -> dict[str, Any]:
    job = jobs.get_job(db, user, job_id)
    events = jobs.job_events(db, job)
    slug = jobs.project_slugs(db, {job.project_id}).get(job.project_id, "?")
    owner = jobs.usernames(db, {job.user_id}).get(job.user_id, "?")
    running = JobState(job.state) not in TERMINAL_STATES
    charged = float(db.scalar(select(func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0))
                              .where(UsageRecord.job_id == job.id)) or 0.0)
    import yaml

    spec_text = yaml.safe_dump(job.spec, sort_keys=False, allow_unicode=True)
    queue = None
    if job.state == JobState.PENDING.value:
        _job, queue = job_priority(db, user, job.id, backend=backend_of(request),
                                   clock=get_clock(request), settings=settings_of(request),
                                   board=queue_orders_of(request))
    logs = _log_chunks(request, db, user, job.id)
    # an ended job that did not complete: its last words first, where people look
    stderr_tail = ""
    if not running and job.state != JobState.COMPLETED.value:
        stderr_tail = "\n".join(logs["stderr"]["text"].rstrip("\n").splitlines()[-STDERR_TAIL:])
    gpu_use = job_gpu_use(db, job_id=job.id, attempt=job.attempt, gpus=job.gpus,
                          state=job.state)
    array: dict[str, Any] | None = None
    if jobs.is_array_head(job):
        info = jobs.array_infos(db, [job.id])[job.id]
        tasks = jobs.array_tasks(db, job)
        counts: dict[str, int] = {}
        for t in tasks:
            counts[t.state] = counts.get(t.state, 0) + 1
        array = {"display": f"{job.id}_[{info.expression}]", "tasks": tasks,
                 "states": jobs.describe_array_states(counts),
                 "live": sum(JobState(t.state) not in TERMINAL_STATES for t in tasks)}
    return {
        "array": array, "display_id": jobs.display_id(job),
        "queue": queue, "queue_entry": queue.entries[0] if queue else None,
        "title": f"Job {jobs.display_id(job)}", "section": "jobs", "job": job,
        "events": events,
        "project_slug": slug, "owner": owner, "running": running,
        "logs": logs, "spec_text": spec_text, "stderr_tail": stderr_tail,
        "run_time": format_duration(int((job.ended_at - job.started_at).total_seconds()))
        if job.started_at and job.ended_at else None,
        "dependencies": dependencies_of(db, user, job.id),
        "dependents": dependents_of(db, user, job.id),
        "gpu_use": gpu_use, "gpu_use_text": describe_gpu_use(gpu_use),
        "committed": job.gpus * job.walltime_s / 3600.0, "now": now, "charged": charged,
        "walltime": format_duration(job.walltime_s),
        "can_cancel": running and (user.is_operator or user.id == job.user_id
                                   or project_role(db, user, job.project_id) == "pi"),
    }


def project_role(db: Session, user: User, project_id: int) -> str | None:
    m = db.get(ProjectMembership, (project_id, user.id))
    return m.role if m else None


@router.get("/jobs/new")
def submit_form(
    request: Request, project: str = "", user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    form = {"project": project, "gpus": "1", "walltime": "1h", "qos": "normal",
            "idempotency_key": secrets.token_hex(8)}
    return _submit_page(request, db, user, now, form, FormErrors())


def _submit_page(request: Request, db: Session, user: User, now: Any, form: dict[str, str],
                 errors: FormErrors, status_code: int = 200) -> Response:
    projects = _visible_projects(db, user, roles=("pi", "member"))
    gpu_types: list[str] = []
    for p in projects:
        for period in project_balance(db, p, now).periods:
            if period.gpu_type not in gpu_types:
                gpu_types.append(period.gpu_type)
    return render(request, "jobs/new.html", {
        "title": "Submit a job", "section": "submit", "form": form, "errors": errors,
        "project_options": [(p.slug, f"{p.slug} — {p.title}") for p in projects],
        "qos_options": [(q, f"{q} (walltime up to {format_duration(s)})")
                        for q, s in qos_limits(settings_of(request)).items()],
        "gpu_type_options": [("", "any (the project's award decides)")]
        + [(g, g) for g in gpu_types],
    }, status_code=status_code)


def spec_from_form(form: dict[str, str]) -> tuple[dict[str, Any], FormErrors]:
    """The job spec document a form describes (the same fields as a job YAML file).
    Only text-to-value conversion happens here; ``parse_spec`` validates."""
    errors = FormErrors()
    doc: dict[str, Any] = {}
    for name in ("name", "project", "workdir", "gpu_type", "walltime", "qos",
                 "checkpoint_interval", "idempotency_key"):
        value = text(form, name)
        if value:
            doc[name] = value
    for name in ("gpus", "nodes", "gpus_per_node"):
        value = text(form, name)
        if value:
            try:
                doc[name] = int(value)
            except ValueError:
                errors.add(name, f"must be a whole number, got {value!r}")
    kind = text(form, "kind") or "command"
    body = form.get("command", "").strip()
    if kind == "script":
        if body:
            doc["script"] = body.replace("\r\n", "\n") + "\n"
    elif body:
        try:
            doc["command"] = shlex.split(body)
        except ValueError as exc:
            errors.add("command", f"cannot be split into arguments: {exc}")
    env: dict[str, str] = {}
    for n, line in enumerate(form.get("env", "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.strip().partition("=")
        if not sep:
            errors.add("env", f"line {n}: write KEY=VALUE, got {line.strip()!r}")
            continue
        env[key.strip()] = value.strip()
    if env:
        doc["env"] = env
    after_ok = [i.strip() for i in text(form, "after_ok").split(",") if i.strip()]
    if after_ok:  # a pipeline step: the form offers after_ok, the spec all kinds
        doc["depends_on"] = {"after_ok": after_ok}
    return doc, errors


JOB_FIELDS = {"name", "project", "kind", "command", "gpus", "nodes", "gpus_per_node", "gpu_type",
              "walltime", "qos", "checkpoint_interval", "workdir", "env", "after_ok"}
_FIELD_ALIASES = {"walltime_s": "walltime", "checkpoint_interval_s": "checkpoint_interval",
                  "script": "command", "(spec)": "_form",
                  "depends_on": "after_ok", "depends_on.after_ok": "after_ok"}


@router.post("/jobs/new")
def submit_job(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    doc, errors = spec_from_form(form)
    job = None
    settings = settings_of(request)
    try:
        # validated even when some fields did not convert, so every mistake comes back in
        # one round (a field that did not convert keeps its conversion message)
        spec = parse_spec(doc, source="job form")
    except RechenwerkError as exc:
        errors.merge(errors_from(exc, _FIELD_ALIASES, fields=JOB_FIELDS))
        # the QOS walltime limit too, when the walltime and QOS themselves are valid
        if "walltime" in doc and not {"walltime", "qos"} & set(errors):
            try:
                too_long = walltime_error(parse_duration(doc["walltime"]),
                                          str(doc.get("qos", "normal")), qos_limits(settings))
            except ValueError:
                too_long = None  # the spec's own check said so
            if too_long is not None:
                errors.merge(errors_from(too_long, fields=JOB_FIELDS))
    else:
        if errors:  # some fields did not convert: the centre's limits are checked still
            try:
                jobs.check_centre_limits(spec, settings)
            except RechenwerkError as exc:
                errors.merge(errors_from(exc, _FIELD_ALIASES, fields=JOB_FIELDS))
        else:
            try:
                result = jobs.submit_job(db, user, spec, clock=get_clock(request),
                                         settings=settings)
                job = result.job
            except RechenwerkError as exc:
                db.rollback()
                errors = errors_from(exc, _FIELD_ALIASES, fields=JOB_FIELDS)
    if errors or job is None:
        return _submit_page(request, db, user, now, form, errors, status_code=422)
    response = RedirectResponse(f"/jobs/{job.id}", status_code=303)
    set_flash(response, settings_of(request), "success",
              f"Job {job.id} submitted: it commits {job.gpus * job.walltime_s / 3600:.2f} "
              "GPU-hours until it ends and its real use is charged.")
    return response


@router.get("/jobs/{job_id}")
def job_detail(
    request: Request, job_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    ctx = _detail_context(request, db, user, job_id, now)
    if request.headers.get("hx-request"):
        return render(request, "jobs/_live.html", ctx)
    return render(request, "jobs/detail.html", ctx)


@router.post("/jobs/{job_id}/cancel")
def job_cancel(
    request: Request, job_id: int, user: User = Depends(portal_user),
    db: Session = Depends(get_session),
) -> Response:
    job = jobs.cancel(db, user, job_id, clock=get_clock(request))
    response = RedirectResponse(f"/jobs/{job.id}", status_code=303)
    what = (f"every task of array {job.id}" if jobs.is_array_head(job)
            else f"job {jobs.display_id(job)}")
    set_flash(response, settings_of(request), "info", f"Cancellation of {what} requested.")
    return response

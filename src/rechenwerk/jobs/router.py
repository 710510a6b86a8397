"""REST API for jobs, the queue, nodes and project balances (thin; rules in service.py).

Members see their projects' jobs, logs and balances (others get 404); operators see all
and may drain and resume nodes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rechenwerk.access.accounts import resolve_account
from rechenwerk.access.models import User
from rechenwerk.access.projects import visible_project
from rechenwerk.accounting import pay_per_use as ppu
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.gpu_use import job_gpu_use
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.api.deps import (
    CurrentUser,
    DbSession,
    Now,
    Operator,
    backend_of,
    get_clock,
    inventory_of,
    queue_orders_of,
    runtime_of,
    settings_of,
)
from rechenwerk.jobs import reservations, service
from rechenwerk.jobs.dependencies import dependencies_of, dependents_of
from rechenwerk.jobs.logs import MAX_LOG_CHUNK, read_log
from rechenwerk.jobs.models import Job, JobArray
from rechenwerk.jobs.nodes import list_nodes, set_drained
from rechenwerk.jobs.queue_order import OrderedQueue, job_priority, ordered_queue
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.jobs.statements import account_statement as account_statement_of
from rechenwerk.scheduling.model import PriorityFactors

router = APIRouter(prefix="/api/v1", tags=["jobs"])


def job_dict(job: Job, project: str, user: str, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "kind": job.kind,  # batch, or jupyterlab (an interactive session)
        "project": project,
        "user": user,
        "state": job.state,
        "qos": job.qos,
        "requested_qos": job.requested_qos,
        "over_budget": job.over_budget,
        "gpus": job.gpus,
        "nodes": job.nodes,
        "gpus_per_node": job.gpus_per_node,
        "gpu_type": job.gpu_type,
        "walltime_s": job.walltime_s,
        "reason_code": job.reason_code,
        "reason": job.reason,
        "attempt": job.attempt,
        "placement": job.placement,
        "exit_code": job.exit_code,
        "submitted_at": job.submitted_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
        "cancel_requested": job.cancel_requested_at is not None,
        "idempotency_key": job.idempotency_key,
        "committed_gpu_hours": round(job.gpus * job.walltime_s / 3600.0, 6),
        # charged to a pay-per-use account (None: an award period), at this price
        "account_id": job.account_id,
        "eur_per_gpu_hour": (None if job.price_e4_per_gpu_hour is None
                             else ppu.price_text(job.price_e4_per_gpu_hour)),
        "committed_eur": (None if job.price_e4_per_gpu_hour is None else ppu.eur_plain(
            ppu.job_max_cents(job.gpus, job.walltime_s, job.price_e4_per_gpu_hour))),
        # the forecast (pending jobs only; it assumes running jobs end at their walltime)
        "expected_start": (job.expected_start_at.isoformat()
                           if job.expected_start_at and job.state == "pending" else None),
        "reservation": (job.spec or {}).get("reservation"),
        # several clusters: where it runs (None: not yet, or the centre's one cluster)
        # and the one it named (None: routed)
        "cluster": job.cluster,
        "requested_cluster": job.requested_cluster,
    }
    if job.array_job_id is not None:  # a task of a job array
        out["display_id"] = f"{job.array_job_id}_{job.array_task_id}"
        out["array_job_id"] = job.array_job_id
        out["array_task_id"] = job.array_task_id
    if detail:
        out["spec"] = job.spec
        out["backend"] = job.backend
        out["backend_handle"] = job.backend_handle
        out["attained_gpu_s"] = job.attained_gpu_s
    return out


def _dicts(session: Session, jobs: list[Job], *, arrays: bool = False) -> list[dict[str, Any]]:
    """The jobs as dicts; ``arrays``: an array's first task stands for its array (the
    ``array`` summary: expression, limit, tasks per state)."""
    slugs = service.project_slugs(session, {j.project_id for j in jobs})
    users = service.usernames(session, {j.user_id for j in jobs})
    out = [job_dict(j, slugs.get(j.project_id, "?"), users.get(j.user_id, "?")) for j in jobs]
    if arrays:
        heads = [j.id for j in jobs if service.is_array_head(j)]
        infos = service.array_infos(session, heads)
        counts = service.array_state_counts(session, heads)
        for item, job in zip(out, jobs, strict=True):
            if job.id in infos:
                item["array"] = array_summary(infos[job.id], counts.get(job.id, {}))
    return out


def array_summary(info: JobArray, counts: dict[str, int]) -> dict[str, Any]:
    """``123_[0-99%10]`` and how many tasks are in each state."""
    return {"id": info.id, "display_id": f"{info.id}_[{info.expression}]",
            "expression": info.expression, "task_count": info.task_count,
            "task_limit": info.task_limit, "states": dict(sorted(counts.items()))}


def _dicts_detail(session: Session, job: Job, viewer: User, *,
                  tasks: bool = True) -> dict[str, Any]:
    slugs = service.project_slugs(session, {job.project_id})
    users = service.usernames(session, {job.user_id})
    out = job_dict(job, slugs.get(job.project_id, "?"), users.get(job.user_id, "?"),
                   detail=True)
    # What it waits for (a job of a project the viewer cannot see: id and kind only) and
    # the visible jobs that wait for it.
    out["dependencies"] = [{"kind": d.kind, "job_id": d.job_id, "state": d.state}
                           for d in dependencies_of(session, viewer, job.id)]
    out["dependents"] = dependents_of(session, viewer, job.id)
    # how much of its GPUs its last run used (docs/jobs.md "GPU use"); None: never ran
    out["gpu_use"] = job_gpu_use(session, job_id=job.id, attempt=job.attempt,
                                 gpus=job.gpus, state=job.state)
    if tasks and service.is_array_head(job):
        info = service.array_infos(session, [job.id])[job.id]
        rows = service.array_tasks(session, job)
        counts: dict[str, int] = {}
        for t in rows:
            counts[t.state] = counts.get(t.state, 0) + 1
        out["array"] = array_summary(info, counts)
        out["tasks"] = [{"id": t.id, "display_id": service.display_id(t),
                         "array_task_id": t.array_task_id, "state": t.state,
                         "reason": t.reason, "exit_code": t.exit_code,
                         "started_at": t.started_at.isoformat() if t.started_at else None,
                         "ended_at": t.ended_at.isoformat() if t.ended_at else None}
                        for t in rows]
    # what its settled runs were charged (every run of a requeued job)
    out["charged_gpu_hours"] = float(session.scalar(
        select(func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0))
        .where(UsageRecord.job_id == job.id)) or 0.0)
    out["events"] = [
        {"at": e.at.isoformat(), "from": e.from_state, "to": e.to_state, "reason": e.reason}
        for e in service.job_events(session, job)
    ]
    return out


@router.post("/jobs", status_code=201, response_model=None)
async def submit_job(
    request: Request,
    session: DbSession,
    user: CurrentUser,
    document: dict[str, Any] = Body(..., description="A job spec (see docs/jobs.md)."),
) -> Response:
    """Submit a job (201). With an ``idempotency_key`` already used by this user, the first
    job is returned (200) and nothing new is stored.

    The transaction (lock, key lookup, balance, inserts, commit) runs in ONE thread-pool
    call and the job is serialised once with ``json`` (no response-model pass): on this
    hot path FastAPI's per-call machinery cost more than the work. An error anywhere rolls
    the request's transaction back (``get_session``) and becomes a problem response."""
    spec = parse_spec(document)  # pure validation: on the event loop, no I/O
    clock, settings = get_clock(request), settings_of(request)

    def transact() -> tuple[bool, bytes]:
        result = service.submit_job(session, user, spec, clock=clock, settings=settings)
        out = job_dict(result.job, result.project, user.username)
        out["created"] = result.created
        if result.job.array_job_id is not None:
            out["tasks"] = result.tasks
            info = service.array_infos(session, [result.job.array_job_id]).get(
                result.job.array_job_id)
            if info is not None:
                out["array"] = array_summary(info, {})
                del out["array"]["states"]  # a submission answers before any task moved
        # Commit in this thread-pool call rather than in get_session's own (one hop less
        # on the hottest path); get_session then finds the session idle. The commit
        # wakes the scheduler (jobs/wakeup.py).
        session.commit()
        return result.created, json.dumps(out, separators=(",", ":")).encode()

    created, body = await run_in_threadpool(transact)
    return Response(body, status_code=201 if created else 200, media_type="application/json")


@router.get("/jobs")
def list_jobs(
    session: DbSession,
    user: CurrentUser,
    project: str | None = None,
    state: list[str] = Query(default_factory=list),
    mine: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    expand: bool = Query(False, description="List every task of job arrays (default: "
                         "one row per array, with its tasks per state)."),
    sort: str = Query("-id", max_length=20, description="id, name, state, gpus or "
                      "submitted; prefix - for descending (default: newest first)."),
    q: str = Query("", max_length=200, description="Jobs whose name contains this (or "
                   "whose id it is)."),
) -> dict[str, Any]:
    states = [s for item in state for s in item.split(",") if s]
    jobs, total = service.list_jobs(session, user, project=project, states=states, mine=mine,
                                    limit=limit, offset=offset, group_arrays=not expand,
                                    sort=sort, q=q)
    return {"items": _dicts(session, jobs, arrays=not expand), "total": total,
            "limit": limit, "offset": offset}


@router.get("/jobs/{job_id}")
def show_job(job_id: int, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    return _dicts_detail(session, service.get_job(session, user, job_id), user)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: int, request: Request, session: DbSession,
               user: CurrentUser) -> dict[str, Any]:
    """Cancel a job; an array's id (its first task) cancels every task of the array."""
    job = service.cancel(session, user, job_id, clock=get_clock(request))
    return _dicts(session, [job], arrays=True)[0]


@router.get("/jobs/{array_job_id}/tasks/{index}")
def show_task(array_job_id: int, index: int, session: DbSession,
              user: CurrentUser) -> dict[str, Any]:
    """Task ``index`` of job array ``array_job_id`` (``123_4``)."""
    return _dicts_detail(session, service.get_task(session, user, array_job_id, index), user,
                         tasks=False)


@router.post("/jobs/{array_job_id}/tasks/{index}/cancel")
def cancel_task(array_job_id: int, index: int, request: Request, session: DbSession,
                user: CurrentUser) -> dict[str, Any]:
    """Cancel one task of an array (``POST /jobs/{id}/cancel`` cancels all of them)."""
    job = service.cancel_task(session, user, array_job_id, index, clock=get_clock(request))
    return _dicts(session, [job])[0]


@router.get("/jobs/{job_id}/logs")
def job_logs(
    job_id: int,
    request: Request,
    session: DbSession,
    user: CurrentUser,
    stream: Literal["stdout", "stderr"] = "stdout",
    offset: int = Query(0, ge=0),
    attempt: int | None = Query(None, ge=1),
    limit: int = Query(MAX_LOG_CHUNK, ge=1, le=MAX_LOG_CHUNK),
) -> dict[str, Any]:
    """A chunk of the job's log from byte ``offset``; ``next_offset`` continues it and
    ``complete`` tells a follower (``logs -f``) that nothing more will come."""
    chunk = read_log(session, user, job_id, data_dir=Path(settings_of(request).data_dir),
                     stream=stream, offset=offset, attempt=attempt, limit=limit)
    return chunk.to_dict()


def _priority_dict(f: PriorityFactors | None) -> dict[str, float] | None:
    if f is None:
        return None
    return {"total": round(f.total, 3), "age": round(f.age, 3),
            "fairshare": round(f.fairshare, 3), "jobsize": round(f.jobsize, 3),
            "qos": round(f.qos, 3)}


def _queue_dict(session: Session, q: OrderedQueue) -> dict[str, Any]:
    items = _dicts(session, [e.job for e in q.entries])
    for item, e in zip(items, q.entries, strict=True):
        item["position"] = e.position
        item["priority"] = _priority_dict(e.priority)
    return {"items": items, "total": len(items), "queue_length": q.length,
            "policy": q.policy, "order": q.order,
            # the scheduler cycle whose order this is (None: computed for this request)
            "as_of": q.as_of.isoformat() if q.as_of is not None else None}


@router.get("/queue")
def queue(request: Request, session: DbSession, user: CurrentUser,
          project: str | None = None) -> dict[str, Any]:
    """Pending jobs in the order the configured policy considers them (``position`` counts
    every pending job of the centre), each with its priority term by term (``sprio``)."""
    q = ordered_queue(session, user, backend=backend_of(request), clock=get_clock(request),
                      settings=settings_of(request), project=project,
                      board=queue_orders_of(request))
    return _queue_dict(session, q)


@router.get("/jobs/{job_id}/priority")
def priority(job_id: int, request: Request, session: DbSession,
             user: CurrentUser) -> dict[str, Any]:
    """A pending job's queue position and priority factors (409 when it is not pending)."""
    _job, q = job_priority(session, user, job_id, backend=backend_of(request),
                           clock=get_clock(request), settings=settings_of(request),
                           board=queue_orders_of(request))
    out = _queue_dict(session, q)
    item = out["items"][0]
    return {"job": item["id"], "position": item["position"], "priority": item["priority"],
            "queue_length": out["queue_length"], "policy": out["policy"],
            "order": out["order"], "as_of": out["as_of"]}


@router.get("/projects/{ref}/balance")
def balance(ref: str, session: DbSession, user: CurrentUser, now: Now) -> dict[str, Any]:
    project = visible_project(session, user, ref)
    return project_balance(session, project, now).to_dict()


@router.get("/accounts/{ref}/balance", summary="Live EUR balance of a pay-per-use account")
def account_balance(ref: str, session: DbSession, user: CurrentUser, now: Now) -> dict[str, Any]:
    """Credit limit, settled, committed and remaining (EUR strings and integer cents);
    ``ref`` is the account id or its project's slug."""
    return ppu.account_balance(session, resolve_account(session, user, ref), now).to_dict()


@router.get("/accounts/{ref}/statement", summary="Monthly statement of a pay-per-use account",
            response_model=None)
def account_statement(ref: str, session: DbSession, user: CurrentUser,
                      month: str = Query(description="YYYY-MM (UTC)", max_length=7),
                      format: Literal["json", "csv", "pdf"] = "json") -> dict[str, Any] | Response:
    """Every run charged in the month (by its end), totals, opening and closing balance;
    as JSON, CSV or a PDF document."""
    statement = account_statement_of(session, resolve_account(session, user, ref), month)
    if format == "pdf":
        from rechenwerk.jobs.statement_pdf import statement_pdf

        name = f"statement-{statement.project}-{statement.month}.pdf"
        return Response(statement_pdf(statement), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    if format == "csv":
        name = f"statement-{statement.project}-{statement.month}.csv"
        return Response(statement.to_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return statement.to_dict()


@router.get("/clusters")
def clusters(request: Request, user: CurrentUser,
             check: bool = Query(False, description="Operators: ask each cluster now.")
             ) -> dict[str, Any]:
    """The centre's clusters (RECHENWERK_CLUSTERS; docs/slurm.md, "Several clusters ..."):
    name, executor, GPU types, partitions; for operators also whether each answers,
    why not and since when, as this server's scheduler loop last saw it (``check``:
    asked now)."""
    runtime = runtime_of(request)
    registry = runtime.clusters
    operator = bool(user.is_operator)
    if check and operator:
        from rechenwerk.execution.base import Pingable

        for name in registry.names:
            try:
                backend = registry.backend(name)
                if isinstance(backend, Pingable):
                    backend.ping()
            except Exception as exc:
                msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                registry.mark_unavailable(name, str(msg)[:300], runtime.clock.now())
            else:
                registry.mark_available(name, runtime.clock.now())
    items = []
    for name, spec in registry.specs.items():
        item: dict[str, Any] = {
            "name": name, "executor": spec.executor,
            "gpu_types": sorted(spec.offered_gpu_types or ()) or None,
            "partitions": list(spec.partitions)}
        if operator:
            status = registry.status(name)
            item.update(available=status.available, reason=status.reason,
                        since=status.since.isoformat() if status.since else None)
        items.append(item)
    return {"items": items, "several": registry.several}


@router.get("/nodes")
def nodes(request: Request, session: DbSession, user: Operator) -> dict[str, Any]:
    views = list_nodes(session, inventory_of(request))
    return {"items": [v.to_dict() for v in views],
            "total_gpus": sum(v.gpus for v in views),
            "used_gpus": sum(v.used_gpus for v in views)}


class DrainRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


@router.post("/nodes/{name}/drain")
def drain(name: str, request: Request, session: DbSession, user: Operator, now: Now,
          body: DrainRequest | None = None) -> dict[str, Any]:
    view = set_drained(session, user, name, drained=True,
                               reason=body.reason if body else None,
                               inventory=inventory_of(request), now=now)
    return view.to_dict()


@router.post("/nodes/{name}/resume")
def resume(name: str, request: Request, session: DbSession, user: Operator,
           now: Now) -> dict[str, Any]:
    view = set_drained(session, user, name, drained=False, reason=None,
                               inventory=inventory_of(request), now=now)
    return view.to_dict()


# -- advance reservations (issue 16): operators write, users list theirs --------------


class ReservationIn(BaseModel):
    """Either ``nodes`` (held whole) or ``gpus`` (a count, optionally of ``gpu_type``);
    either ``projects`` or ``maintenance``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    start: datetime
    end: datetime
    projects: list[str] = Field(default_factory=list, max_length=100)
    maintenance: bool = False
    gpus: int | None = Field(default=None, ge=1, le=1_000_000)
    gpu_type: str | None = Field(default=None, max_length=64)
    nodes: list[str] = Field(default_factory=list, max_length=10_000)


@router.post("/reservations", status_code=201, tags=["reservations"])
def create_reservation(body: ReservationIn, request: Request, session: DbSession,
                       user: Operator, now: Now) -> dict[str, Any]:
    req = reservations.ReservationRequest(
        name=body.name, starts_at=body.start, ends_at=body.end,
        projects=tuple(body.projects), maintenance=body.maintenance, gpus=body.gpus,
        gpu_type=body.gpu_type, nodes=tuple(body.nodes))
    from rechenwerk.jobs.slurm_reservations import inventory_for_reservations

    inventory = inventory_of(request) or inventory_for_reservations(backend_of(request))
    rec = reservations.create(session, req, inventory=inventory, now=now, by=user.username)
    return reservations.as_dict(rec, list(body.projects), detail=True)


@router.get("/reservations", tags=["reservations"])
def list_reservations(session: DbSession, user: CurrentUser, now: Now,
                      ended: bool = False) -> dict[str, Any]:
    """Current reservations (``ended=true``: also past ones) that concern the caller."""
    return {"items": reservations.visible(session, user, now, include_ended=ended)}


@router.delete("/reservations/{name}", status_code=204, tags=["reservations"])
def delete_reservation(name: str, session: DbSession, user: Operator) -> None:
    reservations.delete(session, name)

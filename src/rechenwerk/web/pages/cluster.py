"""Operator views of the machine: nodes x GPUs (busy, idle, drained) with the job on each
GPU, drain/resume, and the queue in scheduling order with every job's waiting reason.

Node inventory and drain state come from the jobs service (``list_nodes``,
``set_drained``) over the backend's inventory, exactly as ``/api/v1/nodes``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import User
from rechenwerk.api.deps import (
    backend_of,
    get_clock,
    get_now,
    get_session,
    inventory_of,
    queue_orders_of,
    settings_of,
)
from rechenwerk.jobs import service as jobs
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.nodes import list_nodes, set_drained
from rechenwerk.jobs.queue_order import QueueEntry, queue_slots
from rechenwerk.web.deps import form_data, operator_user
from rechenwerk.web.forms import text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def cluster_view(request: Request, db: Session) -> dict[str, Any]:
    nodes = list_nodes(db, inventory_of(request))
    job_ids = {j for n in nodes for j in n.jobs}
    running = {j.id: j for j in db.scalars(select(Job).where(Job.id.in_(job_ids)))} \
        if job_ids else {}
    slugs = jobs.project_slugs(db, {j.project_id for j in running.values()})
    rows = []
    for n in nodes:
        owner: dict[int, Job] = {}
        for jid in n.jobs:
            placed = running.get(jid)
            if placed is None:
                continue
            for node, idx in placed.placement or []:
                if node == n.name:
                    for g in idx:
                        owner[int(g)] = placed
        gpus = []
        for g in range(n.gpus):
            job = owner.get(g)
            state = "busy" if job else ("drained" if n.drained else "idle")
            title = (f"GPU {g}: job {job.id} {job.name} ({slugs.get(job.project_id, '?')})"
                     if job else f"GPU {g}: {state}")
            gpus.append({"index": g, "state": state, "title": title,
                         "job": job.id if job else None})
        rows.append({"node": n, "gpus": gpus,
                     "state": "drained" if n.drained else ("busy" if n.used_gpus else "idle")})
    total = sum(n.gpus for n in nodes)
    busy = sum(n.used_gpus for n in nodes)
    drained = sum(n.gpus - n.used_gpus for n in nodes if n.drained)
    return {"rows": rows, "total": total, "busy": busy, "drained": drained,
            "idle": total - busy - drained}


def cluster_summary(request: Request, db: Session) -> dict[str, Any]:
    view = cluster_view(request, db)
    counts = dict(db.execute(select(Job.state, func.count()).where(
        Job.state.in_(("pending", "running", "starting"))).group_by(Job.state)).all())
    return {"total": view["total"], "busy": view["busy"], "drained": view["drained"],
            "pending": int(counts.get("pending", 0)),
            "running": int(counts.get("running", 0)) + int(counts.get("starting", 0)),
            "drained_nodes": [r["node"].name for r in view["rows"] if r["node"].drained]}


@router.get("/ops/cluster")
def cluster_page(
    request: Request, user: User = Depends(operator_user), db: Session = Depends(get_session),
) -> Response:
    view = cluster_view(request, db)
    ctx = {"title": "Cluster", "section": "cluster", **view}
    if request.headers.get("hx-request"):
        return render(request, "ops/_nodes.html", ctx)
    from rechenwerk.jobs.reservations import visible

    ctx["reservations"] = visible(db, user, get_now(request))
    return render(request, "ops/cluster.html", ctx)


@router.post("/ops/nodes/{name}/{action}")
def node_drain(
    request: Request, name: str, action: str, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    from rechenwerk.errors import NotFound

    if action not in ("drain", "resume"):
        raise NotFound(f"unknown node action {action!r}", hint="Use drain or resume.")
    set_drained(db, user, name, drained=action == "drain",
                     reason=text(form, "reason") or None, inventory=inventory_of(request),
                     now=now)
    response = RedirectResponse("/ops/cluster", status_code=303)
    what = "drained: running jobs finish, nothing new starts" if action == "drain" \
        else "resumed"
    set_flash(response, settings_of(request), "success", f"Node {name} {what}.")
    return response


QUEUE_PAGE = 100


@router.get("/ops/queue")
def queue_page(
    request: Request, project: str = "", q: str = "", page: int = Query(1, ge=1),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    # The last scheduler cycle's order (else computed now); job rows for the page only.
    queue = queue_slots(db, user, backend=backend_of(request), clock=get_clock(request),
                        settings=settings_of(request), project=project or None,
                        board=queue_orders_of(request))
    slots = queue.slots
    needle = q.strip().lower()[:200]
    if needle:
        # the order is the whole queue's (positions stay); the search only picks rows
        slugs_all = jobs.project_slugs(db, {s.project_id for s in slots})
        names_all = jobs.usernames(db, {s.user_id for s in slots})
        slots = [s for s in slots if needle in " ".join((
            str(s.job_id), s.name, slugs_all.get(s.project_id, ""),
            names_all.get(s.user_id, ""))).lower()]
    pages = max(1, -(-len(slots) // QUEUE_PAGE))
    page = min(page, pages)
    shown = slots[(page - 1) * QUEUE_PAGE:page * QUEUE_PAGE]
    rows = {j.id: j for j in db.scalars(select(Job).where(
        Job.id.in_([s.job_id for s in shown])))} if shown else {}
    # a job that left the queue between the two queries is not shown
    entries = [QueueEntry(rows[s.job_id], s.position, s.priority) for s in shown
               if s.job_id in rows and rows[s.job_id].state == "pending"]
    return render(request, "ops/queue.html", {
        "title": "Queue", "section": "queue", "entries": entries, "total": len(queue.slots),
        "order": queue.order, "length": queue.length, "as_of": queue.as_of,
        "slugs": jobs.project_slugs(db, {e.job.project_id for e in entries}),
        "names": jobs.usernames(db, {e.job.user_id for e in entries}), "now": now,
        "project": project, "q": q,
        "listing": {"total": len(slots), "page": page, "pages": pages},
    })

"""Advance reservations in the store: operators create, list and delete them; users see
the ones that concern them; the scheduler loop reads them into its snapshot.

A reservation holds GPUs for a window, either named nodes (all their GPUs) or a count of
GPUs (of a type), packed onto the fewest nodes when it is created
(``scheduling.reservations.resolve_gpus``); a creation that would exceed the inventory
beside the reservations it overlaps is refused, in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from rechenwerk.access.models import Project, ProjectMembership, User
from rechenwerk.clock import ensure_utc
from rechenwerk.errors import Conflict, InvalidInput, NotFound
from rechenwerk.execution.base import NodeInventory
from rechenwerk.jobs.models import ReservationRecord
from rechenwerk.scheduling.model import Node, Reservation
from rechenwerk.scheduling.reservations import ReservationError, resolve_gpus

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# a start this far in the past still counts as "now" (clocks of CLI and server differ)
START_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class ReservationRequest:
    name: str
    starts_at: datetime
    ends_at: datetime
    projects: tuple[str, ...] = ()
    maintenance: bool = False
    gpus: int | None = None
    gpu_type: str | None = None
    nodes: tuple[str, ...] = ()


def to_core(rec: ReservationRecord, slugs: dict[int, str]) -> Reservation:
    return Reservation(
        name=rec.name,
        start=ensure_utc(rec.starts_at).timestamp(),
        end=ensure_utc(rec.ends_at).timestamp(),
        gpus=tuple((str(n), int(k)) for n, k in rec.gpus),
        projects=frozenset(slugs[p] for p in rec.project_ids if p in slugs),
        maintenance=rec.maintenance,
    )


def project_slugs(session: Session) -> dict[int, str]:
    return {int(i): str(s) for i, s in session.execute(select(Project.id, Project.slug))}



def current(session: Session, now: datetime) -> list[ReservationRecord]:
    """Reservations that have not ended, by start."""
    return list(session.scalars(
        select(ReservationRecord).where(ReservationRecord.ends_at > now)
        .order_by(ReservationRecord.starts_at, ReservationRecord.name)))


def core_reservations(session: Session, now: datetime) -> tuple[Reservation, ...]:
    """What the scheduling core plans around (the snapshot's ``reservations``)."""
    recs = current(session, now)
    if not recs:
        return ()
    slugs = project_slugs(session)
    return tuple(to_core(r, slugs) for r in recs)


def create(session: Session, req: ReservationRequest, *, inventory: Sequence[NodeInventory],
           now: datetime, by: str) -> ReservationRecord:
    """Validate and store one reservation (the caller commits)."""
    if not NAME.match(req.name):
        raise InvalidInput(
            f"invalid reservation name {req.name!r}", field="name",
            hint="1-64 characters: letters, digits, '.', '_', '-'; starting with a letter "
                 "or digit")
    start, end = ensure_utc(req.starts_at), ensure_utc(req.ends_at)
    if end <= start:
        raise InvalidInput("the reservation ends before it starts", field="end")
    if end <= now:
        raise InvalidInput("the reservation's window is in the past", field="end")
    if start < now - START_SLACK:
        raise InvalidInput("the reservation starts in the past", field="start",
                           hint="give a start from now on ('now' for immediately)")
    if req.maintenance and req.projects:
        raise InvalidInput("a maintenance reservation runs no jobs: give no projects",
                           field="projects")
    if not req.maintenance and not req.projects:
        raise InvalidInput("give the projects the reservation is for, or maintenance",
                           field="projects")
    project_ids: list[int] = []
    for slug in req.projects:
        pid = session.scalar(select(Project.id).where(Project.slug == slug))
        if pid is None:
            raise InvalidInput(f"unknown project {slug!r}", field="projects")
        project_ids.append(int(pid))
    if not inventory:
        raise InvalidInput("this backend has no node inventory to reserve from")
    if session.get_bind().dialect.name == "postgresql":
        # creations are serialised: two overlapping ones cannot both pass the check
        session.execute(text("LOCK TABLE reservations IN SHARE ROW EXCLUSIVE MODE"))
    if session.scalar(select(ReservationRecord.id).where(ReservationRecord.name == req.name)):
        raise Conflict(f"a reservation named {req.name!r} exists", field="name")
    nodes = [Node(n.name, n.gpus, n.gpu_type, n.block) for n in inventory]
    slugs = project_slugs(session)
    existing = [to_core(r, slugs) for r in current(session, now)]
    try:
        gpus = resolve_gpus(nodes, existing, start.timestamp(), end.timestamp(),
                            count=req.gpus, gpu_type=req.gpu_type, node_names=req.nodes)
    except ReservationError as exc:
        raise InvalidInput(str(exc), field="nodes" if req.nodes else "gpus") from None
    rec = ReservationRecord(
        name=req.name, starts_at=start, ends_at=end, maintenance=req.maintenance,
        project_ids=project_ids, gpu_type=req.gpu_type, requested_gpus=req.gpus,
        gpus=[[n, k] for n, k in gpus], created_by=by, created_at=now)
    session.add(rec)
    session.flush()
    return rec


def delete(session: Session, name: str) -> ReservationRecord:
    rec = session.scalar(select(ReservationRecord).where(ReservationRecord.name == name))
    if rec is None:
        raise NotFound(f"no reservation named {name!r}")
    session.delete(rec)
    session.flush()
    return rec


def _member_projects(session: Session, user: User) -> set[int]:
    return {int(p) for p in session.scalars(
        select(ProjectMembership.project_id).where(ProjectMembership.user_id == user.id))}


def visible(session: Session, user: User, now: datetime,
            include_ended: bool = False) -> list[dict[str, Any]]:
    """The reservations ``user`` may see, as API dicts: operators all; others maintenance
    reservations and those of their own projects, naming only their own projects."""
    stmt = select(ReservationRecord).order_by(ReservationRecord.starts_at,
                                              ReservationRecord.name)
    if not include_ended:
        stmt = stmt.where(ReservationRecord.ends_at > now)
    slugs = project_slugs(session)
    mine = None if user.is_operator else _member_projects(session, user)
    out = []
    for rec in session.scalars(stmt):
        if mine is not None and not rec.maintenance and not mine & set(rec.project_ids):
            continue
        shown = [p for p in rec.project_ids if mine is None or p in mine]
        out.append(as_dict(rec, [slugs.get(p, "?") for p in shown], detail=mine is None))
    return out


def as_dict(rec: ReservationRecord, projects: list[str], *, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": rec.name,
        "start": ensure_utc(rec.starts_at).isoformat(),
        "end": ensure_utc(rec.ends_at).isoformat(),
        "maintenance": rec.maintenance,
        "projects": projects,
        "gpu_type": rec.gpu_type,
        "gpus": sum(int(k) for _, k in rec.gpus),
        "nodes": [{"node": n, "gpus": int(k)} for n, k in rec.gpus],
    }
    if detail:
        out["created_by"] = rec.created_by
        out["created_at"] = ensure_utc(rec.created_at).isoformat()
    return out


def check_job_reservation(session: Session, name: str, project_id: int, project_slug: str,
                          now: datetime) -> None:
    """A job may ask only for a current reservation of its project. The same message
    whether it does not exist or belongs to others (nothing leaks)."""
    rec = session.scalar(select(ReservationRecord).where(ReservationRecord.name == name))
    if (rec is None or rec.maintenance or project_id not in rec.project_ids
            or ensure_utc(rec.ends_at) <= now):
        raise InvalidInput(
            f"no current reservation named {name!r} for project {project_slug}",
            field="reservation",
            hint="rechenwerk reservation list shows the reservations of your projects")

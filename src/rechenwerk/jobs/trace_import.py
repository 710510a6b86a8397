"""Rechenwerk's own job table as a trace (``rechenwerk trace import --from-db``,
docs/traces.md "Your centre's own history").

Every job that started and ended becomes one row: submit time, real run time (ended -
started of its last run), GPUs, GPUs per node, project slug and the kind of its
organisation, user name, walltime, QOS, GPU type, array task and dependencies. Jobs that
never started, or still run (or wait to be requeued), are left out and counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Organization, Project, User
from rechenwerk.clock import ensure_utc
from rechenwerk.jobs.models import Job, JobArray, JobDependency
from rechenwerk.jobs.states import TERMINAL_STATES
from rechenwerk.simulation.traces.history import HistoryJob, ImportSummary, native_qos

_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
_BATCH = 1000


def _trace_id(job: Job) -> str:
    if job.array_job_id is not None and job.array_task_id is not None:
        return f"{job.array_job_id}_{job.array_task_id}"
    return str(job.id)


def _in_range(query: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(Job.submitted_at >= since)
    if until is not None:
        query = query.where(Job.submitted_at < until)
    return query


def count_jobs(session: Session, since: datetime | None, until: datetime | None) -> int:
    """How many jobs were submitted in ``[since, until)`` (for a progress bar)."""
    return int(session.scalar(_in_range(select(func.count(Job.id)), since, until)) or 0)


def _batches(session: Session, since: datetime | None,
             until: datetime | None) -> Iterator[list[tuple[Job, str, str, str]]]:
    # one query: the job, its project's slug, its submitter and its organisation's kind
    query = _in_range(select(Job, Project.slug, User.username, Organization.kind)
                      .join(Project, Project.id == Job.project_id)
                      .join(Organization, Organization.id == Project.organization_id)
                      .join(User, User.id == Job.user_id), since, until)
    last = 0
    while True:  # keyset pages: memory stays flat on a large job table
        rows = session.execute(query.where(Job.id > last).order_by(Job.id).limit(_BATCH)).all()
        if not rows:
            return
        yield [(r[0], r[1], r[2], r[3]) for r in rows]
        last = rows[-1][0].id


def history_from_db(session: Session, summary: ImportSummary, *,
                    since: datetime | None = None,
                    until: datetime | None = None,
                    progress: Callable[[int], None] | None = None) -> list[HistoryJob]:
    """The started and ended jobs submitted in ``[since, until)``, ordered by id;
    ``progress`` is told how many jobs have been read after every batch."""
    out: list[HistoryJob] = []
    read = 0
    limits: dict[int, int | None] = {}
    for batch in _batches(session, since, until):
        ids = [j.id for j, _, _, _ in batch]
        deps: dict[int, list[tuple[str, int]]] = {}
        for d in session.execute(select(JobDependency).where(JobDependency.job_id.in_(ids))
                                 ).scalars():
            deps.setdefault(d.job_id, []).append((d.kind, d.depends_on_id))
        targets = {t for ds in deps.values() for _, t in ds}
        names = {j.id: _trace_id(j) for j, _, _, _ in batch}
        missing = targets - names.keys()
        if missing:  # dependencies on jobs of earlier batches (or outside the range)
            for j in session.execute(select(Job).where(Job.id.in_(missing))).scalars():
                names[j.id] = _trace_id(j)
        arrays = {j.array_job_id for j, _, _, _ in batch
                  if j.array_job_id is not None} - limits.keys()
        if arrays:
            for a in session.execute(select(JobArray).where(JobArray.id.in_(arrays))).scalars():
                limits[a.id] = a.task_limit
        for job, slug, username, kind in batch:
            if job.started_at is None:
                summary.left_out["never started"] += 1
                continue
            if job.ended_at is None or job.state not in _TERMINAL:
                summary.left_out["still running (or waiting to be requeued)"] += 1
                continue
            run = (ensure_utc(job.ended_at) - ensure_utc(job.started_at)).total_seconds()
            out.append(HistoryJob(
                job_id=names[job.id],
                submit_epoch=ensure_utc(job.submitted_at).timestamp(),
                duration_s=max(0.0, run), gpus=job.gpus, project=slug,
                walltime_s=float(job.walltime_s), gpus_per_node=_gpn(job),
                qos=native_qos(job.requested_qos), gpu_type=job.gpu_type,
                depends_on=tuple((k, names[t]) for k, t in deps.get(job.id, ()) if t in names),
                array_id=None if job.array_job_id is None else str(job.array_job_id),
                array_limit=None if job.array_job_id is None else limits.get(job.array_job_id),
                user=username, kind=str(kind)))
        session.expunge_all()
        read += len(batch)
        if progress is not None:
            progress(read)
    return out


def _gpn(job: Job) -> int | None:
    gpn = job.gpus_per_node
    if gpn is None or gpn > job.gpus or job.gpus % gpn:
        return None  # not a whole-node shape the trace format can state
    return gpn

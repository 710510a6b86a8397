"""The scheduler loop's ``snapshot`` phase: the database and the backend's inventory as
the core's frozen :class:`~rechenwerk.scheduling.model.Snapshot`.

With 10,000 pending jobs most of a cycle's cost would be building the same immutable
``PendingJob``/``RunningJob`` objects again, so both are cached by job id and rebuilt only
when a field that changes them moved (attempt, attained service, QOS, state); a cycle
reads only the few columns that tell.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import (
    Award,
    AwardPeriod,
    PayPerUseAccount,
    PayPerUsePrice,
    Project,
)
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import Clock, ensure_utc
from rechenwerk.execution.base import ExecutionBackend
from rechenwerk.jobs.models import Job, JobArray, NodeState
from rechenwerk.jobs.reservations import core_reservations
from rechenwerk.jobs.states import ACTIVE_STATES, JobState
from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    Placement,
    ProjectInfo,
    RunningJob,
    Snapshot,
)

# Fair share: usage decays with the policy's ``fairshare_half_life_s``
# (RECHENWERK_SCHEDULER_PARAMS); usage older than this many half-lives is ignored (<7%).
USAGE_WINDOW_HALF_LIVES = 4
# Rows per ``IN (...)`` query when (re)building cached jobs.
CHUNK = 1000

# The reason code and message stored for each pending job, by job id: the ``reasons``
# phase writes only those that changed.
PendingReasons = dict[int, tuple[str | None, str | None]]


def _epoch(value: datetime | None) -> float:
    return ensure_utc(value).timestamp() if value is not None else 0.0


def preemptible(qos: str, spec: Mapping[str, Any] | None) -> bool:
    """Jobs in the low (scavenger) QOS and jobs that declare a checkpoint interval may be
    preempted (SIGTERM, grace period, requeue); others run to the end."""
    return qos == "low" or bool(spec and spec.get("checkpoint_interval"))


def _reservation(spec: Mapping[str, Any] | None) -> str | None:
    name = spec.get("reservation") if spec else None
    return str(name) if name else None


class SnapshotBuilder:
    """Builds one snapshot per cycle; keeps the per-job caches between cycles."""

    def __init__(self, backend: ExecutionBackend, clock: Clock,
                 fairshare_half_life_s: float) -> None:
        self.backend = backend
        self.clock = clock
        self.half_life_s = float(fairshare_half_life_s)
        self._pending: dict[int, tuple[tuple[int, float, str], PendingJob]] = {}
        self._running: dict[int, tuple[tuple[int, str], RunningJob]] = {}
        self.new_entries = 0  # cache entries added since the caller last reset this

    def build(self, session: Session, held: Collection[int] = (),
              ) -> tuple[Snapshot, PendingReasons]:
        """The frozen snapshot for the core, and the stored reason of every pending job
        offered to it. Jobs ``held`` (dependencies not met, ``jobs/dependencies.py``) are
        not offered: the core never sees a job it must not start, and stays pure."""
        now = self.clock.now()
        drained = set(session.scalars(select(NodeState.name).where(NodeState.drained)))
        nodes = tuple(
            Node(name=n.name, gpus=n.gpus, gpu_type=n.gpu_type, block=n.block,
                 available=n.name not in drained)
            for n in self.backend.inventory()
        )
        slugs = {int(i): str(sl) for i, sl in session.execute(select(Project.id, Project.slug))}
        running = self._running_jobs(session, slugs)
        pending, reasons = self._pending_jobs(session, slugs, held)
        projects = {
            slugs[pid]: info for pid, info in self.project_infos(session, now).items()
            if pid in slugs
        }
        snap = Snapshot(now=now.timestamp(), nodes=nodes, running=tuple(running),
                        pending=tuple(pending), projects=projects,
                        reservations=core_reservations(session, now))
        return snap, reasons

    def _pending_jobs(self, session: Session, slugs: Mapping[int, str],
                      held: Collection[int] = ()) -> tuple[list[PendingJob], PendingReasons]:
        rows = session.connection().execute(
            select(Job.id, Job.attempt, Job.attained_gpu_s, Job.qos, Job.reason_code,
                   Job.reason)
            .where(Job.state == JobState.PENDING.value).order_by(Job.id)
        ).all()
        if held:
            rows = [r for r in rows if r[0] not in held]
        cache = self._pending
        stale = [jid for jid, att, gpu_s, qos, _c, _r in rows
                 if (hit := cache.get(jid)) is None or hit[0] != (att, gpu_s, qos)]
        self.new_entries += len(stale)
        for chunk in range(0, len(stale), CHUNK):
            for row in session.connection().execute(
                select(Job.id, Job.project_id, Job.gpus, Job.qos, Job.nodes,
                       Job.gpus_per_node, Job.walltime_s, Job.submitted_at, Job.gpu_type,
                       Job.attained_gpu_s, Job.attempt, Job.spec, Job.array_job_id,
                       Job.array_task_id, JobArray.task_limit)
                .outerjoin(JobArray, JobArray.id == Job.array_job_id)
                .where(Job.id.in_(stale[chunk:chunk + CHUNK]))
            ):
                cache[row.id] = ((row.attempt, row.attained_gpu_s, row.qos), PendingJob(
                    job_id=str(row.id), project=slugs.get(row.project_id, "?"),
                    gpus=row.gpus, qos=row.qos, nodes=row.nodes,
                    gpus_per_node=row.gpus_per_node, walltime_s=float(row.walltime_s),
                    submit_time=_epoch(row.submitted_at), gpu_type=row.gpu_type,
                    attained_gpu_s=row.attained_gpu_s,
                    preemptible=preemptible(row.qos, row.spec),
                    reservation=_reservation(row.spec),
                    array_id=None if row.array_job_id is None else str(row.array_job_id),
                    array_index=row.array_task_id, array_limit=row.task_limit,
                ))
        reasons: PendingReasons = {jid: (code, reason)
                                   for jid, _a, _g, _q, code, reason in rows}
        pending = [cache[jid][1] for jid in reasons]
        if len(cache) > len(rows):
            for jid in set(cache) - set(reasons):
                del cache[jid]
        return pending, reasons

    def _running_jobs(self, session: Session, slugs: Mapping[int, str]) -> list[RunningJob]:
        """RunningJob snapshots of jobs holding GPUs; unchanged jobs come from the cache."""
        rows = session.connection().execute(
            select(Job.id, Job.attempt, Job.state)
            .where(Job.state.in_([s.value for s in ACTIVE_STATES]),
                   Job.placement.is_not(None))
        ).all()
        cache = self._running
        stale = [r[0] for r in rows
                 if (hit := cache.get(r[0])) is None or hit[0] != (r[1], r[2])]
        self.new_entries += len(stale)
        for chunk in range(0, len(stale), CHUNK):
            for row in session.connection().execute(
                select(Job.id, Job.project_id, Job.gpus, Job.placement, Job.started_at,
                       Job.updated_at, Job.walltime_s, Job.qos, Job.submitted_at,
                       Job.attained_gpu_s, Job.spec, Job.attempt, Job.state,
                       Job.array_job_id)
                .where(Job.id.in_(stale[chunk:chunk + CHUNK]))
            ):
                placement = tuple((str(node), tuple(int(i) for i in idx))
                                  for node, idx in (row.placement or ()))
                cache[row.id] = ((row.attempt, row.state), RunningJob(
                    job_id=str(row.id), project=slugs.get(row.project_id, "?"),
                    gpus=row.gpus, placement=placement,
                    start_time=_epoch(row.started_at or row.updated_at),
                    walltime_s=float(row.walltime_s), qos=row.qos,
                    submit_time=_epoch(row.submitted_at), attained_gpu_s=row.attained_gpu_s,
                    preemptible=preemptible(row.qos, row.spec),
                    reservation=_reservation(row.spec),
                    array_id=None if row.array_job_id is None else str(row.array_job_id),
                ))
        seen = {r[0] for r in rows}
        for jid in set(cache) - seen:
            del cache[jid]
        return [cache[r[0]][1] for r in rows]

    def project_infos(self, session: Session, now: datetime) -> dict[int, ProjectInfo]:
        """Fair-share inputs by project id: share = GPU-hours of active award periods
        (plus what an active pay-per-use account's credit limit buys);
        usage = settled GPU-seconds decayed with the policy's fair-share half-life."""
        shares: dict[int, float] = {}
        for pid, hours in session.execute(
            select(Award.project_id, func.sum(AwardPeriod.gpu_hours))
            .join(AwardPeriod, AwardPeriod.award_id == Award.id)
            .where(AwardPeriod.starts_at <= now, AwardPeriod.ends_at > now,
                   Award.expires_at > now)
            .group_by(Award.project_id)
        ):
            shares[int(pid)] = float(hours or 0.0)
        # A pay-per-use account counts as the GPU-hours its credit limit buys at its
        # dearest price: without it a project that pays would rank below every award.
        for pid, limit, dearest in session.execute(
            select(PayPerUseAccount.project_id, PayPerUseAccount.credit_limit_eur,
                   func.max(PayPerUsePrice.eur_per_gpu_hour))
            .join(PayPerUsePrice, PayPerUsePrice.account_id == PayPerUseAccount.id)
            .where(PayPerUseAccount.is_active)
            .group_by(PayPerUseAccount.project_id, PayPerUseAccount.credit_limit_eur)
        ):
            if dearest and dearest > 0:
                shares[int(pid)] = shares.get(int(pid), 0.0) + float(limit) / float(dearest)
        usage: dict[int, float] = {}
        half_life = self.half_life_s
        since = now - timedelta(seconds=USAGE_WINDOW_HALF_LIVES * half_life)
        for pid, ended, gpu_hours in session.execute(
            select(UsageRecord.project_id, UsageRecord.ended_at, UsageRecord.gpu_hours)
            .where(UsageRecord.ended_at >= since)
        ):
            age = max(0.0, (now - ensure_utc(ended)).total_seconds())
            usage[int(pid)] = usage.get(int(pid), 0.0) + (
                gpu_hours * 3600.0 * math.pow(0.5, age / half_life))
        return {
            pid: ProjectInfo(share=max(shares.get(pid, 0.0), 1e-6),
                             usage_gpu_s=usage.get(pid, 0.0))
            for pid in set(shares) | set(usage)
        }


def running_placements(snap: Snapshot) -> dict[str, Placement]:
    """Where each running job of the snapshot holds GPUs, by job id."""
    return {rj.job_id: rj.placement for rj in snap.running}

"""The scheduler loop: the one place where decisions of the scheduling core become real.

Each cycle:

1. poll the backend for every job it holds and apply the reports (guarded updates, so a
   duplicate or late report is harmless; finished runs are settled);
2. forward cancel requests to the backend;
3. take a snapshot (nodes incl. drained, running allocations, pending jobs, project
   shares and decayed usage), ask ``make_policy(settings.scheduler_policy).decide``;
4. apply the decision: preemptions (SIGTERM, then requeue when the backend reports the
   job stopped), starts (persist STARTING with the placement and commit, THEN call the
   backend; on failure revert to PENDING with the reason), and the reason of every
   waiting job (persisted, so API and CLI show it).

Backends that schedule themselves (Slurm) skip the core: pending jobs are handed over at
once and the backend's reason is stored.

On start, :meth:`SchedulerLoop.reconcile` recovers what happened while the server was
down: runs that ended get their real end time and are settled; a job persisted as
STARTING whose launch may or may not have happened is launched again with the SAME
attempt number, which backends treat idempotently — nothing runs twice.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.access.models import Award, AwardPeriod, Project, User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import Clock, WallClock, ensure_utc
from rechenwerk.config import Settings
from rechenwerk.errors import BackendError, RechenwerkError
from rechenwerk.execution.base import (
    BackendJobState,
    BackendJobStatus,
    ExecutionBackend,
    GpuSlice,
    LaunchRequest,
)
from rechenwerk.jobs import service
from rechenwerk.jobs.models import Job, NodeState
from rechenwerk.jobs.states import ACTIVE_STATES, JobState
from rechenwerk.scheduling.model import arrival_key
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.scheduler")

# Fair share: usage decays with the policy's ``fairshare_half_life_s``
# (RECHENWERK_SCHEDULER_PARAMS); usage older than this many half-lives is ignored (<7%).
USAGE_WINDOW_HALF_LIVES = 4
# Waiting reasons whose code is unchanged but whose message changed are refreshed in
# batches of this size per cycle, and all of them at least every REASON_REFRESH_S.
REASON_MESSAGE_BATCH = 100
REASON_REFRESH_S = 30.0
# Garbage-collector tuning: the snapshot caches hold a few objects per queued job, and a
# full collection walks all of them (~25 ms per cycle with 10,000 pending jobs, measured
# by benchmarks/bench_scheduler_cycle.py). After the caches gained this many entries the
# loop collects once and freezes the heap (gc.freeze: surviving objects move to the
# permanent generation, which collections skip); it re-does that at least every
# GC_REFREEZE_S so cyclic garbage among frozen objects is reclaimed (unfreeze, collect).
GC_FREEZE_MIN_NEW = 2000
GC_REFREEZE_S = 600.0


class HasInventory(Protocol):
    def inventory(self) -> Sequence[Any]: ...


@dataclass(slots=True)
class CycleStats:
    polled: int = 0
    applied: int = 0
    started: int = 0
    launch_failed: int = 0
    preempted: int = 0
    waiting: int = 0
    reasons_written: int = 0
    poll_s: float = 0.0  # poll + apply reports + forward cancels
    snapshot_s: float = 0.0
    decide_s: float = 0.0
    apply_s: float = 0.0
    total_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def _epoch(value: datetime | None) -> float:
    return ensure_utc(value).timestamp() if value is not None else 0.0


def _no_news(state: str, reason: str | None, status: BackendJobStatus,
             attempt: int | None = None) -> bool:
    """True when a backend report would change nothing (the common case: still running)."""
    if status.attempt is not None and attempt is not None and status.attempt > attempt:
        return False  # the backend requeued the job itself (Slurm): a new attempt
    if status.state == BackendJobState.RUNNING:
        return state == JobState.RUNNING.value
    if status.state == BackendJobState.PENDING:
        return not status.reason or (reason or "").endswith(status.reason)
    return False


def _preemptible(qos: str, spec: Mapping[str, Any] | None) -> bool:
    """Jobs in the low (scavenger) QOS and jobs that declare a checkpoint interval may be
    preempted (SIGTERM, grace period, requeue); others run to the end."""
    return qos == "low" or bool(spec and spec.get("checkpoint_interval"))


def log_dir_for(data_dir: Path, job_id: int, attempt: int) -> Path:
    return Path(data_dir) / "logs" / str(job_id) / str(attempt)


class SchedulerLoop:
    """Runs cycles in a background thread of the server (or by hand in tests)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        backend: ExecutionBackend,
        *,
        settings: Settings,
        clock: Clock | None = None,
        policy: Any | None = None,
        incremental: bool = True,
    ) -> None:
        self.session_factory = session_factory
        self.incremental = incremental
        self._core: IncrementalCore | None = None
        self.backend = backend
        self.settings = settings
        self.clock = clock or WallClock()
        self.data_dir = Path(settings.data_dir)
        self._policy = policy
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancel_sent: set[str] = set()
        # Snapshot caches: immutable parts of pending/running jobs, keyed by job id and
        # invalidated by the fields that change them (attempt, attained service, QOS, state).
        self._pending_cache: dict[int, tuple[Any, Any]] = {}
        self._reasons_refreshed_at = -math.inf
        self._running_cache: dict[int, tuple[Any, Any]] = {}
        self._gc_new_entries = 0  # cache entries added since the last gc.freeze()
        self._gc_frozen_at: float | None = None
        self.last_stats: CycleStats | None = None
        self.leadership = Leadership(session_factory, self.data_dir)
        self._reconciled = False
        self.cycles = 0

    # --- lifecycle ------------------------------------------------------------------
    @property
    def policy(self) -> Any:
        if self._policy is None:
            from rechenwerk.jobs.policy_config import scheduler_params
            from rechenwerk.scheduling.policies import make_policy

            self._policy = make_policy(self.settings.scheduler_policy,
                                       scheduler_params(self.settings))
        return self._policy

    def start(self) -> None:
        """Run cycles every ``scheduler_interval_s`` in a thread. Only one loop per
        database is active (see :class:`Leadership`); it reconciles with the backend
        when it becomes the leader."""
        if self._thread is not None:
            return
        _ = self.policy  # fail fast on a bad policy expression or parameters
        if self.leadership.acquire():
            self.reconcile()
            self._reconciled = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rechenwerk-scheduler",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.leadership.release()
        self.backend.close()

    def wake(self) -> None:
        """Run the next cycle now (e.g. after a submission)."""
        self._wake.set()

    def _run(self) -> None:
        interval = max(0.05, float(self.settings.scheduler_interval_s))
        while not self._stop.is_set():
            try:
                if self.leadership.acquire():
                    if not self._reconciled:
                        self.reconcile()
                        self._reconciled = True
                    self.cycle()
            except Exception:  # keep the loop alive; the next cycle retries
                log.exception("scheduler cycle failed")
            self._wake.wait(interval)
            self._wake.clear()

    # --- reconcile ------------------------------------------------------------------
    def reconcile(self) -> int:
        """Recover after a restart: apply the backend's view of every job we hold and
        relaunch (same attempt, idempotent) jobs whose launch was not confirmed."""
        changed = 0
        with session_scope(self.session_factory) as session:
            jobs = service.active_jobs(session)
            handles = [j.backend_handle for j in jobs if j.backend_handle]
            report = self.backend.reconcile(handles) if handles else None
            now = self.clock.now()
            for job in jobs:
                if job.backend_handle and report is not None:
                    status = report.known.get(job.backend_handle)
                    if status is None:
                        status = BackendJobStatus(job.backend_handle, BackendJobState.UNKNOWN)
                    changed += self._apply_status(session, job, status, now)
        # Jobs persisted as STARTING without a handle: the server died between commit
        # and launch (or before recording the handle). Launch the same attempt again.
        with session_scope(self.session_factory) as session:
            orphans = list(session.scalars(
                select(Job).where(Job.state == JobState.STARTING.value,
                                  Job.backend_handle.is_(None))
            ))
            ids = [j.id for j in orphans]
        if ids:
            changed += self._launch(ids)
        return changed

    # --- one cycle ------------------------------------------------------------------
    def cycle(self) -> CycleStats:
        stats = CycleStats()
        t0 = time.perf_counter()
        self._poll(stats)
        self._forward_cancels()
        stats.poll_s = time.perf_counter() - t0
        if self.backend.capabilities.schedules_itself:
            self._hand_over_pending(stats)
        else:
            self._schedule(stats)
        self._tune_gc()
        stats.total_s = time.perf_counter() - t0
        self.last_stats = stats
        self.cycles += 1
        return stats

    def _tune_gc(self) -> None:
        """Freeze the heap after the snapshot caches grew (see GC_FREEZE_MIN_NEW)."""
        now = time.monotonic()
        due = self._gc_frozen_at is not None and now - self._gc_frozen_at > GC_REFREEZE_S
        if self._gc_new_entries < GC_FREEZE_MIN_NEW and not due:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._gc_new_entries = 0
        self._gc_frozen_at = now

    def _poll(self, stats: CycleStats) -> None:
        with session_scope(self.session_factory) as session:
            rows = session.connection().execute(
                select(Job.id, Job.state, Job.backend_handle, Job.reason, Job.attempt)
                .where(Job.state.in_([s.value for s in ACTIVE_STATES]),
                       Job.backend_handle.is_not(None))
            ).all()
            if not rows:
                return
            statuses = self.backend.poll([r.backend_handle for r in rows])
            stats.polled = len(statuses)
            now = self.clock.now()
            for row in rows:
                status = statuses.get(row.backend_handle)
                if status is None or _no_news(row.state, row.reason, status, row.attempt):
                    continue
                job = session.get(Job, row.id)
                if job is None:
                    continue
                if self._apply_status(session, job, status, now):
                    stats.applied += 1
                    if JobState(job.state) not in ACTIVE_STATES:
                        self._cancel_sent.discard(row.backend_handle)

    def _apply_status(self, session: Session, job: Job, status: BackendJobStatus,
                      now: datetime) -> bool:
        """Apply one report inside a savepoint: a report that cannot be applied is logged
        and skipped instead of losing every other job's report of this cycle."""
        try:
            with session.begin_nested():
                return service.apply_backend_status(session, job, status, now=now,
                                                    source=self.backend.name)
        except Exception:
            log.exception("applying %s to job %s failed", status, job.id)
            session.expire(job)
            return False

    def _forward_cancels(self) -> None:
        with session_scope(self.session_factory) as session:
            rows = session.execute(
                select(Job.id, Job.backend_handle).where(
                    Job.state.in_([s.value for s in ACTIVE_STATES]),
                    Job.cancel_requested_at.is_not(None),
                    Job.backend_handle.is_not(None),
                )
            ).all()
        for _job_id, handle in rows:
            if handle is None or handle in self._cancel_sent:
                continue
            try:
                self.backend.cancel(handle)
                self._cancel_sent.add(handle)
            except BackendError as exc:
                log.warning("cancel of %s failed: %s", handle, exc)

    # --- snapshot ---------------------------------------------------------------------
    def build_snapshot(self, session: Session) -> tuple[Any, dict[int, tuple[Any, ...]]]:
        """The frozen snapshot for the core, and the pending rows by job id (for reasons)."""
        from rechenwerk.scheduling.model import Node, PendingJob, Snapshot

        now = self.clock.now()
        drained = set(session.scalars(select(NodeState.name).where(NodeState.drained)))
        inventory: Sequence[Any] = ()
        inv_fn = getattr(self.backend, "inventory", None)
        if callable(inv_fn):
            inventory = inv_fn()
        nodes = tuple(
            Node(name=n.name, gpus=n.gpus, gpu_type=n.gpu_type, block=n.block,
                 available=n.name not in drained)
            for n in inventory
        )
        slugs = {int(i): str(sl) for i, sl in session.execute(select(Project.id, Project.slug))}
        running = self._running_jobs(session, slugs)
        pending_rows: dict[int, tuple[Any, ...]]
        rows = session.connection().execute(
            select(Job.id, Job.attempt, Job.attained_gpu_s, Job.qos, Job.reason_code,
                   Job.reason)
            .where(Job.state == JobState.PENDING.value).order_by(Job.id)
        ).all()
        cache = self._pending_cache
        miss = (None,)
        stale = [jid for jid, att, gpu_s, qos, _c, _r in rows
                 if cache.get(jid, miss)[0] != (att, gpu_s, qos)]
        self._gc_new_entries += len(stale)
        for chunk in range(0, len(stale), 1000):
            for row in session.connection().execute(
                select(Job.id, Job.project_id, Job.gpus, Job.qos, Job.nodes,
                       Job.gpus_per_node, Job.walltime_s, Job.submitted_at, Job.gpu_type,
                       Job.attained_gpu_s, Job.attempt, Job.spec)
                .where(Job.id.in_(stale[chunk:chunk + 1000]))
            ):
                cache[row.id] = ((row.attempt, row.attained_gpu_s, row.qos), PendingJob(
                    job_id=str(row.id), project=slugs.get(row.project_id, "?"),
                    gpus=row.gpus, qos=row.qos, nodes=row.nodes,
                    gpus_per_node=row.gpus_per_node, walltime_s=float(row.walltime_s),
                    submit_time=_epoch(row.submitted_at), gpu_type=row.gpu_type,
                    attained_gpu_s=row.attained_gpu_s,
                    preemptible=_preemptible(row.qos, row.spec),
                ))
        pending_rows = {jid: (code, reason) for jid, _a, _g, _q, code, reason in rows}
        pending = [cache[jid][1] for jid in pending_rows]
        if len(cache) > len(rows):
            for jid in set(cache) - set(pending_rows):
                del cache[jid]
        projects = {
            slugs[pid]: info for pid, info in self._project_infos(session, now).items()
            if pid in slugs
        }
        snap = Snapshot(now=now.timestamp(), nodes=nodes, running=tuple(running),
                        pending=tuple(pending), projects=projects)
        return snap, pending_rows

    def _running_jobs(self, session: Session, slugs: Mapping[int, str]) -> list[Any]:
        """RunningJob snapshots of jobs holding GPUs; unchanged jobs come from a cache."""
        from rechenwerk.scheduling.model import RunningJob

        rows = session.connection().execute(
            select(Job.id, Job.attempt, Job.state)
            .where(Job.state.in_([s.value for s in ACTIVE_STATES]),
                   Job.placement.is_not(None))
        ).all()
        cache = self._running_cache
        stale = [r[0] for r in rows if cache.get(r[0], (None,))[0] != (r[1], r[2])]
        self._gc_new_entries += len(stale)
        for chunk in range(0, len(stale), 1000):
            for row in session.connection().execute(
                select(Job.id, Job.project_id, Job.gpus, Job.placement, Job.started_at,
                       Job.updated_at, Job.walltime_s, Job.qos, Job.submitted_at,
                       Job.attained_gpu_s, Job.spec, Job.attempt, Job.state)
                .where(Job.id.in_(stale[chunk:chunk + 1000]))
            ):
                placement = tuple((str(node), tuple(int(i) for i in idx))
                                  for node, idx in (row.placement or ()))
                cache[row.id] = ((row.attempt, row.state), RunningJob(
                    job_id=str(row.id), project=slugs.get(row.project_id, "?"),
                    gpus=row.gpus, placement=placement,
                    start_time=_epoch(row.started_at or row.updated_at),
                    walltime_s=float(row.walltime_s), qos=row.qos,
                    submit_time=_epoch(row.submitted_at), attained_gpu_s=row.attained_gpu_s,
                    preemptible=_preemptible(row.qos, row.spec),
                ))
        seen = {r[0] for r in rows}
        for jid in set(cache) - seen:
            del cache[jid]
        return [cache[r[0]][1] for r in rows]

    def _project_infos(self, session: Session, now: datetime) -> dict[int, Any]:
        """Fair-share inputs: share = GPU-hours of active award periods; usage = settled
        GPU-seconds decayed with the policy's fair-share half-life."""
        from rechenwerk.scheduling.model import ProjectInfo

        shares: dict[int, float] = {}
        for pid, hours in session.execute(
            select(Award.project_id, func.sum(AwardPeriod.gpu_hours))
            .join(AwardPeriod, AwardPeriod.award_id == Award.id)
            .where(AwardPeriod.starts_at <= now, AwardPeriod.ends_at > now,
                   Award.expires_at > now)
            .group_by(Award.project_id)
        ):
            shares[int(pid)] = float(hours or 0.0)
        usage: dict[int, float] = {}
        half_life = float(self.policy.params.fairshare_half_life_s)
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

    # --- schedule ---------------------------------------------------------------------
    def _schedule(self, stats: CycleStats) -> None:
        t0 = time.perf_counter()
        with session_scope(self.session_factory) as session:
            snap, pending_rows = self.build_snapshot(session)
        t1 = time.perf_counter()
        if self.incremental:
            if self._core is None:
                self._core = IncrementalCore(self.policy)
            decision = self._core.decide(snap)
        else:
            decision = self.policy.decide(snap)
        t2 = time.perf_counter()
        stats.snapshot_s, stats.decide_s = t1 - t0, t2 - t1
        placements = {rj.job_id: rj.placement for rj in snap.running}
        self._apply(decision, pending_rows, stats, placements)
        stats.apply_s = time.perf_counter() - t2

    def _apply(self, decision: Any, pending_rows: Mapping[int, tuple[Any, ...]],
               stats: CycleStats,
               running_placements: Mapping[str, Any] | None = None) -> None:
        running_placements = running_placements or {}
        # 1. Preemptions: SIGTERM now; the job is requeued when the backend reports it
        #    stopped (poll), so its GPUs are never double-booked.
        if decision.preemptions:
            with session_scope(self.session_factory) as session:
                for pre in decision.preemptions:
                    job = session.get(Job, int(pre.job_id))
                    if job is None or not job.backend_handle:
                        continue
                    try:
                        self.backend.preempt(job.backend_handle)
                        stats.preempted += 1
                    except BackendError as exc:
                        log.warning("preempting job %s failed: %s", job.id, exc)
                        continue
                    if job.reason_code != "preempting":
                        job.reason_code, job.reason = "preempting", pre.reason
        # 2. Starts: persist first, then launch. A start on GPUs that a preempted job
        #    still holds (it is checkpointing) waits until that job has stopped.
        draining: dict[tuple[str, int], str] = {}
        for pre in decision.preemptions:
            for node, idx in running_placements.get(pre.job_id, ()):
                for i in idx:
                    draining[(node, i)] = pre.job_id
        blocked: dict[int, tuple[str, str]] = {}
        starts = []
        for st in decision.starts:
            victims = sorted({draining[(n, i)] for n, idx in st.placement for i in idx
                              if (n, i) in draining})
            if victims:
                blocked[int(st.job_id)] = (
                    "preemption", "waiting for preempted job(s) " + ", ".join(victims)
                    + " to stop (SIGTERM sent; checkpointing)")
            else:
                starts.append(st)
        if starts:
            now = self.clock.now()
            ids: list[int] = []
            with session_scope(self.session_factory) as session:
                for st in starts:
                    job = session.get(Job, int(st.job_id))
                    if job is None:
                        continue
                    placement = [[node, list(idx)] for node, idx in st.placement]
                    if service.transition(session, job, JobState.STARTING, now=now,
                                          reason="placed on " + ", ".join(
                                              f"{n}:{','.join(map(str, i))}"
                                              for n, i in st.placement),
                                          values={"placement": placement,
                                                  "attempt": job.attempt + 1,
                                                  "backend": self.backend.name,
                                                  "backend_handle": None,
                                                  "reason_code": "starting",
                                                  "reason": "launching"}):
                        ids.append(job.id)
            launched = self._launch(ids)
            stats.started += launched
            stats.launch_failed += len(ids) - launched
        # 3. The reason of every waiting job; write only those that changed (a cycle
        #    usually changes few, so 10,000 waiting jobs cost a dictionary walk).
        started = {s.job_id for s in starts}
        updates: list[dict[str, Any]] = []
        # A changed reason code is written at once. A message-only change (e.g. "behind
        # job 17" -> "behind job 18" after 17 started: every waiting job at once) is
        # written for a batch per cycle and for all every REASON_REFRESH_S seconds.
        now_s = time.monotonic()
        refresh_all = now_s - self._reasons_refreshed_at >= REASON_REFRESH_S
        waiting: list[tuple[str, Any]] = [
            (str(jid), WaitReasonLike(*why)) for jid, why in blocked.items()]
        waiting += list(decision.waiting.items())
        for job_id, why in waiting:
            if job_id in started:
                continue
            old = pending_rows.get(int(job_id))
            if old is None:
                continue
            if old[0] != why.code or (old[1] != why.message and (
                    refresh_all or len(updates) < REASON_MESSAGE_BATCH)):
                updates.append({"b_id": int(job_id), "b_code": why.code,
                                "b_reason": why.message})
        if refresh_all:
            self._reasons_refreshed_at = now_s
        stats.waiting = len(waiting) - len(started & {j for j, _ in waiting})
        if updates:
            with session_scope(self.session_factory) as session:
                _write_reasons(session, updates)
            stats.reasons_written = len(updates)

    def _hand_over_pending(self, stats: CycleStats) -> None:
        """Self-scheduling backends (Slurm): hand every pending job over at once."""
        now = self.clock.now()
        ids: list[int] = []
        with session_scope(self.session_factory) as session:
            for job in session.scalars(
                select(Job).where(Job.state == JobState.PENDING.value).order_by(Job.id)
            ):
                if service.transition(session, job, JobState.STARTING, now=now,
                                      reason=f"submitted to {self.backend.name}",
                                      values={"attempt": job.attempt + 1,
                                              "backend": self.backend.name,
                                              "backend_handle": None, "placement": None,
                                              "reason_code": "backend",
                                              "reason": f"submitted to {self.backend.name}"}):
                    ids.append(job.id)
        launched = self._launch(ids)
        stats.started += launched
        stats.launch_failed += len(ids) - launched

    # --- launch -------------------------------------------------------------------------
    def launch_request(self, session: Session, job: Job) -> LaunchRequest:
        spec = job.spec
        project = session.get(Project, job.project_id)
        user = session.get(User, job.user_id)
        log_dir = log_dir_for(self.data_dir, job.id, job.attempt)
        workdir = spec.get("workdir") or str(log_dir.parent)
        Path(workdir if not spec.get("workdir") else log_dir).mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        placement = (
            tuple(GpuSlice(str(n), tuple(int(i) for i in idx)) for n, idx in job.placement)
            if job.placement else None
        )
        nodes = len(placement) if placement else (job.nodes or 1)
        command = spec.get("command")
        return LaunchRequest(
            job_id=str(job.id),
            attempt=job.attempt,
            name=job.name,
            project=project.slug if project else "?",
            user=user.username if user else "?",
            command=tuple(command) if command else None,
            script=spec.get("script"),
            workdir=workdir,
            env=dict(spec.get("env") or {}),
            gpus=job.gpus,
            nodes=nodes,
            gpus_per_node=job.gpus_per_node or max(1, job.gpus // max(1, nodes)),
            walltime_s=job.walltime_s,
            qos=job.qos,
            log_dir=str(log_dir),
            container_image=spec.get("container_image"),
            gpu_type=job.gpu_type,
            checkpoint_interval_s=spec.get("checkpoint_interval"),
            placement=placement,
        )

    def _launch(self, job_ids: Sequence[int]) -> int:
        """Launch jobs already persisted as STARTING; record handles or revert."""
        ok = 0
        for job_id in job_ids:
            with session_scope(self.session_factory) as session:
                job = session.get(Job, job_id)
                if job is None or job.state != JobState.STARTING.value:
                    continue
                if job.cancel_requested_at is not None and job.backend_handle is None:
                    # Cancelled between placement and launch: never start it.
                    service.transition(session, job, JobState.CANCELLED, now=self.clock.now(),
                                       reason="cancelled before launch",
                                       values={"ended_at": self.clock.now(),
                                               "reason_code": "cancelled",
                                               "reason": "cancelled before launch"})
                    continue
                request = self.launch_request(session, job)
            try:
                handle = self.backend.submit(request)
            except RechenwerkError as exc:
                with session_scope(self.session_factory) as session:
                    job = session.get(Job, job_id)
                    if job is not None:
                        service.requeue_failed_launch(
                            session, job, now=self.clock.now(),
                            reason=f"launch failed: {exc.message}")
                log.warning("launch of job %s failed: %s", job_id, exc)
                continue
            except Exception as exc:  # a backend bug must not strand the job in STARTING
                log.exception("launch of job %s failed", job_id)
                with session_scope(self.session_factory) as session:
                    job = session.get(Job, job_id)
                    if job is not None:
                        service.requeue_failed_launch(
                            session, job, now=self.clock.now(),
                            reason=f"launch failed: {type(exc).__name__}: {exc}")
                continue
            with session_scope(self.session_factory) as session:
                session.execute(
                    update(Job).where(Job.id == job_id, Job.backend_handle.is_(None))
                    .values(backend_handle=handle, reason="launched")
                    .execution_options(synchronize_session=False)
                )
            ok += 1
        return ok


class Leadership:
    """At most one active scheduler loop per database, so two server processes (e.g.
    uvicorn workers) never place jobs on the same GPUs. PostgreSQL: a session-level
    advisory lock held on a dedicated connection; SQLite (one machine): an exclusive
    ``flock`` on ``<database file>.scheduler.lock``. A loop that is not the leader stays idle
    and tries again every cycle; it takes over when the leader's process ends."""

    ADVISORY_KEY = 0x52574B53  # "RWKS"

    def __init__(self, session_factory: sessionmaker[Session], data_dir: Path) -> None:
        self.engine = session_factory.kw["bind"]
        db_file = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self.lock_path = (Path(f"{db_file}.scheduler.lock")
                          if db_file and db_file != ":memory:"
                          else Path(data_dir) / "scheduler.lock")
        self._conn: Any = None
        self._fh: Any = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fh is not None

    def acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({self.ADVISORY_KEY})").scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - kept open while leading
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({self.ADVISORY_KEY})")
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fh is not None:
            self._fh.close()  # closing the file drops the flock
            self._fh = None


class IncrementalCore:
    """Keeps the core's scheduler between cycles and feeds it only what changed.

    ``Policy.decide(snapshot)`` builds a scheduler from scratch, re-queueing and
    re-prioritising every pending job each cycle. This keeps one from
    ``policy.scheduler(...)`` and applies the difference between consecutive snapshots
    (new/removed/changed pending jobs, ended/new allocations, drained/resumed nodes) —
    the same incremental calls the simulator makes. It rebuilds from the snapshot every
    ``rebuild_s`` seconds of the caller's clock (fair-share usage moves slowly), when the
    inventory or the projects change, and after any inconsistency. For policies whose
    order does not depend on the clock (fifo, backfill) its decisions equal
    ``Policy.decide`` on the same snapshot (tests/jobs/test_incremental_core.py); with
    multifactor, priorities are recomputed every ``priority_calc_period_s`` (Slurm's
    PriorityCalcPeriod, as in the simulator) instead of at every cycle.
    """

    def __init__(self, policy: Any, rebuild_s: float = 300.0) -> None:
        self.policy = policy
        self.rebuild_s = rebuild_s
        self._sched: Any = None
        self._built_at = 0.0
        self._shape: tuple[Any, ...] = ()
        self._available: dict[str, bool] = {}
        self._projects: Mapping[str, Any] = {}
        self.rebuilds = 0

    def _rebuild(self, snap: Any) -> None:
        sched = self.policy.scheduler(snap.nodes, snap.projects, snap.now)
        for rj in snap.running:
            sched.add_running(rj)
        for job in sorted(snap.pending, key=arrival_key):
            sched.submit(job)
        self._sched = sched
        self._built_at = snap.now
        self._shape = tuple((n.name, n.gpus, n.gpu_type, n.block) for n in snap.nodes)
        self._available = {n.name: n.available for n in snap.nodes}
        self._projects = dict(snap.projects)
        self.rebuilds += 1

    def _sync(self, snap: Any) -> None:
        sched = self._sched
        now = snap.now
        for n in snap.nodes:
            if self._available.get(n.name) != n.available:
                sched.set_node_available(n.name, n.available)
                self._available[n.name] = n.available
        running = {rj.job_id: rj for rj in snap.running}
        pending = {j.job_id: j for j in snap.pending}
        for jid in [j for j in sched.running if j not in running]:
            sched.finish(jid, now)
        for jid, rj in running.items():
            have = sched.running.get(jid)
            if have is not None and have.placement == rj.placement:
                continue
            if have is not None:
                sched.finish(jid, now)
            if jid in sched.pending:
                sched.cancel(jid)
            sched.add_running(rj)
        for jid in [j for j in sched.pending if j not in pending]:
            sched.cancel(jid)
        fresh = []
        for jid, job in pending.items():
            have_job = sched.pending.get(jid)
            if have_job is job:
                continue
            if have_job is not None:
                sched.cancel(jid)
            if jid in sched.running:  # launch reverted or preempted and requeued
                sched.finish(jid, now)
            fresh.append(job)
        # Same arrival order as a rebuild (and as Policy.decide): scheduling.arrival_key.
        for job in sorted(fresh, key=arrival_key):
            sched.submit(job)

    def decide(self, snap: Any) -> Any:
        from rechenwerk.scheduling.model import Decision, Preemption, Start, WaitReason

        shape = tuple((n.name, n.gpus, n.gpu_type, n.block) for n in snap.nodes)
        if (self._sched is None or snap.now - self._built_at >= self.rebuild_s
                or shape != self._shape or snap.projects.keys() != self._projects.keys()):
            self._rebuild(snap)
        else:
            try:
                self._sync(snap)
            except (KeyError, ValueError) as exc:
                log.warning("incremental scheduler out of step (%s); rebuilding", exc)
                self._rebuild(snap)
        res = self._sched.schedule(snap.now, full=True)
        started = {pj.job_id for pj, _ in res.starts}
        shared = res.shared_reason or WaitReason("priority", "behind higher-priority jobs")
        reasons = res.reasons
        waiting = {j.job_id: reasons.get(j.job_id, shared)
                   for j in snap.pending if j.job_id not in started}
        return Decision(
            starts=tuple(Start(rj.job_id, rj.placement) for _, rj in res.starts),
            preemptions=tuple(Preemption(rj.job_id, why) for rj, why in res.preempted),
            waiting=waiting,
            wake_at=res.wake_at,
        )


@dataclass(frozen=True, slots=True)
class WaitReasonLike:
    code: str
    message: str


def _write_reasons(session: Session, updates: list[dict[str, Any]]) -> None:
    """Set reason_code/reason of pending jobs; guarded by ``state = 'pending'`` so a job
    cancelled or started meanwhile keeps its own reason. One executemany (psycopg
    pipelines it; measured faster than ``UPDATE ... FROM (VALUES ...)`` here)."""
    table = Job.__table__
    conn = session.connection()
    conn.execute(
        update(table)  # type: ignore[arg-type]
        .where(table.c.id == _bindparam("b_id"), table.c.state == JobState.PENDING.value)
        .values(reason_code=_bindparam("b_code"), reason=_bindparam("b_reason")),
        updates,
    )


def _bindparam(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)



def start_scheduler(app_state: Any, settings: Settings) -> SchedulerLoop:
    """Build and start the server's loop (FastAPI lifespan): the backend from the
    settings, the app's session factory and clock. Stored as ``app_state.scheduler``."""
    from rechenwerk.api.deps import session_factory_for
    from rechenwerk.execution.factory import make_backend

    backend = getattr(app_state, "backend", None) or make_backend(settings)
    app_state.backend = backend
    loop = SchedulerLoop(session_factory_for(app_state, settings), backend, settings=settings,
                         clock=getattr(app_state, "clock", None) or WallClock())
    loop.start()
    app_state.scheduler = loop
    return loop

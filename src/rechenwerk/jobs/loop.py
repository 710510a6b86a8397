"""The scheduler loop: the one place where decisions of the scheduling core become real.

A cycle runs named phases, each timed (``CycleStats``, the cycle's log line and the
``rechenwerk_scheduler_phase_duration_seconds`` histogram), in the manner of Kueue's
scheduler cycle:

``poll``
    ask the backend about every job it holds and apply the reports (guarded updates, so a
    duplicate or late report is harmless; finished runs are settled);
``forward_cancels``
    send cancel requests to the backend;
``dependencies``
    hold back pending jobs whose dependencies are not met; cancel those whose
    dependencies can never be met, down the chain (``jobs/dependencies.py``);
``snapshot``
    nodes (drained ones too), running allocations, pending jobs, fair-share inputs
    (``jobs/snapshot.py``);
``decide``
    the pure core (``scheduling/incremental.py`` keeps its scheduler between cycles); the
    jobs left waiting, in the order of this pass, go to ``queue_orders`` and the
    ``queue_orders`` table for the other server processes (when the order changed, at
    most every ``ORDER_MIN_S``; else every ``ORDER_REFRESH_S``), which the queue pages
    and the API serve instead of computing the order per request
    (``jobs/queue_order.py``);
``apply``
    preemptions and starts (``jobs/apply.py``, ``jobs/launch.py``);
``reasons``
    why each waiting job waits, written where it changed (``jobs/reasons.py``).

Every ``forecast_interval_s`` the snapshot also goes to the forecast companion's thread
(``jobs/forecasts.py``), which stores each waiting job's expected start.

Backends that schedule themselves (Slurm) replace snapshot..reasons by ``hand_over``:
pending jobs go to the backend at once and its own reason is stored.

Only the leader (``jobs/leadership.py``) runs cycles. When it becomes the leader,
:meth:`SchedulerLoop.reconcile` recovers what happened while no loop ran: runs that ended
get their real end and are settled; a job persisted as STARTING whose launch may or may
not have happened is launched again with the SAME attempt, which backends treat
idempotently, so nothing runs twice.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from rechenwerk.access.models import Award
from rechenwerk.clock import Clock, WallClock
from rechenwerk.config import Settings
from rechenwerk.errors import BackendError, BackendUnavailable, RechenwerkError
from rechenwerk.execution.base import (
    BackendJobState,
    BackendJobStatus,
    ExecutionBackend,
    Pingable,
)
from rechenwerk.execution.clusters import ClusterRegistry, implicit_cluster
from rechenwerk.jobs.apply import DecisionApplier
from rechenwerk.jobs.dependencies import DependencyPhase
from rechenwerk.jobs.forecasts import ForecastCompanion
from rechenwerk.jobs.launch import Launcher
from rechenwerk.jobs.leadership import Leadership
from rechenwerk.jobs.models import Job, JobDependency, JobEvent
from rechenwerk.jobs.progress import active_jobs, apply_backend_status
from rechenwerk.jobs.queue_order import QueueOrderBoard, store_order
from rechenwerk.jobs.reasons import ReasonWriter, waiting_reasons
from rechenwerk.jobs.routing import ClusterOption, choose_cluster
from rechenwerk.jobs.slurm_reservations import ReservationAutoSync
from rechenwerk.jobs.snapshot import SnapshotBuilder, running_placements
from rechenwerk.jobs.states import ACTIVE_STATES, JobState
from rechenwerk.jobs.transitions import transition
from rechenwerk.log_format import cycle_var
from rechenwerk.observability import instruments
from rechenwerk.scheduling.arrays import hold_array_excess
from rechenwerk.scheduling.incremental import IncrementalCore
from rechenwerk.scheduling.policies import Policy
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.scheduler")

# Garbage-collector tuning: the snapshot caches hold a few objects per queued job, and a
# full collection walks all of them (~25 ms per cycle with 10,000 pending jobs, measured
# by benchmarks/bench_scheduler_cycle.py). After the caches gained this many entries the
# loop collects once and freezes the heap (gc.freeze: surviving objects move to the
# permanent generation, which collections skip); it re-does that at least every
# GC_REFREEZE_S so cyclic garbage among frozen objects is reclaimed (unfreeze, collect).
GC_FREEZE_MIN_NEW = 2000
GC_REFREEZE_S = 600.0
# A cycle slower than this is logged at INFO even when it changed nothing.
SLOW_CYCLE_S = 1.0
# The queue order is published when it changed, at most every ORDER_MIN_S, and every
# ORDER_REFRESH_S when it did not (the age term moves). With 4,000 pending jobs its
# priorities take 13 ms and storing it for the other server processes 9 ms (the decide
# phase: about 35 ms), so it is not redone every cycle.
ORDER_MIN_S = 2.0
ORDER_REFRESH_S = 10.0
# Several clusters: each is asked whether it answers at most this often while it does
# (and every cycle while it does not, so it is back as soon as it answers).
CLUSTER_PROBE_S = 10.0

PHASES = ("poll", "forward_cancels", "dependencies", "snapshot", "decide", "apply", "reasons",
          "hand_over")


@dataclass(slots=True)
class CycleStats:
    polled: int = 0
    applied: int = 0
    started: int = 0
    launch_failed: int = 0
    preempted: int = 0
    cancels_sent: int = 0
    dependency_cancelled: int = 0
    waiting: int = 0
    reasons_written: int = 0
    poll_s: float = 0.0
    forward_cancels_s: float = 0.0
    dependencies_s: float = 0.0
    snapshot_s: float = 0.0
    decide_s: float = 0.0
    apply_s: float = 0.0
    reasons_s: float = 0.0
    hand_over_s: float = 0.0
    total_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def log_line(self) -> str:
        times = " ".join(f"{p}={getattr(self, p + '_s') * 1000:.1f}ms" for p in PHASES
                         if getattr(self, p + "_s"))
        return (f"cycle {self.total_s * 1000:.1f}ms [{times}] polled={self.polled} "
                f"applied={self.applied} started={self.started} "
                f"launch_failed={self.launch_failed} preempted={self.preempted} "
                f"waiting={self.waiting} reasons_written={self.reasons_written}")

    @property
    def eventful(self) -> bool:
        return bool(self.applied or self.started or self.launch_failed or self.preempted
                    or self.cancels_sent or self.dependency_cancelled)


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class SchedulerLoop:
    """Runs cycles in a background thread of the server (or by hand in tests)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        backend: ExecutionBackend,
        *,
        settings: Settings,
        clock: Clock | None = None,
        policy: Policy | None = None,
        incremental: bool = True,
        queue_orders: QueueOrderBoard | None = None,
        clusters: ClusterRegistry | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.backend = backend
        # The centre's clusters (execution/clusters.py); one implicit cluster, whose
        # backend is ``backend``, unless several are declared (then ``backend`` is the
        # first one's and the phases below go round every cluster).
        self.clusters = clusters if clusters is not None else ClusterRegistry(
            [implicit_cluster(settings)], make=lambda _s: backend,
            backends={implicit_cluster(settings).name: backend})
        self.multi = self.clusters.several
        self._probed: dict[str, float] = {}
        self.settings = settings
        self.clock = clock or WallClock()
        self.data_dir = Path(settings.data_dir)
        self.incremental = incremental
        self.policy = policy or _policy_from(settings)
        self.leadership = Leadership(session_factory, self.data_dir)
        self.snapshots = SnapshotBuilder(backend, self.clock,
                                         self.policy.params.fairshare_half_life_s)
        self.launcher = Launcher(session_factory, backend, self.clock, self.data_dir)
        self.launchers: dict[str, Launcher] = {
            name: Launcher(session_factory, self.clusters.backend(name), self.clock,
                           self.data_dir, cluster=name)
            for name in self.clusters.names} if self.multi else {}
        self.dependencies = DependencyPhase(
            session_factory, self.clock, kill_invalid=settings.kill_invalid_dependency,
            backend_holds_dependencies=backend.capabilities.schedules_itself,
            backend=backend.name)
        self.applier = DecisionApplier(session_factory, backend, self.clock, self.launcher)
        self.reasons = ReasonWriter(session_factory)
        self.core = IncrementalCore(self.policy)
        # the order of each cycle, for the queue views (jobs/queue_order.py)
        self.queue_orders = queue_orders if queue_orders is not None else QueueOrderBoard()
        self._order_ids: tuple[str, ...] | None = None  # of the last published order
        self._order_t = 0.0
        transport: Any = getattr(backend, "transport", None)
        self.reservation_sync = (
            ReservationAutoSync(session_factory, transport, self.clock,
                                interval_s=settings.slurm_reservation_sync_s)
            # slurmrestd v0.0.38 cannot manage reservations: the CLI transport only
            if backend.capabilities.schedules_itself
            and getattr(transport, "name", None) == "cli" else None)
        self.forecasts = ForecastCompanion(session_factory, self.policy,
                                           interval_s=settings.forecast_interval_s,
                                           horizon_s=settings.forecast_horizon_s,
                                           use_history=settings.forecast_runtime == "history")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # handle -> the attempt a cancel was sent for: a backend that requeued the job
        # under the same handle after all (Slurm) gets the cancel again for the new one
        self._cancel_sent: dict[str, int] = {}
        self._runs_seen: dict[str, int] = {}  # handle -> measured earlier runs applied
        self._gc_frozen_at: float | None = None
        self._reconciled = False
        # For /readyz: when the loop last went round, whether it leads, its last error.
        self.heartbeat_at: float | None = None
        self.cycles = 0  # cycles run by this loop (the "cycle" of its log lines)
        self.leading = False
        self.last_error: str | None = None
        self.last_stats: CycleStats | None = None
        instruments.init_phases(PHASES)

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Run cycles every ``scheduler_interval_s`` in a thread. Only one loop per
        database is active (see :class:`Leadership`); it reconciles with the backend
        when it becomes the leader."""
        if self._thread is not None:
            return
        if self.leadership.acquire():
            self.reconcile()
            self._reconciled = True
        self._stop.clear()
        self.heartbeat_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rechenwerk-scheduler",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.forecasts.stop(timeout)
        self.leadership.release()
        self.backend.close()
        if self.multi:
            for other in self.clusters.built().values():
                if other is not self.backend:
                    other.close()

    def wake(self) -> None:
        """Run the next cycle now (e.g. after a submission committed)."""
        self._wake.set()

    def _run(self) -> None:
        interval = max(0.05, float(self.settings.scheduler_interval_s))
        while not self._stop.is_set():
            try:
                if self.leadership.acquire():
                    self.leading = True
                    if not self._reconciled:
                        self.reconcile()
                        self._reconciled = True
                    self.cycle()
                else:
                    self.leading = False
                self.last_error = None
            except Exception as exc:  # keep the loop alive; the next cycle retries
                instruments.count_cycle_failure()
                log.exception("scheduler cycle failed")
                self.last_error = _one_line(exc)
            self.heartbeat_at = time.monotonic()
            self._wake.wait(interval)
            self._wake.clear()

    # --- reconcile ------------------------------------------------------------------
    def reconcile(self) -> int:
        """Recover after a restart: apply the backend's view of every job we hold and
        relaunch (same attempt, idempotent) jobs whose launch was not confirmed."""
        if self.multi:
            return self._reconcile_clusters()
        changed = 0
        with session_scope(self.session_factory) as session:
            jobs = active_jobs(session)
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
            ids = list(session.scalars(
                select(Job.id).where(Job.state == JobState.STARTING.value,
                                     Job.backend_handle.is_(None))
            ))
        if ids:
            changed += self.launcher.launch(ids)
        return changed

    # --- one cycle ------------------------------------------------------------------
    def cycle(self) -> CycleStats:
        self.cycles += 1
        token = cycle_var.set(self.cycles)  # on every log line of this cycle
        try:
            return self._cycle()
        finally:
            cycle_var.reset(token)

    def _cycle(self) -> CycleStats:
        stats = CycleStats()
        t0 = clock = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            setattr(stats, phase + "_s", now - clock)
            instruments.observe_phase(phase, now - clock)
            clock = now

        if self.multi:
            self.probe_clusters()
        self.poll(stats)
        lap("poll")
        stats.cancels_sent = self.forward_cancels()
        lap("forward_cancels")
        deps = self.dependencies.run()
        stats.dependency_cancelled = deps.cancelled
        lap("dependencies")
        if self.backend.capabilities.schedules_itself:
            self.hand_over(stats, held=deps.held)
            lap("hand_over")
            if self.reservation_sync is not None:
                self.reservation_sync.run()
        else:
            with session_scope(self.session_factory) as session:
                snap, stored = self.snapshots.build(session, held=deps.held)
            lap("snapshot")
            if self._thread is not None:  # cycles run by hand (tests) forecast by hand
                self.forecasts.offer(snap)
            # Array tasks beyond their array's %N limit never reach the policy.
            snap, array_held = hold_array_excess(snap)
            decision = self.core.decide(snap) if self.incremental else self.policy.decide(snap)
            if self.incremental:
                self._publish_order(snap.now)
            lap("decide")
            applied = self.applier.apply(decision, running_placements(snap))
            stats.started, stats.preempted = applied.started, applied.preempted
            stats.launch_failed = applied.launch_failed
            lap("apply")
            stats.waiting, stats.reasons_written = self.reasons.write(
                waiting_reasons(applied.held_back, {**decision.waiting, **array_held}), stored,
                applied.started_ids)
            lap("reasons")
        self._tune_gc()
        stats.total_s = time.perf_counter() - t0
        instruments.observe_cycle(stats.total_s)
        self.last_stats = stats
        level = (logging.INFO if stats.eventful or stats.total_s > SLOW_CYCLE_S
                 else logging.DEBUG)
        if log.isEnabledFor(level):
            log.log(level, "%s", stats.log_line())
        return stats

    def _publish_order(self, now: float) -> None:
        """The jobs this cycle left waiting, in its order, for the queue views: when the
        order changed (at most every ORDER_MIN_S), else every ORDER_REFRESH_S."""
        since = now - self._order_t
        if self._order_ids is not None and since < ORDER_MIN_S:
            return
        ids = self.core.queue_ids(now)
        if ids == self._order_ids and since < ORDER_REFRESH_S:
            return
        view = self.core.queue_view(now)
        if view is None:
            return
        at = datetime.fromtimestamp(now, UTC)
        self.queue_orders.publish(view, at)
        self._order_ids, self._order_t = ids, now
        try:  # for the server processes that do not run the loop
            with session_scope(self.session_factory) as session:
                store_order(session, view, at)
        except Exception:  # scheduling goes on; they compute the order meanwhile
            log.exception("storing the queue order failed")

    def _tune_gc(self) -> None:
        """Freeze the heap after the snapshot caches grew (see GC_FREEZE_MIN_NEW)."""
        now = time.monotonic()
        due = self._gc_frozen_at is not None and now - self._gc_frozen_at > GC_REFREEZE_S
        if self.snapshots.new_entries < GC_FREEZE_MIN_NEW and not due:
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.snapshots.new_entries = 0
        self._gc_frozen_at = now

    # --- phases -----------------------------------------------------------------------
    def poll(self, stats: CycleStats) -> None:
        if self.multi:
            self._poll_clusters(stats)
            return
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
                if status is not None:
                    self._apply_report(session, row, status, row.backend_handle, now, stats)

    def _apply_report(self, session: Session, row: Any, status: BackendJobStatus, key: str,
                      now: datetime, stats: CycleStats) -> None:
        """One job's report, unless it says nothing new; ``key`` names its backend handle
        in the loop's memories (with the cluster where there are several)."""
        # earlier runs the backend's accounting recorded since the last report (a run
        # requeued before anyone saw it start): applied once more
        measured = sum(1 for r in status.requeued_runs if r.measured)
        if (_no_news(row.state, row.reason, status, row.attempt)
                and self._runs_seen.get(key, 0) >= measured):
            return
        job = session.get(Job, row.id)
        if job is None:
            return
        self._runs_seen[key] = measured
        if len(self._runs_seen) > 10_000:
            self._runs_seen.clear()  # only an optimisation
        if self._apply_status(session, job, status, now):
            stats.applied += 1
            if JobState(job.state) not in ACTIVE_STATES:
                self._cancel_sent.pop(key, None)

    def _apply_status(self, session: Session, job: Job, status: BackendJobStatus,
                      now: datetime) -> bool:
        """Apply one report inside a savepoint: a report that cannot be applied is logged
        and skipped instead of losing every other job's report of this cycle."""
        try:
            with session.begin_nested():
                return apply_backend_status(session, job, status, now=now,
                                                    source=self.backend.name)
        except Exception:
            log.exception("applying %s to job %s failed", status, job.id,
                          extra={"job_id": job.id})
            session.expire(job)
            return False

    def forward_cancels(self) -> int:
        """Cancels users asked for, sent to the backend once per attempt (with several
        clusters: to each job's cluster, while it answers)."""
        with session_scope(self.session_factory) as session:
            rows = session.execute(
                select(Job.backend_handle, Job.cluster, Job.attempt).where(
                    Job.state.in_([s.value for s in ACTIVE_STATES]),
                    Job.cancel_requested_at.is_not(None),
                    Job.backend_handle.is_not(None),
                )
            ).all()
        sent = 0
        for handle, cluster, attempt in rows:
            if handle is None:
                continue
            if self.multi:
                name = self._cluster_of(cluster)
                key, where = f"{name}/{handle}", f" on {name}"
                if not self.clusters.available(name):
                    continue
            else:
                name, key, where = "", handle, ""
            if self._cancel_sent.get(key) == attempt:
                continue
            try:
                backend = self.clusters.backend(name) if self.multi else self.backend
                backend.cancel(handle)
                self._cancel_sent[key] = attempt
                sent += 1
            except BackendError as exc:
                log.warning("cancel of %s%s failed: %s", handle, where, exc)
        return sent

    def hand_over(self, stats: CycleStats, held: Collection[int] = ()) -> None:
        """Self-scheduling backends (Slurm): hand every pending job over at once, except
        those ``held`` for their dependencies; the waiting tasks of one job array go
        together (one ``sbatch --array``)."""
        if self.multi:
            self._hand_over_clusters(stats, held)
            return
        now = self.clock.now()
        ids: list[int] = []
        name = self.backend.name
        with session_scope(self.session_factory) as session:
            arrays = self._hand_over_array_tasks(session, now)
            for job in session.scalars(
                select(Job).where(Job.state == JobState.PENDING.value,
                                  Job.array_job_id.is_(None)).order_by(Job.id)
            ):
                if job.id in held:
                    continue
                if transition(session, job, JobState.STARTING, now=now,
                                      reason=f"submitted to {name}",
                                      values={"attempt": job.attempt + 1,
                                              "backend": name,
                                              "backend_handle": None, "placement": None,
                                              "reason_code": "backend",
                                              "reason": f"submitted to {name}"}):
                    ids.append(job.id)
        launched = self.launcher.launch(ids)
        for tasks in arrays.values():
            launched += self.launcher.launch_array(tasks)
        stats.started += launched
        stats.launch_failed += len(ids) + sum(map(len, arrays.values())) - launched


    def _hand_over_array_tasks(self, session: Session, now: datetime) -> dict[int, list[int]]:
        """Every waiting task of every job array to STARTING in one guarded UPDATE (and
        its events in one executemany), not one round trip per task: a 10,000-task
        array is handed over at once. Returns the task ids by array."""
        name = self.backend.name
        table = Job.__table__
        rows = session.connection().execute(
            update(table)  # type: ignore[arg-type]
            # tasks that wait for other jobs stay until those are met (no --dependency
            # for arrays: Rechenwerk waits for them itself)
            .where(table.c.state == JobState.PENDING.value, table.c.array_job_id.is_not(None),
                   table.c.dependency_wait.is_(False))
            .values(state=JobState.STARTING.value, attempt=table.c.attempt + 1,
                    backend=name, backend_handle=None, placement=None,
                    reason_code="backend", reason=f"submitted to {name}", updated_at=now)
            .returning(table.c.id, table.c.array_job_id)
        ).all()
        if not rows:
            return {}
        session.connection().execute(insert(JobEvent.__table__), [  # type: ignore[arg-type]
            {"job_id": jid, "at": now, "from_state": JobState.PENDING.value,
             "to_state": JobState.STARTING.value, "reason": f"submitted to {name}"}
            for jid, _aid in rows])
        for _ in rows:
            instruments.count_state_change(JobState.STARTING.value)
        arrays: dict[int, list[int]] = {}
        for jid, aid in rows:
            arrays.setdefault(int(aid), []).append(int(jid))
        return arrays

    # --- several clusters (execution/clusters.py) -------------------------------------
    def _cluster_of(self, name: str | None) -> str:
        """A job's cluster; jobs placed before clusters were declared: the first."""
        return name if name in self.clusters.specs else self.clusters.default

    def probe_clusters(self, *, only: str | None = None, force: bool = False) -> None:
        """Ask each cluster whether it answers (``ping``), at most every CLUSTER_PROBE_S
        (every cycle while it does not): an error marks it unavailable with the reason,
        an answer available again."""
        mono = time.monotonic()
        for name in self.clusters.names:
            if only is not None and name != only:
                continue
            last = self._probed.get(name)
            if (not force and last is not None and mono - last < CLUSTER_PROBE_S
                    and self.clusters.available(name)):
                continue
            self._probed[name] = mono
            backend = self.clusters.backend(name)
            try:
                if isinstance(backend, Pingable):
                    backend.ping()
            except Exception as exc:
                reason = exc.message if isinstance(exc, RechenwerkError) else _one_line(exc)
                self.clusters.mark_unavailable(name, reason, self.clock.now())
            else:
                self.clusters.mark_available(name, self.clock.now())

    def _poll_clusters(self, stats: CycleStats) -> None:
        with session_scope(self.session_factory) as session:
            rows = session.connection().execute(
                select(Job.id, Job.state, Job.backend_handle, Job.reason, Job.attempt,
                       Job.cluster)
                .where(Job.state.in_([s.value for s in ACTIVE_STATES]),
                       Job.backend_handle.is_not(None))
            ).all()
            by_cluster: dict[str, list[Any]] = {}
            for row in rows:
                by_cluster.setdefault(self._cluster_of(row.cluster), []).append(row)
            now = self.clock.now()
            for name, group in by_cluster.items():
                if not self.clusters.available(name):
                    continue  # its jobs keep their state until it answers again
                try:
                    statuses = self.clusters.backend(name).poll(
                        [r.backend_handle for r in group])
                except Exception as exc:  # the other clusters go on
                    reason = (exc.message if isinstance(exc, RechenwerkError)
                              else _one_line(exc))
                    self.clusters.mark_unavailable(name, reason, now)
                    continue
                stats.polled += len(statuses)
                for row in group:
                    status = statuses.get(row.backend_handle)
                    if status is not None:
                        self._apply_report(session, row, status, f"{name}/{row.backend_handle}",
                                           now, stats)

    def _reconcile_clusters(self) -> int:
        changed = 0
        with session_scope(self.session_factory) as session:
            by_cluster: dict[str, list[Job]] = {}
            for job in active_jobs(session):
                if job.backend_handle:
                    by_cluster.setdefault(self._cluster_of(job.cluster), []).append(job)
            now = self.clock.now()
            for name, jobs in by_cluster.items():
                try:
                    report = self.clusters.backend(name).reconcile(
                        [j.backend_handle for j in jobs if j.backend_handle])
                except Exception as exc:  # reconciled when it answers: poll catches up
                    reason = (exc.message if isinstance(exc, RechenwerkError)
                              else _one_line(exc))
                    self.clusters.mark_unavailable(name, reason, now)
                    continue
                for job in jobs:
                    status = report.known.get(job.backend_handle or "") or BackendJobStatus(
                        job.backend_handle or "", BackendJobState.UNKNOWN)
                    changed += self._apply_status(session, job, status, now)
        with session_scope(self.session_factory) as session:
            pending = session.execute(
                select(Job.id, Job.cluster).where(Job.state == JobState.STARTING.value,
                                                  Job.backend_handle.is_(None))).all()
        for job_id, cluster in pending:  # the same attempt again, on the same cluster
            changed += self.launchers[self._cluster_of(cluster)].launch([job_id])
        return changed

    def _route_options(self, session: Session, job: Job, now: datetime,
                       awards: dict[int, list[tuple[str, str | None]]]) -> list[ClusterOption]:
        """What routing needs to know about each cluster for ``job``."""
        if job.project_id not in awards:
            awards[job.project_id] = [
                (str(t), c) for t, c in session.execute(
                    select(Award.gpu_type, Award.cluster).where(
                        Award.project_id == job.project_id, Award.starts_at <= now,
                        Award.expires_at > now))]
        held = awards[job.project_id]
        # awards valid on one cluster only matter when the project has such an award;
        # pay-per-use and low-QOS jobs may run anywhere
        restricted = (any(c is not None for _t, c in held)
                      and job.account_id is None and not job.over_budget)
        options = []
        for name, spec in self.clusters.specs.items():
            status = self.clusters.status(name)
            budget = not restricted or any(
                (c is None or c == name) and (job.gpu_type is None or t == job.gpu_type)
                and spec.offers(t) for t, c in held)
            options.append(ClusterOption(name, status.available, status.reason,
                                         offers_gpu_type=spec.offers(job.gpu_type),
                                         budget=budget))
        return options

    def _expected_starts(self, job_id: int,
                         options: list[ClusterOption]) -> list[ClusterOption]:
        """Each available, fitting cluster's expected start of the job (Slurm:
        ``sbatch --test-only``); a cluster that would refuse the job does not fit."""
        fitting = [o for o in options if o.available and o.offers_gpu_type and o.budget]
        if len(fitting) < 2:
            return options
        now = self.clock.now()
        out = []
        for o in options:
            if o not in fitting:
                out.append(o)
                continue
            backend = self.clusters.backend(o.name)
            estimate = getattr(backend, "expected_start", None)
            if estimate is None:
                out.append(o)
                continue
            try:
                with session_scope(self.session_factory) as session:
                    job = session.get(Job, job_id)
                    if job is None:
                        return options
                    request = self.launchers[o.name].request(session, job)
                at = estimate(request)
            except BackendUnavailable as exc:
                self.clusters.mark_unavailable(o.name, exc.message, now)
                out.append(replace(o, available=False, reason=exc.message))
                continue
            except RechenwerkError:  # Slurm would refuse it there: it does not fit
                out.append(replace(o, offers_gpu_type=False))
                continue
            except Exception:
                log.exception("expected start of job %s on %s failed", job_id, o.name)
                out.append(o)
                continue
            secs = None if at is None else max(0.0, (at - now).total_seconds())
            out.append(replace(o, expected_start_s=secs))
        return out

    def _hand_over_clusters(self, stats: CycleStats, held: Collection[int]) -> None:
        """hand_over across several clusters: each pending job (each job array as a
        whole) goes to the cluster it names or the one routing chooses; a job no cluster
        can take now waits with the reason."""
        now = self.clock.now()
        awards: dict[int, list[tuple[str, str | None]]] = {}
        with session_scope(self.session_factory) as session:
            jobs = list(session.scalars(
                select(Job).where(Job.state == JobState.PENDING.value,
                                  # array tasks wait for their dependencies here
                                  or_(Job.array_job_id.is_(None),
                                      Job.dependency_wait.is_(False))).order_by(Job.id)))
            candidates: list[tuple[int, int | None, str | None, list[ClusterOption]]] = []
            seen_arrays: set[int] = set()
            for job in jobs:
                if job.id in held:
                    continue
                if job.array_job_id is not None:
                    if job.array_job_id in seen_arrays:
                        continue
                    seen_arrays.add(job.array_job_id)
                requested = job.requested_cluster or self._dependency_cluster(session, job)
                candidates.append((job.id, job.array_job_id, requested,
                                   self._route_options(session, job, now, awards)))
        routes: dict[int, tuple[int | None, str]] = {}  # job id -> (array, cluster)
        for job_id, array_id, requested, options in candidates:
            if requested is None:
                options = self._expected_starts(job_id, options)
            route = choose_cluster(options, requested)
            if route.cluster is None:
                self._wait_for_cluster(job_id, array_id, route.reason or "no cluster")
            else:
                routes[job_id] = (array_id, route.cluster)
        by_cluster: dict[str, list[int]] = {}
        arrays: dict[str, dict[int, list[int]]] = {}
        with session_scope(self.session_factory) as session:
            for job_id, (array_id, name) in routes.items():
                backend = self.clusters.backend(name)
                reason = f"submitted to {name}"
                if array_id is not None:
                    tasks = self._hand_over_one_array(session, array_id, name,
                                                      backend.name, now)
                    if tasks:
                        arrays.setdefault(name, {})[array_id] = tasks
                    continue
                row = session.get(Job, job_id)
                if row is not None and transition(
                        session, row, JobState.STARTING, now=now, reason=reason,
                        values={"attempt": row.attempt + 1, "backend": backend.name,
                                "cluster": name, "backend_handle": None,
                                "placement": None, "reason_code": "backend",
                                "reason": reason}):
                    by_cluster.setdefault(name, []).append(job_id)
        for name in sorted({*by_cluster, *arrays}):
            ids = by_cluster.get(name, [])
            launcher = self.launchers[name]
            launched = launcher.launch(ids)
            wanted = len(ids)
            for tasks in arrays.get(name, {}).values():
                launched += launcher.launch_array(tasks)
                wanted += len(tasks)
            stats.started += launched
            stats.launch_failed += wanted - launched
            if launched < wanted:  # did it go away? then routing avoids it next cycle
                self.probe_clusters(only=name, force=True)

    def _dependency_cluster(self, session: Session, job: Job) -> str | None:
        """A job that depends on jobs handed to a cluster goes there too (Slurm waits
        for them with --dependency, which knows its own cluster's jobs only)."""
        dep = aliased(Job)
        cluster = session.scalar(
            select(dep.cluster).join(JobDependency, dep.id == JobDependency.depends_on_id)
            .where(JobDependency.job_id == job.id, dep.cluster.is_not(None))
            .order_by(dep.id).limit(1))
        return str(cluster) if cluster else None

    def _wait_for_cluster(self, job_id: int, array_id: int | None, reason: str) -> None:
        table = Job.__table__
        where = (table.c.array_job_id == array_id if array_id is not None
                 else table.c.id == job_id)
        with session_scope(self.session_factory) as session:
            session.connection().execute(
                update(table)  # type: ignore[arg-type]
                .where(where, table.c.state == JobState.PENDING.value,
                       or_(table.c.reason.is_(None), table.c.reason != reason))
                .values(reason_code="cluster", reason=reason, updated_at=self.clock.now()))

    def _hand_over_one_array(self, session: Session, array_id: int, cluster: str,
                             backend: str, now: datetime) -> list[int]:
        """The waiting tasks of one array to STARTING on ``cluster`` (one UPDATE)."""
        reason = f"submitted to {cluster}"
        table = Job.__table__
        rows = session.connection().execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.state == JobState.PENDING.value,
                   table.c.array_job_id == array_id, table.c.dependency_wait.is_(False))
            .values(state=JobState.STARTING.value, attempt=table.c.attempt + 1,
                    backend=backend, cluster=cluster, backend_handle=None, placement=None,
                    reason_code="backend", reason=reason, updated_at=now)
            .returning(table.c.id)
        ).all()
        if rows:
            session.connection().execute(insert(JobEvent.__table__), [  # type: ignore[arg-type]
                {"job_id": jid, "at": now, "from_state": JobState.PENDING.value,
                 "to_state": JobState.STARTING.value, "reason": reason} for (jid,) in rows])
            for _ in rows:
                instruments.count_state_change(JobState.STARTING.value)
        return sorted(int(jid) for (jid,) in rows)


def _policy_from(settings: Settings) -> Policy:
    from rechenwerk.jobs.policy_config import configured_policy

    return configured_policy(settings)

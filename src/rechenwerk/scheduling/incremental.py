"""The live service's adapter to the core: one scheduler kept between cycles.

``Policy.decide(snapshot)`` builds a scheduler from scratch, re-queueing and
re-prioritising every pending job each cycle. :class:`IncrementalCore` keeps one from
``policy.scheduler(...)`` and applies the difference between consecutive snapshots
(new/removed/changed pending jobs, ended/new allocations, drained/resumed nodes): the same
incremental calls the simulator makes. It rebuilds from the snapshot every ``rebuild_s``
seconds of the caller's clock (fair-share usage moves slowly), when the inventory or the
projects change, and after any inconsistency. For policies whose order does not depend
on the clock (fifo, backfill) its decisions equal ``Policy.decide`` on the same snapshot
(tests/jobs/test_incremental_core.py); with multifactor, priorities are recomputed every
``priority_calc_period_s`` (Slurm's PriorityCalcPeriod, as in the simulator) instead of
at every cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rechenwerk.scheduling.cycle import CycleResult, Scheduler
from rechenwerk.scheduling.model import (
    Decision,
    PendingJob,
    Preemption,
    ProjectInfo,
    QueueView,
    Reservation,
    Snapshot,
    Start,
    WaitReason,
    arrival_key,
)

if TYPE_CHECKING:
    from rechenwerk.scheduling.policies import Policy

log = logging.getLogger("rechenwerk.scheduler")

NodeShape = tuple[tuple[str, int, str, str], ...]
BEHIND_PRIORITY = WaitReason("priority", "behind higher-priority jobs")


def decision_of(result: CycleResult, pending: Iterable[PendingJob]) -> Decision:
    """The core's answer to one cycle: starts, preemptions, and why each other job waits."""
    started = {pj.job_id for pj, _ in result.starts}
    shared = result.shared_reason or BEHIND_PRIORITY
    reasons = result.reasons
    waiting = {j.job_id: reasons.get(j.job_id, shared)
               for j in pending if j.job_id not in started}
    return Decision(
        starts=tuple(Start(rj.job_id, rj.placement) for _, rj in result.starts),
        preemptions=tuple(Preemption(rj.job_id, why) for rj, why in result.preempted),
        waiting=waiting,
        wake_at=result.wake_at,
    )


def build_scheduler(policy: Policy, snap: Snapshot) -> Scheduler:
    """A fresh scheduler holding the snapshot: its allocations, then its pending jobs in
    arrival order (``scheduling.arrival_key``), as ``Policy.decide`` and a rebuild do."""
    sched = policy.scheduler(snap.nodes, snap.projects, snap.now)
    if snap.reservations:
        sched.set_reservations(snap.reservations)
    for rj in snap.running:
        sched.add_running(rj)
    for job in sorted(snap.pending, key=arrival_key):
        sched.submit(job)
    return sched


def _shape(snap: Snapshot) -> NodeShape:
    return tuple((n.name, n.gpus, n.gpu_type, n.block) for n in snap.nodes)


class IncrementalCore:
    """Keeps the core's scheduler between cycles and feeds it only what changed."""

    def __init__(self, policy: Policy, rebuild_s: float = 300.0) -> None:
        self.policy = policy
        self.rebuild_s = rebuild_s
        self._sched: Scheduler | None = None
        self._built_at = 0.0
        self._shape: NodeShape = ()
        self._available: dict[str, bool] = {}
        self._projects: Mapping[str, ProjectInfo] = {}
        self._reservations: tuple[Reservation, ...] = ()
        self.rebuilds = 0

    def _rebuild(self, snap: Snapshot) -> Scheduler:
        sched = build_scheduler(self.policy, snap)
        self._sched = sched
        self._built_at = snap.now
        self._shape = _shape(snap)
        self._available = {n.name: n.available for n in snap.nodes}
        self._projects = dict(snap.projects)
        self._reservations = snap.reservations
        self.rebuilds += 1
        return sched

    def _sync(self, sched: Scheduler, snap: Snapshot) -> None:
        now = snap.now
        if snap.reservations != self._reservations:
            sched.set_reservations(snap.reservations)
            self._reservations = snap.reservations
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
        fresh: list[PendingJob] = []
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

    def decide(self, snap: Snapshot) -> Decision:
        sched = self._sched
        if (sched is None or snap.now - self._built_at >= self.rebuild_s
                or _shape(snap) != self._shape
                or snap.projects.keys() != self._projects.keys()):
            sched = self._rebuild(snap)
        else:
            try:
                self._sync(sched, snap)
            except (KeyError, ValueError) as exc:
                log.warning("incremental scheduler out of step (%s); rebuilding", exc)
                sched = self._rebuild(snap)
        return decision_of(sched.schedule(snap.now, full=True), snap.pending)

    def queue_ids(self, now: float) -> tuple[str, ...]:
        """The ids of :meth:`queue_view`'s jobs in its order (cheap: no priorities)."""
        if self._sched is None:
            return ()
        return tuple(j.job_id for j in self._sched.current_order(now))

    def queue_view(self, now: float) -> QueueView | None:
        """The jobs still pending after the last :meth:`decide`, in the order its pass
        used, each with its priority (None before the first cycle). Reads the kept
        scheduler without changing it; the loop publishes this for the queue pages."""
        if self._sched is None:
            return None
        from rechenwerk.scheduling.queue_view import held_queue

        return held_queue(self.policy.name, self._sched, now)

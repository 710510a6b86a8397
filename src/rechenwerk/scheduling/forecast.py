"""When will each waiting job start? The twin run forward from a snapshot.

``squeue --start`` for Rechenwerk: the policy's own scheduler is rebuilt from the live
snapshot and driven through the future it can know: every running job ends at its
walltime limit (the only end the centre is promised) or, given each project's history,
at the share of it that project's jobs usually run; each start adds its own end, and
nothing new is submitted. The first time each pending job starts in that run is its
expected start. Jobs submitted later with a higher priority can push a forecast back.

Pure like the rest of the core: snapshot in, forecast out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rechenwerk.scheduling.arrays import hold_array_excess, task_order
from rechenwerk.scheduling.incremental import build_scheduler
from rechenwerk.scheduling.model import PendingJob, RunningJob, Snapshot

if TYPE_CHECKING:
    from rechenwerk.scheduling.policies import Policy

# A month ahead; a job that cannot start within it is "not within the horizon".
DEFAULT_HORIZON_S = 30 * 86400.0
# Consecutive wake-ups (no end, no start) followed before the run gives up on them.
MAX_IDLE_WAKEUPS = 16
# The shortest expected run, as a share of the walltime, a history may give.
MIN_RUN_FRACTION = 0.01


@dataclass(frozen=True, slots=True)
class Forecast:
    made_at: float  # the snapshot's time
    starts: Mapping[str, float]  # pending job id -> expected start time
    horizon_s: float
    cycles: int  # scheduler cycles the run took (its cost)

    def start_of(self, job_id: str) -> float | None:
        """Expected start, or None when the job cannot start within the horizon (too
        big for the nodes that are up, or behind more work than the horizon holds)."""
        return self.starts.get(job_id)


def _requeued(rj: RunningJob, now: float) -> PendingJob:
    """A preempted job waits again with the GPU time it attained (as the loop requeues)."""
    ran = max(0.0, now - rj.start_time) * rj.gpus
    return PendingJob(job_id=rj.job_id, project=rj.project, gpus=rj.gpus, qos=rj.qos,
                      walltime_s=rj.walltime_s, submit_time=rj.submit_time,
                      attained_gpu_s=rj.attained_gpu_s + ran, preemptible=rj.preemptible,
                      reservation=rj.reservation)


def forecast_starts(policy: Policy, snap: Snapshot, *,
                    horizon_s: float = DEFAULT_HORIZON_S,
                    run_fraction: Mapping[str, float] | None = None) -> Forecast:
    """Expected start of every pending job of ``snap`` under ``policy``.

    ``run_fraction``: by project, the share of its walltime a job is expected to run
    (from the project's history; ``jobs/forecasts.py``), in (0, 1]; projects not named
    run to their walltime limit. The scheduler itself still plans with walltimes, as
    the live one does: only when jobs end in the forecast changes."""
    now = snap.now
    frac = {p: min(1.0, max(MIN_RUN_FRACTION, f)) for p, f in (run_fraction or {}).items()}
    limit = now + horizon_s
    # Job arrays' %N: the tasks held back enter, lowest index first, as tasks of their
    # array end (as the loop lets them through).
    admitted, held = hold_array_excess(snap)
    backlog: dict[str, list[PendingJob]] = {}
    for job in sorted((j for j in snap.pending if j.job_id in held), key=task_order,
                      reverse=True):
        assert job.array_id is not None
        backlog.setdefault(job.array_id, []).append(job)  # popped from the end
    sched = build_scheduler(policy, admitted)
    # ``explain`` stays on, as in the live loop: conservative backfill plans afresh in
    # every pass then (without it, the simulator's shortcut, it keeps its last plan).
    ends: list[tuple[float, int, str]] = []  # (end, epoch, job id)
    epoch: dict[str, int] = {}
    for rj in snap.running:
        # An overrun (walltime passed, the kill not yet seen) ends now; a job already
        # past its expected run time is expected to end at once too.
        end = rj.start_time + rj.walltime_s * frac.get(rj.project, 1.0)
        heapq.heappush(ends, (max(end, now), 0, rj.job_id))
        epoch[rj.job_id] = 0
    wanted = {j.job_id for j in snap.pending}
    starts: dict[str, float] = {}
    t, cycles, idle = now, 0, 0
    while True:
        while ends and ends[0][0] <= t:
            _end, e, jid = heapq.heappop(ends)
            if epoch.get(jid) == e and jid in sched.running:
                ended = sched.finish(jid, t)
                idle = 0
                waiting = backlog.get(ended.array_id or "")
                if waiting:
                    sched.submit(waiting.pop())
        if (not sched.pending and not any(backlog.values())) or len(starts) == len(wanted):
            break
        res = sched.schedule(t, full=True)
        cycles += 1
        for rj, _why in res.preempted:
            epoch[rj.job_id] = epoch.get(rj.job_id, 0) + 1  # its end event is stale
            sched.submit(_requeued(rj, t))
        for job, rj in res.starts:
            if job.job_id in wanted and job.job_id not in starts:
                starts[job.job_id] = t
            e = epoch[job.job_id] = epoch.get(job.job_id, 0) + 1
            if math.isfinite(rj.walltime_s):
                run = rj.walltime_s * frac.get(rj.project, 1.0)
                heapq.heappush(ends, (t + run, e, job.job_id))
        idle = 0 if res.starts else idle + 1
        # The next event: a job's end, or a time the policy asked to be woken at (a
        # priority recalculation, a reservation's boundary). Wake-ups that start nothing,
        # one after another, are bounded: they cannot go on changing the outcome.
        nxt = ends[0][0] if ends else math.inf
        wake = res.wake_at
        if wake is not None and t < wake < nxt and idle < MAX_IDLE_WAKEUPS:
            nxt = wake
        if nxt > limit:
            break  # nothing more happens within the horizon: the rest cannot start in it
        t = nxt
    return Forecast(made_at=now, starts=starts, horizon_s=horizon_s, cycles=cycles)

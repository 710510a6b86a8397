"""``fair-las``: least attained service with fair share inside each level,
checkpoint-aware preemption and a starvation guard (docs/scheduling.md, "fair-las").

Run-time awareness without an oracle: a job's priority queue (*level*) comes from the
GPU-seconds it has already run (``las_thresholds_gpu_s``, Tiresias' discretised LAS), so
short jobs finish first while nobody knows job lengths in advance. Walltime estimates
are never read.

Fair share across projects: every cycle the GPUs are divided among the projects that
want them (running + waiting GPUs) by weighted max-min fairness (water-filling with the
projects' shares): project ``p`` is *entitled* to ``e_p`` GPUs; holding fewer, it is
*under* its share. Waiting jobs are considered in the order

    (level, project under its share first, project's held / entitled GPUs, submit time)

merged from per-project queues: LAS between levels, fair share inside a level.

Preemption: a waiting job may preempt running jobs of a higher level only (never of its
own level: no thrashing), never ``preemptible=False`` jobs, never a job that has run less
than ``fairlas_min_run_s`` since it started. Victims: highest level first, then the
project furthest over its share, then the least work lost (GPU-seconds since the last
checkpoint, ``checkpoint_interval_s``: the simulator requeues a job with that work lost).

Starvation guard: a job queued ``fairlas_starve_s`` (plus ``las_starve_limit`` x its last
run, when set) is *overdue*; the one queued longest is the *head*. It is tried first and
may preempt running jobs of any level (also ones younger than ``fairlas_min_run_s``),
except another head in its guard: once started it is not preempted for
``max(fairlas_min_run_s, checkpoint_interval_s)``. One head at a time, so every job starts
but a stream of overdue jobs cannot turn the cluster over at once.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, PendingQueue, Scheduler
from rechenwerk.scheduling.model import (
    Node,
    PendingJob,
    ProjectInfo,
    RunningJob,
    WaitReason,
    arrival_key,
)
from rechenwerk.scheduling.params import PolicyParams


def water_fill(
    demand: Mapping[str, float], weights: Mapping[str, float], capacity: float
) -> dict[str, float]:
    """Weighted max-min fair division of ``capacity`` among ``demand`` (no project gets
    more than it asks for; what a satisfied project leaves goes to the others by weight)."""
    out = dict.fromkeys(demand, 0.0)
    left = {p: d for p, d in demand.items() if d > 0}
    cap = capacity
    while left and cap > 1e-9:
        wsum = sum(weights.get(p, 1.0) for p in left)
        unit = cap / wsum
        done = [p for p, d in left.items() if d - out[p] <= unit * weights.get(p, 1.0)]
        if not done:
            for p in left:
                out[p] += unit * weights.get(p, 1.0)
            break
        for p in done:
            cap -= left[p] - out[p]
            out[p] = left[p]
            del left[p]
    return out


class FairLasScheduler(Scheduler):
    name = "fair-las"
    order_rule = (
        "by attained GPU time (LAS level, least first), then projects under their fair "
        "share first, then by the project's use of its share, then submit time; the "
        "longest-waiting overdue job first"
    )

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self.thresholds = tuple(params.las_thresholds_gpu_s)
        self.nlev = len(self.thresholds) + 1
        self.q: dict[str, list[PendingQueue]] = {}
        self._level: dict[str, int] = {}
        self.held: dict[str, int] = {}  # project -> GPUs of its running jobs
        self.wanted: dict[str, int] = {}  # project -> GPUs of its waiting jobs
        self._queued_at: dict[str, float] = {}
        self._last_run: dict[str, float] = {}
        self._due: list[tuple[float, str, int]] = []  # (overdue at, job, token)
        self._token: dict[str, int] = {}
        self._tokens = 0
        self.overdue: dict[str, PendingJob] = {}
        self._overdue_q: list[tuple[float, tuple[float, ...], str]] = []  # by queued time
        # started as the overdue head: not preempted until then (one checkpoint interval)
        self.guarded: dict[str, float] = {}
        self._demotions: list[tuple[float, str, float]] = []
        self.entitled: dict[str, float] = {}

    # -- bookkeeping -------------------------------------------------------------------
    def share_of(self, project: str) -> float:
        shares = self.params.shares
        if shares is not None and project in shares:
            return float(shares[project])
        info = self.projects.get(project)
        return info.share if info is not None else 1.0

    def level_of(self, attained_gpu_s: float) -> int:
        return bisect_right(self.thresholds, attained_gpu_s)

    def running_level(self, rj: RunningJob, now: float) -> int:
        return self.level_of(rj.attained_gpu_s + max(now - rj.start_time, 0.0) * rj.gpus)

    def _enqueue(self, job: PendingJob) -> None:
        lvl = self.level_of(job.attained_gpu_s)
        self._level[job.job_id] = lvl
        qs = self.q.get(job.project)
        if qs is None:
            qs = self.q[job.project] = [PendingQueue() for _ in range(self.nlev)]
        qs[lvl].push(self._order_key(job), job)
        self.wanted[job.project] = self.wanted.get(job.project, 0) + job.gpus
        now = self._queued_at[job.job_id] = max(self.now, job.submit_time)
        last = self._last_run.pop(job.job_id, None)
        if last is None:
            last = job.attained_gpu_s / max(job.gpus, 1)
        limit = self.params.las_starve_limit
        wait = self.params.fairlas_starve_s + (limit * last if limit is not None else 0.0)
        self._tokens += 1
        self._token[job.job_id] = self._tokens
        heapq.heappush(self._due, (now + wait, job.job_id, self._tokens))

    def _dequeue(self, job: PendingJob) -> None:
        jid = job.job_id
        self.q[job.project][self._level.pop(jid)].remove(job)
        self.wanted[job.project] -= job.gpus
        self._queued_at.pop(jid, None)
        self._token.pop(jid, None)
        self.overdue.pop(jid, None)

    def _on_start(self, rj: RunningJob) -> None:
        self.held[rj.project] = self.held.get(rj.project, 0) + rj.gpus
        if rj.gpus > 0:
            lvl = self.level_of(rj.attained_gpu_s)
            if lvl < len(self.thresholds):
                t = rj.start_time + (self.thresholds[lvl] - rj.attained_gpu_s) / rj.gpus
                heapq.heappush(self._demotions, (t, rj.job_id, rj.start_time))

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        self.held[rj.project] -= rj.gpus
        self.guarded.pop(rj.job_id, None)

    def _mark_overdue(self, now: float) -> None:
        due = self._due
        while due and due[0][0] <= now:
            _, jid, token = heapq.heappop(due)
            if self._token.get(jid) != token:
                continue
            del self._token[jid]
            job = self.pending[jid]
            self.overdue[jid] = job
            heapq.heappush(self._overdue_q, (self._queued_at[jid], self._order_key(job), jid))

    def _next_demotion(self, now: float) -> float | None:
        dem = self._demotions
        while dem:
            t, jid, started = dem[0]
            rj = self.running.get(jid)
            if rj is None or rj.start_time != started:
                heapq.heappop(dem)
                continue
            if t > now:
                return t
            heapq.heappop(dem)  # crossed a threshold: schedule its next crossing
            lvl = self.running_level(rj, now)
            if lvl < len(self.thresholds):
                nt = rj.start_time + (self.thresholds[lvl] - rj.attained_gpu_s) / rj.gpus
                heapq.heappush(dem, (max(nt, now + 1e-6), jid, started))
        return None

    def _entitlements(self) -> dict[str, float]:
        demand = {
            p: float(self.held.get(p, 0) + self.wanted.get(p, 0))
            for p in set(self.held) | set(self.wanted)
        }
        weights = {p: self.share_of(p) for p in demand}
        return water_fill(demand, weights, float(self.cluster.capacity))

    def _ratio(self, p: str) -> float:
        e = self.entitled.get(p, 0.0)
        h = self.held.get(p, 0)
        return h / e if e > 0 else math.inf

    def _project_iter(self, p: str, budget: int) -> Iterator[PendingJob]:
        for q in self.q[p]:
            if len(q):
                yield from q.first(budget)

    # -- the order, explained ----------------------------------------------------------
    def queue_order(self, now: float) -> list[PendingJob]:
        self.entitled = self._entitlements()
        self._mark_overdue(now)
        head = self._head()
        jobs = [j for qs in self.q.values() for q in qs for j in q if j is not head]

        def key(j: PendingJob) -> tuple[int, int, float, tuple[float, tuple[str | int, ...]]]:
            cls = 0 if self._ratio(j.project) < 1.0 else 1
            return (self._level[j.job_id], cls, self._ratio(j.project), arrival_key(j))

        jobs.sort(key=key)
        return ([head] if head is not None else []) + jobs

    def _head(self) -> PendingJob | None:
        q = self._overdue_q
        while q:
            at, _, jid = q[0]
            job = self.overdue.get(jid)
            if job is not None and self._queued_at.get(jid) == at:
                return job
            heapq.heappop(q)  # started or cancelled since
        return None

    # -- the cycle ---------------------------------------------------------------------
    def schedule(self, now: float, *, full: bool = False) -> CycleResult:
        res = super().schedule(now, full=full)
        wake = [t for t in (self._next_demotion(now),
                            self._due[0][0] if self._due else None) if t is not None]
        if self.pending and wake:
            w = min(wake)
            res.wake_at = w if res.wake_at is None else min(res.wake_at, w)
        return res

    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        self._next_demotion(now)
        self._mark_overdue(now)
        self.entitled = self._entitlements()
        c = self.cluster
        budget = self.params.max_job_test
        attempts = self.params.fairlas_max_preempt_tries
        head = self._head()
        pool: list[tuple[int, float, RunningJob]] | None = None
        if head is not None:
            budget -= 1
            plan = self._plan(head, now)
            guard = now + max(self.params.fairlas_min_run_s,
                              self.params.checkpoint_interval_s or 0.0)
            if plan is not None:
                self._start(head, plan, now, res)
                self.guarded[head.job_id] = guard
            elif self._preempt_for(head, 0, -1, now, res, self._pool(now, 0.0)):
                self.guarded[head.job_id] = guard
            elif self.explain:
                r = self.blocked_reason(head)
                res.reasons[head.job_id] = WaitReason(
                    r.code, f"{r.message} (overdue: considered first)")
        # a heap of project heads, merged in (class, level, ratio, arrival) order
        iters: dict[str, Iterator[PendingJob]] = {}
        heap: list[tuple[int, int, float, tuple[float, ...], str, PendingJob]] = []
        # level -> fewest GPUs a preemption attempt failed for (victims depend on the level)
        failed: dict[int, int] = {}

        def push_next(p: str) -> None:
            it = iters[p]
            for j in it:
                if j.job_id not in self.pending or j is head:
                    continue
                r = self._ratio(p)
                cl = 0 if r < 1.0 else 1
                heapq.heappush(heap, (self._level[j.job_id], cl, r, self._order_key(j), p, j))
                return

        for p in self.q:
            if self.wanted.get(p, 0) > 0:
                iters[p] = self._project_iter(p, self.params.max_job_test)
                push_next(p)
        while heap and budget > 0:
            lvl, cls, _, _, p, job = heapq.heappop(heap)
            budget -= 1
            if c.free_total == 0:
                # levels only grow along the heap: with no free GPU, only a job of a
                # lower level than some preemptible running job can still start
                if pool is None:
                    pool = self._pool(now)
                if not pool or pool[0][0] <= lvl:
                    break
            plan = self._plan(job, now)
            if plan is not None:
                self._start(job, plan, now, res)
            elif attempts > 0 and job.gpus < failed.get(lvl, 1 << 30):
                attempts -= 1
                if pool is None:
                    pool = self._pool(now)
                if self._preempt_for(job, cls, lvl, now, res, pool):
                    failed.clear()
                else:
                    failed[lvl] = job.gpus
                    if self.explain:
                        r = self.blocked_reason(job)
                        res.reasons[job.job_id] = WaitReason(
                            r.code, f"{r.message} (fair-LAS class {cls}, level {lvl})")
            elif self.explain:
                r = self.blocked_reason(job)
                res.reasons[job.job_id] = WaitReason(
                    r.code, f"{r.message} (fair-LAS class {cls}, level {lvl})")
            push_next(p)
        res.shared_reason = WaitReason(
            "priority", "behind jobs of projects further below their fair share or with "
            "less attained service (fair-LAS)")

    def _pool(self, now: float, min_run: float | None = None
              ) -> list[tuple[int, float, RunningJob]]:
        """Running jobs that may be preempted at all, least costly first: (level, lost
        GPU-seconds, job) sorted by highest level, then least work lost."""
        if min_run is None:
            min_run = self.params.fairlas_min_run_s
        out = [
            (self.running_level(rj, now), self._lost_gpu_s(rj, now), rj)
            for rj in self.running.values()
            if rj.preemptible and now - rj.start_time >= min_run
            and self.guarded.get(rj.job_id, -math.inf) <= now
        ]
        out.sort(key=lambda e: (-e[0], -self._ratio(e[2].project), e[1], -e[2].start_time))
        return out

    @staticmethod
    def _eligible(vl: int, lvl: int) -> bool:
        """LAS: only a job of a higher (longer-served) level may be preempted."""
        return vl > lvl

    def _lost_gpu_s(self, rj: RunningJob, now: float) -> float:
        ran = now - rj.start_time
        ck = self.params.checkpoint_interval_s
        since = ran if ck is None else ran - math.floor(ran / ck) * ck
        return since * rj.gpus

    def _preempt_for(self, job: PendingJob, cls: int, lvl: int, now: float,
                     res: CycleResult, pool: list[tuple[int, float, RunningJob]]) -> bool:
        """Preempt eligible running jobs (from ``pool``, in its order) until ``job``
        fits, then start it."""
        c = self.cluster
        free = c.free_for(job.gpu_type)
        need = job.gpus - free
        avail = 0
        for vl, _, rj in pool:
            if self._eligible(vl, lvl):
                avail += rj.gpus
                if avail >= need:
                    break
        if avail < need:
            return False
        released: list[RunningJob] = []
        plan = None
        for vl, _, rj in pool:
            if not self._eligible(vl, lvl):
                continue
            c.release(rj.placement)
            released.append(rj)
            if c.free_for(job.gpu_type) >= job.gpus:
                plan = self._plan(job, now)
                if plan is not None:
                    break
        if plan is None:
            for rj in released:
                c.allocate_exact(rj.placement)
            return False
        gone = {rj.job_id for rj in released}
        pool[:] = [e for e in pool if e[2].job_id not in gone]
        for rj in released:
            del self.running[rj.job_id]
            self._on_stop(rj, now)
            self._last_run[rj.job_id] = now - rj.start_time
            why = f"fair-LAS: job {job.job_id} (level {lvl}) has less attained service"
            res.preempted.append((rj, why))
        self._start(job, plan, now, res)
        return True

"""``las``: Tiresias-style discretised least-attained-service (2D-LAS), preemptive.

A job's attained service is GPUs x seconds it has run (across requeues). The thresholds
``las_thresholds_gpu_s`` split jobs into priority queues: queue 0 holds jobs that have
received less than the first threshold, and so on. Queues are served in order, FIFO by
submit time inside a queue. A waiting job may preempt running jobs of a *lower* queue
(highest queue, newest first) when that makes it fit; jobs in the same queue never
preempt each other, so short jobs finish fast and long jobs cannot thrash. A running job
is demoted when its attained service crosses a threshold (the policy asks to be woken
then via ``wake_at``). Up to ``max_job_test`` waiting jobs are examined per cycle.

Starvation guard (Tiresias' STARVELIMIT, ``las_starve_limit``, off by default): a job
waiting in a lower queue longer than ``las_starve_limit`` x its last run time (for a job
submitted with attained service but no run seen here: attained GPU-seconds / GPUs,
counted from its submission to this scheduler) is promoted to queue 0, where it gets
the first pick of free GPUs but does not preempt (victims promoted in turn would
thrash). When it starts it
runs in queue 0 for one queue-0 quantum (``las_thresholds_gpu_s[0]`` GPU-seconds), so
queue-0 arrivals cannot preempt it at once, and is then demoted by its attained service.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, PendingQueue, Scheduler
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, RunningJob, WaitReason
from rechenwerk.scheduling.params import PolicyParams


class LasScheduler(Scheduler):
    name = "las"

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self.thresholds = tuple(params.las_thresholds_gpu_s)
        n = len(self.thresholds) + 1
        self.queues = [PendingQueue() for _ in range(n)]
        self.running_at: list[dict[str, RunningJob]] = [{} for _ in range(n)]
        # GPUs of the preemptible running jobs per queue (kept with ``running_at``)
        self._preemptible_gpus = [0] * n
        self._pending_level: dict[str, int] = {}
        self._run_level: dict[str, int] = {}
        self._demotions: list[tuple[float, str, float]] = []
        self.starve_limit = params.las_starve_limit
        self._stopped: dict[str, tuple[float, float]] = {}  # job -> (stopped at, run s)
        self._promotions: list[tuple[float, str, int]] = []  # (due, job, token)
        self._promo_token: dict[str, int] = {}
        self._promoted: set[str] = set()  # promoted, waiting to start in queue 0
        self._quantum: set[str] = set()  # promoted and running their queue-0 quantum
        self._tokens = 0

    order_rule = "by attained GPU time (least first), then submit time"

    def queue_order(self, now: float) -> list[PendingJob]:
        return [job for q in self.queues for job in q]

    def level_of(self, attained_gpu_s: float) -> int:
        return bisect_right(self.thresholds, attained_gpu_s)

    def _enqueue(self, job: PendingJob) -> None:
        lvl = self.level_of(job.attained_gpu_s)
        self._pending_level[job.job_id] = lvl
        self.queues[lvl].push(self._order_key(job), job)
        stopped = self._stopped.pop(job.job_id, None)
        if self.starve_limit is not None and lvl > 0:
            if stopped is None:
                stopped = (self.now, job.attained_gpu_s / max(job.gpus, 1))
            since, run_s = stopped
            self._tokens += 1
            self._promo_token[job.job_id] = self._tokens
            due = since + self.starve_limit * run_s
            heapq.heappush(self._promotions, (due, job.job_id, self._tokens))

    def _dequeue(self, job: PendingJob) -> None:
        self.queues[self._pending_level.pop(job.job_id)].remove(job)
        self._promo_token.pop(job.job_id, None)

    def _promote(self, now: float) -> None:
        """Move jobs that waited past the starvation limit to queue 0."""
        pro = self._promotions
        while pro and pro[0][0] <= now:
            _, jid, token = heapq.heappop(pro)
            if self._promo_token.get(jid) != token:
                continue  # started or cancelled since
            del self._promo_token[jid]
            job = self.pending[jid]
            self.queues[self._pending_level[jid]].remove(job)
            self.queues[0].push(self._order_key(job), job)
            self._pending_level[jid] = 0
            self._promoted.add(jid)

    def _on_start(self, rj: RunningJob) -> None:
        if rj.job_id in self._promoted:
            self._promoted.discard(rj.job_id)
            if rj.gpus > 0:  # one queue-0 quantum before it is demoted again
                self._quantum.add(rj.job_id)
                self._place_running(rj, 0, rj.start_time + self.thresholds[0] / rj.gpus)
                return
        lvl = self.level_of(rj.attained_gpu_s)
        self._place_running(rj, lvl)

    def _place_running(self, rj: RunningJob, lvl: int, until: float | None = None) -> None:
        self._run_level[rj.job_id] = lvl
        self.running_at[lvl][rj.job_id] = rj
        if rj.preemptible:
            self._preemptible_gpus[lvl] += rj.gpus
        if lvl < len(self.thresholds) and rj.gpus > 0:
            t = rj.start_time + (self.thresholds[lvl] - rj.attained_gpu_s) / rj.gpus
            heapq.heappush(
                self._demotions, (until if until is not None else t, rj.job_id, rj.start_time)
            )

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        lvl = self._run_level.pop(rj.job_id)
        del self.running_at[lvl][rj.job_id]
        if rj.preemptible:
            self._preemptible_gpus[lvl] -= rj.gpus
        self._promoted.discard(rj.job_id)
        self._quantum.discard(rj.job_id)

    def _demote(self, now: float) -> None:
        dem = self._demotions
        while dem and dem[0][0] <= now:
            _, jid, started = heapq.heappop(dem)
            rj = self.running.get(jid)
            if rj is None or rj.start_time != started:
                continue  # ended or restarted since
            lvl = self._run_level[jid]
            del self.running_at[lvl][jid]
            if rj.preemptible:
                self._preemptible_gpus[lvl] -= rj.gpus
            nxt = lvl + 1
            if jid in self._quantum:  # end of a promoted job's quantum: back to its level
                self._quantum.discard(jid)
                attained = rj.attained_gpu_s + (now - rj.start_time) * rj.gpus
                nxt = max(nxt, self.level_of(attained))
            self._place_running(rj, nxt)

    def schedule(self, now: float, *, full: bool = False) -> CycleResult:
        res = super().schedule(now, full=full)
        wake = [h[0][0] for h in (self._demotions, self._promotions) if h]
        if wake:
            res.wake_at = min(wake)
        return res

    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        self._demote(now)
        if self._promotions:
            self._promote(now)
        c = self.cluster
        nlev = len(self.queues)
        below = self._preemptible_below()
        budget = self.params.max_job_test
        # Fast reject (same decisions): with one GPU type and no advance reservation, a
        # single-node job fits now iff some node has that many GPUs free, so a job larger
        # than ``most_free`` is not planned at all. ``most_free`` changes only when a job
        # starts or is preempted (a failed preemption restores the cluster exactly).
        fast = self.book is None and len(c.type_names) == 1 and not self.explain
        max_size = c.max_size
        most_free = self._most_free() if fast else 0
        no_fit: set[tuple[int, int | None, int | None, str | None]] = set()
        for lvl in range(nlev):
            q = self.queues[lvl]
            if not len(q):
                continue
            if c.free_total == 0 and below[lvl + 1] == 0:
                break
            # releasing every lower-queue job did not fit a job of this many GPUs: larger
            # jobs of this queue will not fit either (within this cycle)
            failed_at = 1 << 30
            # A single-node job of ``skip_lo`` <= g GPUs (<= max_size) neither fits now
            # (g > most_free) nor is anything preempted for it (g >= failed_at, or more
            # than the free and preemptible GPUs together): skipped without a look.
            # ``stop``: nothing fits and nothing can be preempted for anyone here. Both
            # change only when a job starts, is preempted or a preemption fails.
            skip_lo = (max(most_free + 1, min(failed_at, c.free_total + below[lvl + 1] + 1))
                       if fast else max_size + 1)
            stop = c.free_total == 0 and (failed_at <= 1 or below[lvl + 1] == 0)
            for job in q.first(budget):
                if stop:
                    break
                budget -= 1
                g = job.gpus
                if (
                    skip_lo <= g <= max_size
                    and job.nodes is None
                    and job.gpus_per_node is None
                    and job.gpu_type is None
                    and job.reservation is None
                ):
                    continue
                if (
                    fast
                    and most_free < g <= max_size
                    and job.nodes is None
                    and job.gpus_per_node is None
                    and job.gpu_type is None
                    and job.reservation is None
                ):
                    plan = None  # no node has ``g`` GPUs free
                elif fast and job.reservation is None:
                    # any other shape: the same request cannot fit until the cluster changes
                    shape = (g, job.nodes, job.gpus_per_node, job.gpu_type)
                    if shape in no_fit:
                        plan = None
                    else:
                        plan = self._plan(job, now)
                        if plan is None:
                            no_fit.add(shape)
                else:
                    plan = self._plan(job, now)
                if plan is not None:
                    self._start(job, plan, now, res)
                    if fast:
                        most_free = self._most_free()
                        no_fit.clear()
                        skip_lo = max(most_free + 1,
                                      min(failed_at, c.free_total + below[lvl + 1] + 1))
                    stop = c.free_total == 0 and (failed_at <= 1 or below[lvl + 1] == 0)
                    continue
                victims_gpus = below[lvl + 1]
                if (
                    g < failed_at
                    and c.free_for(job.gpu_type) + victims_gpus >= g
                    and job.job_id not in self._promoted  # promoted: first pick, no preemption
                ):
                    freed = self._preempt_for(job, lvl, now, res)
                    if freed >= 0:
                        below = self._preemptible_below()
                        if fast:
                            most_free = self._most_free()
                            no_fit.clear()
                            skip_lo = max(most_free + 1,
                                          min(failed_at, c.free_total + below[lvl + 1] + 1))
                        stop = c.free_total == 0 and (failed_at <= 1 or below[lvl + 1] == 0)
                        continue
                    failed_at = g
                    if fast:
                        skip_lo = max(most_free + 1,
                                      min(failed_at, c.free_total + below[lvl + 1] + 1))
                    stop = c.free_total == 0 and (failed_at <= 1 or below[lvl + 1] == 0)
                if self.explain:
                    r = self.blocked_reason(job)
                    res.reasons[job.job_id] = WaitReason(
                        r.code,
                        f"{r.message} (LAS queue {lvl}, attained {job.attained_gpu_s:.0f} GPU-s)",
                    )
                if c.free_total == 0 and below[lvl + 1] == 0:
                    break
            if budget <= 0:
                break
        res.shared_reason = WaitReason(
            "priority", "behind jobs with less attained service (LAS queues)"
        )

    def _preemptible_below(self) -> list[int]:
        """GPUs held by preemptible running jobs in each queue and all lower ones
        (O(queues): the per-queue sums are kept as jobs start, stop and are demoted)."""
        per = self._preemptible_gpus
        nlev = len(per)
        below = [0] * (nlev + 1)
        for lvl in range(nlev - 1, -1, -1):
            below[lvl] = below[lvl + 1] + per[lvl]
        return below

    def _most_free(self) -> int:
        """The most free GPUs on one node (one GPU type; its best-fit buckets)."""
        c = self.cluster
        b = c.buckets[c.type_names[0]]
        for k in range(c.max_size, 0, -1):
            if b[k]:
                return k
        return 0

    def _preempt_for(self, job: PendingJob, lvl: int, now: float, res: CycleResult) -> int:
        """Preempt running jobs of lower queues until ``job`` fits; GPUs freed or -1."""
        c = self.cluster
        g = job.gpus
        if (
            self.book is None
            and len(c.type_names) == 1
            and g <= c.max_size
            and job.nodes is None
            and job.gpus_per_node is None
            and job.gpu_type is None
            and job.reservation is None
        ):
            # a single-node job fits after the releases below iff some node has ``g``
            # GPUs free once every victim is released (releasing more only adds free
            # GPUs): check that first, without releasing and restoring anything
            most = list(c.free)
            index = c.index
            for vl in range(len(self.queues) - 1, lvl, -1):
                for rj in self.running_at[vl].values():
                    if rj.preemptible:
                        for name, idx in rj.placement:
                            most[index[name]] += len(idx)
            avail = c.avail
            if False in avail:
                most = [f for f, a in zip(most, avail, strict=True) if a]
            if max(most, default=0) < g:
                return -1
        released: list[RunningJob] = []
        plan = None
        for vl in range(len(self.queues) - 1, lvl, -1):
            for rj in reversed(list(self.running_at[vl].values())):
                if not rj.preemptible:
                    continue
                c.release(rj.placement)
                released.append(rj)
                if c.free_for(job.gpu_type) >= job.gpus:
                    plan = self._plan(job, now)
                    if plan is not None:
                        break
            if plan is not None:
                break
        if plan is None:
            for rj in released:
                c.allocate_exact(rj.placement)
            return -1
        for rj in released:
            del self.running[rj.job_id]
            self._on_stop(rj, now)
            if self.starve_limit is not None:  # its last run, read when it is requeued
                self._stopped[rj.job_id] = (now, now - rj.start_time)
            res.preempted.append((rj, f"LAS: job {job.job_id} has less attained service"))
        self._start(job, plan, now, res)
        return sum(rj.gpus for rj in released)

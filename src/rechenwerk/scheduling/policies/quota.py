"""``quota``: guaranteed GPUs per project, idle capacity borrowed, reclaimed by preemption.

Each project (Slurm: account) has a guarantee of ``guaranteed_gpus``. A job whose project
stays within its guarantee is *guaranteed*; a job beyond it *borrows* idle GPUs. When a
guaranteed job cannot start, the scheduler preempts borrowing jobs of other projects
(projects furthest over their guarantee first, newest job first) until it fits; the
victims are requeued and lose the work since their last checkpoint (the caller applies
``checkpoint_interval_s``). Each project's queue is FIFO; projects furthest below their
guarantee are served first in a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rechenwerk.scheduling.cycle import CycleResult, PendingQueue, Scheduler
from rechenwerk.scheduling.model import Node, PendingJob, ProjectInfo, RunningJob, WaitReason
from rechenwerk.scheduling.params import PolicyParams


class QuotaScheduler(Scheduler):
    name = "quota"

    def __init__(
        self,
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> None:
        super().__init__(nodes, params, projects, now)
        self.guarantee: dict[str, int] = {p: i.guaranteed_gpus for p, i in self.projects.items()}
        if params.guarantees:
            self.guarantee.update(params.guarantees)
        self.used: dict[str, int] = {}
        self.queues: dict[str, PendingQueue] = {}
        self.by_project: dict[str, dict[str, RunningJob]] = {}

    def _enqueue(self, job: PendingJob) -> None:
        q = self.queues.get(job.project)
        if q is None:
            q = self.queues[job.project] = PendingQueue()
        q.push(self._order_key(job), job)

    def _dequeue(self, job: PendingJob) -> None:
        self.queues[job.project].remove(job)

    def _on_start(self, rj: RunningJob) -> None:
        self.used[rj.project] = self.used.get(rj.project, 0) + rj.gpus
        self.by_project.setdefault(rj.project, {})[rj.job_id] = rj

    def _on_stop(self, rj: RunningJob, now: float) -> None:
        self.used[rj.project] -= rj.gpus
        del self.by_project[rj.project][rj.job_id]

    def _borrowed(self) -> int:
        g = self.guarantee
        return sum(max(0, u - g.get(p, 0)) for p, u in self.used.items())

    order_rule = ("by project, the one furthest below its guarantee first; "
                  "in a project by submit time")

    def _fill_order(self) -> list[str]:
        used, g = self.used, self.guarantee

        def fill(p: str) -> float:
            gp = g.get(p, 0)
            return used.get(p, 0) / gp if gp > 0 else float("inf")

        return sorted((p for p, q in self.queues.items() if len(q)), key=lambda p: (fill(p), p))

    def queue_order(self, now: float) -> list[PendingJob]:
        return [job for p in self._fill_order() for job in self.queues[p]]

    def _cycle(self, now: float, res: CycleResult, full: bool) -> None:
        c = self.cluster
        used, g = self.used, self.guarantee
        for p in self._fill_order():
            q = self.queues[p]
            while True:
                job = q.head()
                if job is None:
                    break
                within = used.get(p, 0) + job.gpus <= g.get(p, 0)
                plan = self._plan(job, now)
                if plan is not None:
                    self._start(job, plan, now, res)
                    continue
                if within and self._reclaim(job, now, res):
                    continue
                if not self.explain:
                    break
                reason = self.blocked_reason(job)
                if reason.code == "reservation":
                    pass
                elif within:
                    if reason.code == "resources":
                        reason = WaitReason(
                            "resources",
                            f"{reason.message}; within its guarantee of {g.get(p, 0)} GPUs, "
                            "but no borrowed GPUs can be reclaimed for it",
                        )
                else:
                    reason = WaitReason(
                        "quota",
                        f"project {p} would use {used.get(p, 0) + job.gpus} GPUs, beyond its "
                        f"guarantee of {g.get(p, 0)}; waiting for idle GPUs to borrow "
                        f"({c.free_for(job.gpu_type)} free)",
                    )
                res.reasons[job.job_id] = reason
                break
        res.shared_reason = WaitReason("priority", "behind the first waiting job of its project")

    def _reclaim(self, job: PendingJob, now: float, res: CycleResult) -> bool:
        """Preempt borrowers of other projects until ``job`` fits; False if it cannot."""
        c = self.cluster
        used, g = self.used, self.guarantee
        lenders = sorted(
            (q for q, u in used.items() if q != job.project and u > g.get(q, 0)),
            key=lambda q: (-(used[q] - g.get(q, 0)), q),
        )
        cands: list[RunningJob] = []
        for q in lenders:
            over = used[q] - g.get(q, 0)
            for rj in reversed(list(self.by_project[q].values())):  # newest first
                if over <= 0:
                    break
                if rj.preemptible:
                    cands.append(rj)
                    over -= rj.gpus
        if c.free_for(job.gpu_type) + sum(rj.gpus for rj in cands) < job.gpus:
            return False
        released: list[RunningJob] = []
        plan = None
        for rj in cands:
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
        started_now = {j.job_id: k for k, (j, _) in enumerate(res.starts)}
        undone: list[int] = []
        for rj in released:
            del self.running[rj.job_id]
            self._on_stop(rj, now)
            k = started_now.get(rj.job_id)
            if k is not None:
                # Started earlier in this same decision (a borrower of the idle GPUs):
                # the decision simply does not start it; preempting a job that never
                # ran would hand its GPUs out twice.
                undone.append(k)
                continue
            res.preempted.append(
                (rj, f"quota reclaim: project {job.project} needs its guarantee (job {job.job_id})")
            )
        for k in sorted(undone, reverse=True):
            back, _ = res.starts.pop(k)
            self.pending[back.job_id] = back
            self._enqueue(back)
        self._start(job, plan, now, res)
        return True

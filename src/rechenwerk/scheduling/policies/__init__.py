"""Policies by name: ``make_policy("multifactor+easy-backfill").decide(snapshot)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.cycle import Scheduler
from rechenwerk.scheduling.model import (
    Decision,
    Node,
    Preemption,
    ProjectInfo,
    Snapshot,
    Start,
    WaitReason,
    arrival_key,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies.priority import PriorityScheduler

Factory = Callable[
    [Sequence[Node], PolicyParams, Mapping[str, ProjectInfo] | None, float], Scheduler
]


def _priority(multifactor: bool, backfill: str) -> Factory:
    def make(
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None,
        now: float,
    ) -> Scheduler:
        return PriorityScheduler(
            nodes, params, projects, now, multifactor=multifactor, backfill=backfill
        )

    return make


def _quota(
    nodes: Sequence[Node],
    params: PolicyParams,
    projects: Mapping[str, ProjectInfo] | None,
    now: float,
) -> Scheduler:
    from rechenwerk.scheduling.policies.quota import QuotaScheduler

    return QuotaScheduler(nodes, params, projects, now)


def _las(
    nodes: Sequence[Node],
    params: PolicyParams,
    projects: Mapping[str, ProjectInfo] | None,
    now: float,
) -> Scheduler:
    from rechenwerk.scheduling.policies.las import LasScheduler

    return LasScheduler(nodes, params, projects, now)


POLICIES: dict[str, Factory] = {
    "fifo": _priority(False, "none"),
    "easy-backfill": _priority(False, "easy"),
    "conservative-backfill": _priority(False, "conservative"),
    "multifactor": _priority(True, "none"),
    "multifactor+easy-backfill": _priority(True, "easy"),
    "multifactor+conservative-backfill": _priority(True, "conservative"),
    "quota": _quota,
    "las": _las,
}
ALIASES = {
    "backfill": "easy-backfill",
    "easy": "easy-backfill",
    "conservative": "conservative-backfill",
    "easy-backfill+multifactor": "multifactor+easy-backfill",
    "conservative-backfill+multifactor": "multifactor+conservative-backfill",
}


def policy_names() -> list[str]:
    return list(POLICIES)


class Policy:
    """A named scheduling policy. ``decide`` is pure: snapshot in, decision out."""

    def __init__(self, name: str, factory: Factory, params: PolicyParams) -> None:
        self.name = name
        self.params = params
        self._factory = factory

    def __repr__(self) -> str:
        return f"Policy({self.name!r})"

    def scheduler(
        self,
        nodes: Sequence[Node],
        projects: Mapping[str, ProjectInfo] | None = None,
        now: float = 0.0,
    ) -> Scheduler:
        """A fresh incremental scheduler (what the simulator keeps across events)."""
        return self._factory(nodes, self.params, projects, now)

    def decide(self, snapshot: Snapshot) -> Decision:
        now = snapshot.now
        sched = self.scheduler(snapshot.nodes, snapshot.projects, now)
        for rj in snapshot.running:
            sched.add_running(rj)
        for job in sorted(snapshot.pending, key=arrival_key):
            sched.submit(job)
        res = sched.schedule(now, full=True)
        started = {j.job_id for j, _ in res.starts}
        shared = res.shared_reason or WaitReason("priority", "behind higher-priority jobs")
        waiting: dict[str, WaitReason] = {}
        for job in snapshot.pending:
            if job.job_id not in started:
                waiting[job.job_id] = res.reasons.get(job.job_id, shared)
        # a job preempted and restarted in the same cycle cannot happen; keep order stable
        return Decision(
            starts=tuple(Start(rj.job_id, rj.placement) for _, rj in res.starts),
            preemptions=tuple(Preemption(rj.job_id, why) for rj, why in res.preempted),
            waiting=waiting,
            wake_at=res.wake_at,
        )


def make_policy(expr: str, params: PolicyParams | None = None) -> Policy:
    """``expr``: fifo, easy-backfill, conservative-backfill, multifactor,
    multifactor+easy-backfill, multifactor+conservative-backfill, quota, las."""
    key = expr.strip().lower().replace("_", "-").replace(" ", "")
    key = ALIASES.get(key, key)
    factory = POLICIES.get(key)
    if factory is None:
        raise InvalidInput(
            f"unknown scheduling policy {expr!r}",
            field="policy",
            hint="valid policies: " + ", ".join(POLICIES),
        )
    return Policy(key, factory, params or PolicyParams())


__all__ = ["POLICIES", "Policy", "PolicyParams", "make_policy", "policy_names"]

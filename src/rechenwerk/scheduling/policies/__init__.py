"""Policies by name: ``make_policy("multifactor+easy-backfill").decide(snapshot)``.

The registry. Queue-ordered policies are one *ordering* (``ordering.py``: fifo,
multifactor; Slurm's priority plugins) combined with one *backfill* (``backfill.py``:
none, EASY, conservative; Slurm's scheduler plugins) by ``compose``. ``quota``
(``quota.py``) and ``las`` (``las.py``) order and preempt in their own way and stand
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import cast

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.cycle import Scheduler
from rechenwerk.scheduling.model import (
    Decision,
    Node,
    ProjectInfo,
    RunningJob,
    Snapshot,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies.backfill import (
    ConservativeBackfill,
    EasyBackfill,
    NoBackfill,
)
from rechenwerk.scheduling.policies.base import QueueScheduler
from rechenwerk.scheduling.policies.ordering import FifoOrdering, MultifactorOrdering

Factory = Callable[
    [Sequence[Node], PolicyParams, Mapping[str, ProjectInfo] | None, float], Scheduler
]

ORDERINGS: dict[str, type[QueueScheduler]] = {
    "fifo": FifoOrdering,
    "multifactor": MultifactorOrdering,
}
BACKFILLS: dict[str, type[QueueScheduler]] = {
    "none": NoBackfill,
    "easy": EasyBackfill,
    "conservative": ConservativeBackfill,
}


@cache
def compose(ordering: str, backfill: str) -> type[QueueScheduler]:
    """The scheduler class of ``ordering`` (``ORDERINGS``) with ``backfill``
    (``BACKFILLS``). The ordering comes first in the MRO so that its ``_cycle`` can
    refresh priorities before the backfill mixin's main and backfill passes; built once
    per pair, so no cycle dispatches on the names."""
    o, b = ORDERINGS[ordering], BACKFILLS[backfill]
    parts = ([] if ordering == "fifo" else [ordering]) + (
        [] if backfill == "none" else [f"{backfill}-backfill"]
    )
    cls_name = o.__name__.removesuffix("Ordering") + b.__name__
    ns: dict[str, object] = {"name": "+".join(parts) or "fifo", "__module__": __name__}
    ns.update(_joined_hooks(o, b))
    return cast(type[QueueScheduler], type(cls_name, (o, b), ns))


def _joined_hooks(o: type[QueueScheduler], b: type[QueueScheduler]) -> dict[str, object]:
    """``_on_start`` / ``_on_stop`` for a class where both axes track running jobs: the
    backfill's hook, then the ordering's (mixin hooks do not chain with ``super()``)."""
    out: dict[str, object] = {}
    o_start, b_start = o._on_start, b._on_start
    if o_start is not Scheduler._on_start and b_start is not Scheduler._on_start:

        def _on_start(self: QueueScheduler, rj: RunningJob) -> None:
            b_start(self, rj)
            o_start(self, rj)

        out["_on_start"] = _on_start
    o_stop, b_stop = o._on_stop, b._on_stop
    if o_stop is not Scheduler._on_stop and b_stop is not Scheduler._on_stop:

        def _on_stop(self: QueueScheduler, rj: RunningJob, now: float) -> None:
            b_stop(self, rj, now)
            o_stop(self, rj, now)

        out["_on_stop"] = _on_stop
    return out


def _queued(ordering: str, backfill: str) -> Factory:
    cls = compose(ordering, backfill)

    def make(
        nodes: Sequence[Node],
        params: PolicyParams,
        projects: Mapping[str, ProjectInfo] | None,
        now: float,
    ) -> Scheduler:
        return cls(nodes, params, projects, now)

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


def _fair_las(
    nodes: Sequence[Node],
    params: PolicyParams,
    projects: Mapping[str, ProjectInfo] | None,
    now: float,
) -> Scheduler:
    from rechenwerk.scheduling.policies.fair_las import FairLasScheduler

    return FairLasScheduler(nodes, params, projects, now)


POLICIES: dict[str, Factory] = {
    "fifo": _queued("fifo", "none"),
    "easy-backfill": _queued("fifo", "easy"),
    "conservative-backfill": _queued("fifo", "conservative"),
    "multifactor": _queued("multifactor", "none"),
    "multifactor+easy-backfill": _queued("multifactor", "easy"),
    "multifactor+conservative-backfill": _queued("multifactor", "conservative"),
    "quota": _quota,
    "las": _las,
    "fair-las": _fair_las,
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
        """One cycle from scratch on the snapshot (the live loop keeps its scheduler
        between cycles instead: ``scheduling.incremental.IncrementalCore``)."""
        from rechenwerk.scheduling.incremental import build_scheduler, decision_of

        sched = build_scheduler(self, snapshot)
        return decision_of(sched.schedule(snapshot.now, full=True), snapshot.pending)


def make_policy(expr: str, params: PolicyParams | None = None) -> Policy:
    """``expr``: fifo, easy-backfill, conservative-backfill, multifactor,
    multifactor+easy-backfill, multifactor+conservative-backfill, quota, las, fair-las."""
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


__all__ = [
    "ALIASES",
    "BACKFILLS",
    "ORDERINGS",
    "POLICIES",
    "Policy",
    "PolicyParams",
    "compose",
    "make_policy",
    "policy_names",
]

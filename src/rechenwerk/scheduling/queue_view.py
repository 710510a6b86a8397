"""The pending queue as the core orders it, with each job's priority term by term.

What ``squeue --sort`` and ``sprio`` answer in Slurm: the API, the CLI and the portal show
the queue in this order (not by QOS and submit time) and explain each job's place.
Pure, like the rest of the core: a snapshot in, a view out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rechenwerk.scheduling.incremental import build_scheduler
from rechenwerk.scheduling.model import QueuedJob, QueueView, Snapshot

if TYPE_CHECKING:
    from rechenwerk.scheduling.policies import Policy


def explain_queue(policy: Policy, snap: Snapshot) -> QueueView:
    """Every pending job of ``snap`` in the order the policy's next main pass considers
    them, as a scheduler rebuilt from the snapshot would (the live loop's own scheduler
    recalculates multifactor priorities every ``priority_calc_period_s``)."""
    sched = build_scheduler(policy, snap)
    now = snap.now
    ordered = sched.queue_order(now)
    jobs = tuple(
        QueuedJob(job_id=job.job_id, position=i,
                  priority=sched.priority_factors(job, now))
        for i, job in enumerate(ordered, start=1)
    )
    return QueueView(policy=policy.name, order=sched.order_rule, jobs=jobs)

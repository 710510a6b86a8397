"""The pure scheduling core: snapshot in, decision out.

    from rechenwerk.scheduling import Node, PendingJob, Snapshot, make_policy

    policy = make_policy("multifactor+easy-backfill")
    decision = policy.decide(Snapshot(now=t, nodes=nodes, running=running, pending=pending))
    for p in decision.preemptions: ...   # requeue these first
    for s in decision.starts: ...        # s.placement == (("node1", (0, 1)), ...)
    decision.waiting["job-7"]            # WaitReason(code="resources", message="...")

Times are float seconds on the caller's axis; no database, web or wall clock in here.
The simulator uses the same policies incrementally through ``Policy.scheduler(...)``.
"""

from rechenwerk.scheduling.model import (
    ClusterSpec,
    Decision,
    Node,
    PendingJob,
    Placement,
    Preemption,
    ProjectInfo,
    Reservation,
    RunningJob,
    Snapshot,
    Start,
    WaitReason,
    arrival_key,
)
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies import Policy, make_policy, policy_names

__all__ = [
    "ClusterSpec",
    "Decision",
    "Node",
    "PendingJob",
    "Placement",
    "Policy",
    "PolicyParams",
    "Preemption",
    "ProjectInfo",
    "Reservation",
    "RunningJob",
    "Snapshot",
    "Start",
    "WaitReason",
    "arrival_key",
    "make_policy",
    "policy_names",
]

"""The job lifecycle as an explicit state machine.

::

    pending --> starting --> running --> completed | failed | timeout | cancelled
       ^           |            |
       |           +------------+--> preempted --(requeue)--> pending
       +-- (launch failed, requeued) --+

Terminal states stay terminal. Every state change goes through :func:`check_transition`
and is written with a guarded ``UPDATE ... WHERE state IN (allowed sources)`` so that
duplicate or late backend events are harmless.
"""

from __future__ import annotations

import enum

from rechenwerk.errors import InvalidTransition


class JobState(enum.StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    PREEMPTED = "preempted"


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT}
)
# States in which a job holds GPUs (placement) on the cluster.
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.STARTING, JobState.RUNNING})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.STARTING, JobState.CANCELLED, JobState.FAILED}),
    JobState.STARTING: frozenset(
        {
            JobState.RUNNING,
            JobState.PENDING,  # the launch failed: revert and requeue
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMEOUT,
            JobState.PREEMPTED,
        }
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMEOUT,
            JobState.PREEMPTED,
        }
    ),
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.TIMEOUT: frozenset(),
}


def sources_of(target: JobState) -> frozenset[JobState]:
    """Every state from which ``target`` may be reached (for guarded updates)."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def can_transition(source: JobState, target: JobState) -> bool:
    return target in ALLOWED_TRANSITIONS[source]


def check_transition(source: JobState, target: JobState, *, job_id: int | str = "?") -> None:
    if not can_transition(source, target):
        if source in TERMINAL_STATES:
            hint = f"Job {job_id} has already ended ({source}); terminal states are final."
        else:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[source])) or "none"
            hint = f"From {source} a job may go to: {allowed}."
        raise InvalidTransition(
            f"job {job_id} cannot go from {source} to {target}", hint=hint, field="state"
        )

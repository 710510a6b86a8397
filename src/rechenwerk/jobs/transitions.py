"""Every state change of a job goes through :func:`transition`: one guarded
``UPDATE ... WHERE state = <from>`` plus its event, so duplicate or late changes are
harmless and terminal states stay terminal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rechenwerk.jobs.models import Job, JobEvent
from rechenwerk.jobs.states import (
    JobState,
    can_transition,
)
from rechenwerk.observability import instruments

instruments.init_job_states(s.value for s in JobState)


def transition(
    session: Session,
    job: Job,
    target: JobState,
    *,
    now: datetime,
    reason: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move ``job`` to ``target`` if the table allows it from the state it has in the
    database: ``UPDATE jobs SET ... WHERE id = :id AND state = :current``. Returns False
    (and changes nothing) for a disallowed, duplicate or late transition."""
    source = JobState(job.state)
    if not can_transition(source, target):
        return False
    changes: dict[str, Any] = {"state": target.value, "updated_at": now, **dict(values or {})}
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == source.value)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.refresh(job)
        return False
    for key, value in changes.items():  # mirror the row without marking the object dirty
        set_committed_value(job, key, value)
    session.add(JobEvent(job_id=job.id, at=now, from_state=source.value,
                         to_state=target.value, reason=reason))
    instruments.count_state_change(target.value)  # before the commit (a rollback is rare)
    return True



"""Builders for the report tests: usage records and jobs with chosen times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from rechenwerk.access.models import Project, User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.jobs.models import Job

JAN = datetime(2026, 1, 1, tzinfo=UTC)


def add_usage(session: Session, project: Project, *, start: datetime, hours: float,
              gpus: int, gpu_type: str | None = "A100-80GB",
              period_id: int | None = None) -> UsageRecord:
    rec = UsageRecord(project_id=project.id, award_period_id=period_id, gpu_type=gpu_type,
                      gpus=gpus, started_at=start,
                      ended_at=start + timedelta(hours=hours / gpus),
                      gpu_hours=hours, source="local", created_at=start)
    session.add(rec)
    return rec


def add_job(session: Session, project: Project, user: User, *, submitted: datetime,
            wait_h: float | None, gpus: int = 1, qos: str = "normal", state: str = "completed",
            run_h: float = 1.0) -> Job:
    started = submitted + timedelta(hours=wait_h) if wait_h is not None else None
    job = Job(project_id=project.id, user_id=user.id, name="j", spec={}, state=state, qos=qos,
              requested_qos=qos, over_budget=False, gpus=gpus, walltime_s=7200,
              attempt=1 if started else 0, attained_gpu_s=0.0, submitted_at=submitted,
              started_at=started,
              ended_at=started + timedelta(hours=run_h) if started and state == "completed"
              else None,
              updated_at=submitted)
    session.add(job)
    return job


@dataclass
class Centre:
    alpha: Project
    beta: Project
    pi_alpha: User
    pi_beta: User
    operator: User



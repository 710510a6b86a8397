"""A few weeks of plausible finished jobs for the demo centre, so that a fresh
``make run`` shows balances that have moved, burn-down charts with a slope and reports
with figures (``rechenwerk admin demo``; the portal's tests use the same history).

Jobs of 1-8 GPUs, half an hour to six hours, about one in ten failed, each charged to the
project's award through the accounting service like a real run."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.demo import DEMO_GPU_TYPE, quarter_start
from rechenwerk.access.models import Project, ProjectMembership
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.jobs.models import Job, JobEvent

HISTORY_DAYS = 21
# demo project -> (GPU-hours a day it used, seed): busy and less busy projects
DEMO_HISTORY: dict[str, tuple[float, int]] = {"nordlicht-llm": (60.0, 1),
                                             "nordstadt-climate": (90.0, 2)}


def add_history(session: Session, project_slug: str, *, now: datetime, gpus_per_day: float,
                seed: int, days: int = HISTORY_DAYS) -> int:
    """Finished jobs of ``project_slug`` over the last ``days`` days (not before the
    quarter's start, where the demo awards begin), each charged to the project."""
    rng = random.Random(seed)
    project = session.scalars(select(Project).where(Project.slug == project_slug)).one()
    users = list(session.scalars(select(ProjectMembership.user_id).where(
        ProjectMembership.project_id == project.id,
        ProjectMembership.role.in_(("pi", "member")))))
    first = max(now - timedelta(days=days), quarter_start(now) + timedelta(hours=1))
    n = 0
    t = first
    while t < now - timedelta(hours=2):
        gpus = rng.choice((1, 2, 4, 8))
        run_h = min(rng.uniform(0.5, 6.0), gpus_per_day / gpus)
        submitted = t
        started = submitted + timedelta(minutes=rng.uniform(1, 90))
        ended = min(started + timedelta(hours=run_h), now - timedelta(minutes=5))
        if ended <= started:
            break
        state = "completed" if rng.random() > 0.1 else "failed"
        name = f"train-{n:03d}"
        job = Job(project_id=project.id, user_id=rng.choice(users), name=name,
                  spec={"name": name, "project": project_slug, "gpus": gpus,
                        "walltime": 8 * 3600, "command": ["python3", "train.py"]},
                  state=state, qos=rng.choice(("normal", "normal", "high", "low")),
                  requested_qos="normal", over_budget=False, gpus=gpus, walltime_s=8 * 3600,
                  attempt=1, attained_gpu_s=0.0, submitted_at=submitted, started_at=started,
                  ended_at=ended, exit_code=0 if state == "completed" else 1,
                  reason=None if state == "completed" else "exit code 1",
                  backend="local", updated_at=ended)
        session.add(job)
        session.flush()
        for at, frm, to in ((submitted, None, "pending"), (started, "pending", "starting"),
                            (started, "starting", "running"), (ended, "running", state)):
            session.add(JobEvent(job_id=job.id, at=at, from_state=frm, to_state=to,
                                 reason=None))
        settle_usage(session, project_id=project.id, gpus=gpus, started_at=started,
                     ended_at=ended, now=ended, job_id=job.id, attempt=1,
                     gpu_type=DEMO_GPU_TYPE)
        n += 1
        t = submitted + timedelta(hours=gpus * run_h * 24.0 / gpus_per_day)
    return n


def add_demo_history(session: Session, *, now: datetime) -> int:
    """The demo's history for its busy projects; the number of jobs added."""
    return sum(add_history(session, slug, now=now, gpus_per_day=rate, seed=seed)
               for slug, (rate, seed) in DEMO_HISTORY.items())

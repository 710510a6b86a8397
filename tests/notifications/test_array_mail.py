"""A job array is mailed once, when its last task has ended (not once per task)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from factories import T0, make_project, make_user
from rechenwerk.jobs.models import Job
from rechenwerk.notifications import service as notes
from rechenwerk.notifications.models import OutboxMessage


def test_one_mail_per_array_after_its_last_task(session: Session) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    end = T0 + timedelta(hours=1)
    tasks = []
    for i, state in enumerate(("completed", "completed", "failed", "running")):
        job = Job(project_id=project.id, user_id=pi.id, name="sweep", spec={}, state=state,
                  qos="normal", requested_qos="normal", over_budget=False, gpus=1,
                  walltime_s=7200, attempt=1, attained_gpu_s=0.0, submitted_at=T0,
                  started_at=T0, ended_at=None if state == "running" else end,
                  updated_at=end, exit_code=None if state == "running" else 0,
                  array_task_id=i)
        session.add(job)
        session.flush()
        tasks.append(job)
    head = tasks[0].id
    session.execute(update(Job).where(Job.id.in_([t.id for t in tasks]))
                    .values(array_job_id=head))
    session.flush()
    notes.set_preferences(session, pi, job_finished=True, job_failed=True,
                          low_balance_percent=10, now=end)
    assert notes.scan(session, now=end) == 0  # a task still runs
    later = end + timedelta(minutes=5)
    session.execute(update(Job).where(Job.id == tasks[3].id)
                    .values(state="completed", ended_at=later, exit_code=0))
    session.expire_all()
    assert notes.scan(session, now=later) == 1
    assert notes.scan(session, now=later) == 0  # once
    [msg] = session.scalars(select(OutboxMessage)).all()
    assert msg.event == "job_failed"  # one task failed
    assert f"Job array {head} (sweep) ended: 3 completed, 1 failed" == msg.subject
    assert f"rechenwerk job show {head}" in msg.body

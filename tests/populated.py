"""A populated centre for the backup/restore and migration tests: the demo data (through
the services, audited) plus jobs in every kind of state with their events and usage, a
Slurm-imported usage record, a drained node, notifications, a portal session and a login
throttle counter, so that every table of the schema holds rows.

    result = populate(session, now=now, settings=settings)   # the caller commits
    rows = snapshot(engine)                                   # table -> rows, by key
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from rechenwerk.access.award_changes import decide_change, request_change
from rechenwerk.access.demo import load_demo
from rechenwerk.access.models import (
    Award,
    LoginAttempt,
    Project,
    ProjectMembership,
    Proposal,
    User,
)
from rechenwerk.access.oidc.models import OidcIdentity, OidcPending
from rechenwerk.access.portal_sessions import start_portal_session
from rechenwerk.access.proposals import withdraw_proposal
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.execution.gpu_use import GpuUse
from rechenwerk.jobs.models import Job, NodeState, QueueOrderRecord, ReservationRecord
from rechenwerk.jobs.service import submit_job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.jobs.states import JobState
from rechenwerk.jobs.transitions import transition
from rechenwerk.notifications.models import NotificationPreference, OutboxMessage
from rechenwerk.store.tables import metadata

PROJECT = "nordlicht-llm"  # greta's project, awarded 5,000 GPU-hours in the demo


@dataclass
class Populated:
    tokens: dict[str, str]  # demo username -> API token secret
    jobs: dict[str, int] = field(default_factory=dict)  # completed, failed, ... -> job id
    max_job_id: int = 0  # the highest job id stored (a job array's last task)


def _job(session: Session, user: User, settings: Settings, now: datetime, *, name: str,
         gpus: int, walltime: str, depends_on: dict[str, list[int]] | None = None) -> Job:
    doc: dict[str, object] = {"name": name, "project": PROJECT, "command": "true",
                              "gpus": gpus, "walltime": walltime}
    if depends_on:
        doc["depends_on"] = depends_on
    spec = parse_spec(doc)
    return submit_job(session, user, spec, clock=FakeClock(now), settings=settings).job


def _start(session: Session, job: Job, at: datetime) -> None:
    assert transition(session, job, JobState.STARTING, now=at, reason="placed", values={
        "attempt": 1, "backend": "local", "backend_handle": f"{job.id}.1",
        "placement": [["node01", list(range(job.gpus))]]})
    assert transition(session, job, JobState.RUNNING, now=at, reason="running",
                      values={"started_at": at})


def _finish(session: Session, job: Job, state: JobState, at: datetime, exit_code: int) -> None:
    assert job.started_at is not None
    assert transition(session, job, state, now=at, reason=f"exit code {exit_code}",
                      values={"ended_at": at, "exit_code": exit_code,
                              "attained_gpu_s": job.gpus * (at - job.started_at)
                              .total_seconds()})
    settle_usage(session, project_id=job.project_id, gpus=job.gpus,
                 started_at=job.started_at, ended_at=at, now=at, job_id=job.id,
                 attempt=job.attempt, award_period_id=job.award_period_id,
                 gpu_type=job.gpu_type)


def populate(session: Session, *, now: datetime, settings: Settings) -> Populated:
    """Fill an empty database at the newest schema; the caller commits."""
    demo = load_demo(session, now=now)
    out = Populated(tokens=demo.tokens)
    users = {u.username: u for u in session.scalars(select(User))}
    greta = users["greta"]
    earlier = now - timedelta(hours=3)

    completed = _job(session, greta, settings, earlier, name="completed", gpus=2,
                     walltime="2h")
    _start(session, completed, earlier + timedelta(minutes=1))
    _finish(session, completed, JobState.COMPLETED, earlier + timedelta(minutes=61), 0)
    failed = _job(session, greta, settings, earlier, name="failed", gpus=1, walltime="1h")
    _start(session, failed, earlier + timedelta(minutes=2))
    _finish(session, failed, JobState.FAILED, earlier + timedelta(minutes=32), 3)
    cancelled = _job(session, users["jonas"], settings, earlier, name="cancelled", gpus=1,
                     walltime="1h")
    assert transition(session, cancelled, JobState.CANCELLED, now=earlier,
                      reason="cancelled by jonas", values={"ended_at": earlier})
    running = _job(session, greta, settings, now - timedelta(minutes=20), name="running",
                   gpus=2, walltime="1h")
    _start(session, running, now - timedelta(minutes=19))
    pending = _job(session, greta, settings, now - timedelta(minutes=1), name="pending",
                   gpus=1, walltime="10m", depends_on={"after_any": [running.id]})
    sweep = submit_job(session, greta, parse_spec({
        "name": "sweep", "project": PROJECT, "command": "true", "gpus": 1,
        "walltime": "10m", "array": "0-2%1"}), clock=FakeClock(now), settings=settings).job
    out.jobs = {"completed": completed.id, "failed": failed.id, "cancelled": cancelled.id,
                "running": running.id, "pending": pending.id, "array": sweep.id}
    session.flush()
    out.max_job_id = int(session.scalar(select(func.max(Job.id))) or 0)

    # Usage imported from Slurm (no Rechenwerk job), and the Slurm-side energy figures.
    assert completed.award_period_id is not None
    settle_usage(session, project_id=completed.project_id, gpus=4,
                 started_at=earlier, ended_at=earlier + timedelta(minutes=15), now=now,
                 source="slurm", external_id="slurm:4711:0",
                 award_period_id=completed.award_period_id, gpu_type="A100-80GB",
                 energy_kwh=1.25, co2_kg=0.4, energy_measured=True,
                 gpu_use=GpuUse("slurm", 4, 37.5, 21 << 30, 120.0, 900.0))

    # A withdrawn proposal, and an estimate attached to the one under review.
    proposals = {p.title: p for p in session.scalars(select(Proposal))}
    withdraw_proposal(session, users["amelie"],
                      proposals["Ablation runs for the data pipeline"], now=now,
                      reason="merged into the main proposal")
    review = proposals["Self-supervised pre-training on warehouse video"]
    review.estimate_inputs = {"params": 1.0e9, "tokens": 2.0e10, "gpu": "A100-80GB",
                              "gpus": 8}
    review.estimate_result = {"gpu_hours": 812.5, "days": 4.2}
    review.estimate_attached_at = now

    session.add(NodeState(name="node02", drained=True, reason="fan replaced",
                          updated_at=now, updated_by="operator"))
    session.add(NotificationPreference(user_id=greta.id, job_finished=True,
                                       job_failed=True, low_balance_percent=20,
                                       updated_at=now))
    session.add(OutboxMessage(user_id=greta.id, to_address=greta.email,
                              event="job_finished", subject="job 1 completed",
                              body="Your job completed.", dedup_key=f"job:{completed.id}:end",
                              created_at=now, next_attempt_at=now, sent_at=now, attempts=1,
                              last_error="", gave_up=False))
    session.add(LoginAttempt(kind="user", key="jonas", window_start=now, count=2))
    session.add(ReservationRecord(
        name="hero-monday", starts_at=now + timedelta(days=5), ends_at=now + timedelta(days=6),
        maintenance=False, project_ids=[completed.project_id], gpu_type=None,
        requested_gpus=8, gpus=[["node01", 8]], created_by="operator", created_at=now))
    # an approved extension of greta's award: its second version
    award = session.scalars(select(Award).join(Project, Project.id == Award.project_id)
                            .where(Project.pi_user_id == greta.id).order_by(Award.id)).first()
    assert award is not None
    extension = request_change(session, greta, award, kind="extension",
                               until=award.expires_at + timedelta(days=30),
                               reason="two weeks of cluster outage", now=now)
    decide_change(session, users["operator"], extension, decision="approved",
                  note="Agreed: the outage was ours.", now=now)
    # the scheduler loop's last order: the pending job and the array's task 0 waiting
    session.add(QueueOrderRecord(
        id=1, at=now, policy="multifactor+easy-backfill",
        order_rule="by multifactor priority, highest first (age, fair share, size, QOS)",
        jobs=[[sweep.id, 1.5, 9000.0, 1.0, 500.0], [pending.id, 2.0, 8000.0, 1.0, 500.0]]))
    start_portal_session(session, greta, now=now, max_age_s=3600)
    # Federated sign-in: jonas linked to a provider account, a membership its claims
    # granted, and a browser sign-in under way.
    session.add(OidcIdentity(issuer="https://aai.example/oauth2", subject="jonas-at-aai",
                             provider="aai", user_id=users["jonas"].id,
                             granted={"reviewer": True}, created_at=now, last_login_at=now))
    membership = session.get(ProjectMembership, (completed.project_id, users["jonas"].id))
    if membership is not None:
        membership.source = "oidc:aai"
    session.add(OidcPending(handle_hash="0" * 64, kind="web", provider="aai", nonce="n",
                            code_verifier="v", device_code="", next_url="/",
                            link_user_id=None, created_at=now,
                            expires_at=now + timedelta(minutes=10)))
    session.flush()
    return out


def table_rows(conn: Connection, table: Table) -> list[dict[str, Any]]:
    pk = list(table.primary_key.columns)
    return [dict(r) for r in conn.execute(select(table).order_by(*pk)).mappings()]


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every table of the schema: its rows as dicts, ordered by primary key."""
    with engine.connect() as conn:
        return {t.name: table_rows(conn, t) for t in metadata.sorted_tables}


def empty_tables(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(name for name, items in rows.items() if not items)

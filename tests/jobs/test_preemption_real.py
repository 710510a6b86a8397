"""Preemption with real processes: a checkpointing low-QOS run of the demo training
script is preempted (SIGTERM), writes its checkpoint, is requeued, and its next attempt
resumes from the checkpoint and completes. Both runs are settled."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.store.session import session_scope
from waiting import wait_for

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parents[2] / "examples" / "train_demo.py"
RESUMED = 5  # steps the resumed attempt does


def test_preempted_demo_job_checkpoints_and_resumes(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    clock = WallClock()
    settings = Settings(data_dir=tmp_path / "var", local_cluster="1x2:A100-80GB",
                        kill_grace_s=5.0)
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=clock.now() - timedelta(days=1))
        pi_id, slug = pi.id, project.slug

    # The scavenger runs until it is preempted (a fixed step count could end before the
    # preemption on a slow machine); resumed from its checkpoint it does RESUMED more.
    scavenger = tmp_path / "scavenger.py"
    scavenger.write_text(
        "import json, os, sys\nfrom pathlib import Path\n"
        "ckpt = Path(os.environ['RECHENWERK_LOG_DIR']).parent / 'checkpoint.json'\n"
        f"steps = json.loads(ckpt.read_text())['step'] + {RESUMED} if ckpt.exists() "
        "else 10**6\n"
        f"os.execv(sys.executable, [sys.executable, {str(DEMO)!r}, '--steps', str(steps),\n"
        "         '--step-time', '0.2', '--checkpoint-every', '1000'])\n")

    def submit(name: str, qos: str) -> int:
        demo = [str(DEMO), "--steps", "3", "--step-time", "0.2", "--checkpoint-every", "1000"]
        doc = {"name": name, "project": slug, "gpus": 2, "walltime": "10m", "qos": qos,
               "command": [sys.executable, *([str(scavenger)] if qos == "low" else demo)]}
        if qos == "low":
            doc["checkpoint_interval"] = "1m"
        with session_scope(session_factory) as s:
            user = s.get(User, pi_id)
            assert user is not None
            return service.submit(s, user, parse_spec(doc), clock=clock, settings=settings).id

    def job(i: int) -> Job:
        with session_scope(session_factory) as s:
            j = s.get(Job, i)
            assert j is not None
            s.expunge(j)
            return j

    # LAS with a 1 GPU-second first queue: a fresh job outranks one that has run.
    policy = make_policy("las", PolicyParams(las_thresholds_gpu_s=(1.0, 1000.0, 10000.0)))
    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster,
                            kill_grace_s=5.0)
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=clock,
                         policy=policy)

    def run_until(cond: Callable[[], bool], what: str) -> None:
        wait_for(lambda: (loop.cycle(), cond())[1], what, step=0.1)

    low = submit("scavenger", "low")
    log1 = settings.data_dir / "logs" / str(low) / "1" / "stdout.log"
    run_until(lambda: log1.exists() and "step 3/" in log1.read_text(),
              "the low-QOS job to make progress")

    def has_left_the_first_queue() -> bool:
        # Twice the 1 GPU-second threshold when the high job arrives, so that its settled
        # run puts the requeued attempt behind the fresh high job.
        started = job(low).started_at
        return started is not None and 2 * (clock.now() - started).total_seconds() >= 2.0

    run_until(has_left_the_first_queue, "the low-QOS job to pass 2 GPU-seconds")
    high = submit("urgent", "high")
    run_until(lambda: job(low).attempt >= 2 or job(low).state == "pending",
              "the low-QOS job to be preempted and requeued")
    out1 = log1.read_text()
    assert "SIGTERM at step" in out1 and "checkpoint written" in out1
    run_until(lambda: job(high).state == "completed" and job(low).state == "completed",
              "both jobs to complete")
    log2 = settings.data_dir / "logs" / str(low) / "2" / "stdout.log"
    out2 = log2.read_text()
    resumed_at = int(out2.split("at step ")[1].split()[0])
    assert resumed_at >= 3  # it did not start over
    total = resumed_at + RESUMED
    assert "resumed from" in out2 and f"step {total}/{total}" in out2
    final = job(low)
    assert final.attempt == 2 and final.attained_gpu_s > 0
    with session_scope(session_factory) as s:
        runs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == low)
                         .order_by(UsageRecord.attempt)).all()
        assert [r.attempt for r in runs] == [1, 2]
        assert all(r.gpu_hours > 0 for r in runs)

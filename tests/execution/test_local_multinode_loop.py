"""Multi-node jobs through the scheduler loop with real processes (SQLite and
PostgreSQL): a server restart neither loses nor re-runs a 2-node job, it is settled once
for all its GPUs, and `rechenwerk logs` reads its node-labelled output; a preempted
2-node job checkpoints on every node, is requeued and resumes on every node."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from rechenwerk.jobs.logs import read_log
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.scheduling.params import PolicyParams
from rechenwerk.scheduling.policies import make_policy
from rechenwerk.store.session import session_scope
from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow


class World:
    def __init__(self, session_factory: sessionmaker[Session], tmp: Path) -> None:
        self.session_factory = session_factory
        self.clock = WallClock()
        self.settings = Settings(data_dir=tmp / "var", local_cluster="2x2:A100-80GB",
                                 kill_grace_s=3.0)
        with session_scope(session_factory) as s:
            pi = make_user(s)
            project = make_project(s, pi=pi)
            make_award(s, project, gpu_hours=100,
                       starts_at=self.clock.now() - timedelta(days=1))
            self.pi_id, self.slug = pi.id, project.slug

    def submit(self, **doc: Any) -> int:
        doc = {"project": self.slug, "walltime": "10m", **doc}
        with session_scope(self.session_factory) as s:
            user = s.get(User, self.pi_id)
            assert user is not None
            return service.submit(s, user, parse_spec(doc), clock=self.clock,
                                  settings=self.settings).id

    def loop(self, policy: Any = None) -> SchedulerLoop:
        backend = LocalExecutor(self.settings.data_dir, cluster=self.settings.local_cluster,
                                kill_grace_s=self.settings.kill_grace_s)
        return SchedulerLoop(self.session_factory, backend, settings=self.settings,
                             clock=self.clock, policy=policy)

    def job(self, job_id: int) -> Job:
        with session_scope(self.session_factory) as s:
            j = s.get(Job, job_id)
            assert j is not None
            s.expunge(j)
            return j

    def run_until(self, loop: SchedulerLoop, cond: Callable[[], bool], what: str) -> None:
        wait_for(lambda: (loop.cycle(), cond())[1], what, step=0.1)


def test_restart_neither_loses_nor_reruns_a_two_node_job(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    w = World(session_factory, tmp_path)
    counter, released = tmp_path / "count", tmp_path / "release"
    # It runs until the test releases it: it must still run when the loop sees it, and
    # end only once "the server" is gone.
    start = (f"open({str(counter)!r}, 'a').write(os.environ['NODE_RANK'])\n"
             "print('rank', os.environ['NODE_RANK'], 'gpus', os.environ['CUDA_VISIBLE_DEVICES'],"
             " flush=True)\n")
    job_id = w.submit(name="ddp", gpus=4, nodes=2, gpus_per_node=2,
                      command=hold_command(released, before=start))
    first = w.loop()
    w.run_until(first, lambda: w.job(job_id).state == "running", "the job to run")
    placement = w.job(job_id).placement
    assert placement is not None and sorted(p[0] for p in placement) == ["node01", "node02"]
    first.backend.close()
    del first  # "the server" is gone; the job ends while nobody watches
    handle = w.job(job_id).backend_handle
    assert handle is not None
    status = w.settings.data_dir / "runs" / handle / "status.json"
    release(released)
    wait_for(status.exists, "the job to finish")
    second = w.loop()
    second.reconcile()
    second.cycle()
    job = w.job(job_id)
    assert job.state == "completed" and job.attempt == 1
    assert sorted(counter.read_text()) == ["0", "1"]  # once per node, never again
    with session_scope(session_factory) as s:
        recs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == job_id)).all()
        assert len(recs) == 1
        assert recs[0].gpu_hours == pytest.approx(
            4 * (recs[0].ended_at - recs[0].started_at).total_seconds() / 3600)
        assert recs[0].ended_at == job.ended_at
        user = s.get(User, w.pi_id)
        assert user is not None
        chunk = read_log(s, user, job_id, data_dir=w.settings.data_dir)
    assert chunk.complete
    lines = sorted(chunk.data.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("node01: rank 0 gpus ")
    assert lines[1].startswith("node02: rank 1 gpus ")


# Attempt 1 runs until it is preempted (a fixed length could end before the preemption
# on a slow machine); a resumed attempt does 5 more steps. "resumed at" is printed once
# the SIGTERM handler is set and there is progress to checkpoint.
CHECKPOINTING = """\
import os, signal, sys, time
rank = os.environ["NODE_RANK"]
ckpt = f"ckpt.{rank}"
start = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
step = start
def on_term(*_):
    open(ckpt, "w").write(str(step))
    print("rank", rank, "checkpointed at", step, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
step += 1
print("rank", rank, "resumed at", start, flush=True)
last = start + 5 if start else 10**9
while step < last:
    time.sleep(0.1)
    step += 1
print("rank", rank, "done", flush=True)
"""


def test_preempted_two_node_job_checkpoints_on_every_node_and_resumes(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    w = World(session_factory, tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "train.py").write_text(CHECKPOINTING)
    # LAS with a 1 GPU-second first queue: a fresh job outranks one that has run.
    loop = w.loop(make_policy("las", PolicyParams(las_thresholds_gpu_s=(1.0, 1000.0, 1e4))))
    low = w.submit(name="scavenger", qos="low", checkpoint_interval="1m", gpus=4, nodes=2,
                   gpus_per_node=2, workdir=str(workdir),
                   command=[sys.executable, "train.py"])
    log1 = w.settings.data_dir / "logs" / str(low) / "1" / "stdout.log"
    w.run_until(loop, lambda: log1.exists() and log1.read_text().count("resumed at 0") == 2,
                "both nodes of the low-QOS job to run")

    def has_left_the_first_queue() -> bool:
        # Twice the 1 GPU-second threshold when the high job arrives, so that its settled
        # run puts the requeued attempt behind the fresh high job.
        started = w.job(low).started_at
        return started is not None and 4 * (w.clock.now() - started).total_seconds() >= 2.0

    w.run_until(loop, has_left_the_first_queue, "the low-QOS job to pass 2 GPU-seconds")
    high = w.submit(name="urgent", qos="high", gpus=4, nodes=2, gpus_per_node=2,
                    command=[sys.executable, "-c", "print('urgent')"])
    w.run_until(loop, lambda: w.job(low).attempt >= 2 or w.job(low).state == "pending",
                "the low-QOS job to be preempted and requeued")
    out1 = log1.read_text()
    assert "node01: rank 0 checkpointed at" in out1 and "node02: rank 1 checkpointed at" in out1
    w.run_until(loop, lambda: w.job(high).state == "completed"
                and w.job(low).state == "completed", "both jobs to complete")
    out2 = (w.settings.data_dir / "logs" / str(low) / "2" / "stdout.log").read_text()
    for rank, node in enumerate(("node01", "node02")):
        resumed = int(out2.split(f"{node}: rank {rank} resumed at ")[1].split()[0])
        assert resumed > 0  # every node resumed from its own checkpoint
        assert f"{node}: rank {rank} done" in out2
    with session_scope(session_factory) as s:
        runs = s.scalars(select(UsageRecord).where(UsageRecord.job_id == low)
                         .order_by(UsageRecord.attempt)).all()
        assert [r.attempt for r in runs] == [1, 2]

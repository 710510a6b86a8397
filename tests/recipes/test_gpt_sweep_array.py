"""A learning-rate sweep of the gpt-pretrain recipe as ONE job array on the local
executor: ``recipe init``, ``array`` and ``LR_LIST`` added to its spec, the real
scheduler loop and processes; each task trains with the rate its index selects."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.cli.jobs import load_spec_file
from rechenwerk.cli.main import app
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import make_engine, make_session_factory, session_scope
from rechenwerk.store.tables import metadata

pytest.importorskip("torch", reason="torch is not installed in this venv "
                    "(pip install -e '.[recipes]' installs the CPU build)")
pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'rw.db'}")
    metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_small_lr_sweep_runs_as_one_array(sqlite_sessions: sessionmaker[Session],
                                            tmp_path: Path) -> None:
    clock = WallClock()
    settings = Settings(data_dir=tmp_path / "var", local_cluster="1x4:A100-80GB",
                        scheduler_policy="fifo", kill_grace_s=5.0)
    with session_scope(sqlite_sessions) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=clock.now() - timedelta(days=1))
        pi_id, slug = pi.id, project.slug
    dest = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["recipe", "init", "gpt-pretrain", str(dest),
                                   "--project", slug, "--gpus", "1"])
    assert res.exit_code == 0, res.output
    spec_path = dest / "job.yaml"
    doc = yaml.safe_load(spec_path.read_text())
    doc["array"] = "0-3%2"
    doc["env"]["LR_LIST"] = "1e-3,3e-3"
    doc["script"] = doc["script"].rstrip("\n") + " --preset tiny --seq-len 32 --steps 10\n"
    spec_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with session_scope(sqlite_sessions) as s:
        user = s.get(User, pi_id)
        assert user is not None
        result = service.submit_job(s, user, parse_spec(load_spec_file(spec_path)),
                                    clock=clock, settings=settings)
        head = result.job.id
    assert result.tasks == 4

    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster,
                            kill_grace_s=5.0)
    loop = SchedulerLoop(sqlite_sessions, backend, settings=settings, clock=clock)

    def tasks() -> list[Job]:
        with session_scope(sqlite_sessions) as s:
            rows = list(s.scalars(select(Job).where(Job.array_job_id == head)
                                  .order_by(Job.array_task_id)))
            for r in rows:
                s.expunge(r)
            return rows

    most_running = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        loop.cycle()
        rows = tasks()
        most_running = max(most_running, sum(t.state in ("starting", "running")
                                              for t in rows))
        if all(t.state in ("completed", "failed", "cancelled", "timeout") for t in rows):
            break
        time.sleep(0.2)
    rows = tasks()
    for t in rows:
        err = settings.data_dir / "logs" / str(t.id) / "1" / "stderr.log"
        assert t.state == "completed", (t.state, t.reason, err.read_text()[-2000:])
    assert most_running <= 2  # %2
    seen = []
    for t in rows:
        metrics = json.loads((dest / "runs" / f"job-{t.id}" / "metrics.json").read_text())
        seen.append((metrics["array_task_id"], metrics["lr"], metrics["seed"]))
    assert seen == [(0, 1e-3, 0), (1, 3e-3, 0), (2, 1e-3, 1), (3, 3e-3, 1)]

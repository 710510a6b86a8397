"""Both recipes through Rechenwerk itself: ``recipe init``, the spec read as
``rechenwerk submit`` reads it, the real scheduler loop and local executor (processes,
rendezvous variables, one torchrun per node). gpt-pretrain runs data-parallel on two
GPU slots of one node and writes its metrics; allreduce-check spans two nodes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
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
                    "(pip install -e '.[recipes]' installs the CPU build 2.13.0)")
pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    # One database is enough here: what is tested is the processes, not the SQL (the
    # scheduler loop runs on both databases in tests/jobs).
    engine = make_engine(f"sqlite:///{tmp_path / 'rw.db'}")
    metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def init(name: str, dest: Path, slug: str, *extra: str, args: str) -> dict[str, object]:
    res = CliRunner().invoke(app, ["recipe", "init", name, str(dest), "--project", slug,
                                   *extra])
    assert res.exit_code == 0, res.output
    spec = dest / "job.yaml"
    # The user's one edit: the script's arguments on the last line of job.yaml.
    lines = spec.read_text().rstrip("\n").split("\n")
    lines[-1] = lines[-1] + " " + args
    spec.write_text("\n".join(lines) + "\n")
    return load_spec_file(spec)


def test_recipes_run_on_the_local_executor(sqlite_sessions: sessionmaker[Session],
                                           tmp_path: Path) -> None:
    clock = WallClock()
    settings = Settings(data_dir=tmp_path / "var", local_cluster="2x2:A100-80GB",
                        scheduler_policy="fifo", kill_grace_s=5.0)
    with session_scope(sqlite_sessions) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=clock.now() - timedelta(days=1))
        pi_id, slug = pi.id, project.slug

    gpt = init("gpt-pretrain", tmp_path / "gpt", slug, "--gpus", "2", args=(
        "--preset tiny --seq-len 32 --steps 30 --log-every 10"))
    check = init("allreduce-check", tmp_path / "check", slug, "--gpus", "2", "--nodes", "2",
                 args="--max-bytes 65536 --iters 2")
    ids = {}
    for name, doc in (("gpt", gpt), ("check", check)):
        with session_scope(sqlite_sessions) as s:
            user = s.get(User, pi_id)
            assert user is not None
            ids[name] = service.submit(s, user, parse_spec(doc), clock=clock,
                                       settings=settings).id

    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster,
                            kill_grace_s=5.0)
    loop = SchedulerLoop(sqlite_sessions, backend, settings=settings, clock=clock)

    def jobs() -> dict[str, Job]:
        with session_scope(sqlite_sessions) as s:
            found = {k: s.get(Job, v) for k, v in ids.items()}
            for j in found.values():
                assert j is not None
                s.expunge(j)
            return {k: j for k, j in found.items() if j is not None}

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        loop.cycle()
        if all(j.state in ("completed", "failed", "cancelled", "timeout")
               for j in jobs().values()):
            break
        time.sleep(0.2)

    def log(job_id: int, stream: str = "stdout") -> str:
        path = settings.data_dir / "logs" / str(job_id) / "1" / f"{stream}.log"
        return path.read_text() if path.exists() else ""

    final = jobs()
    for name, j in final.items():
        assert j.state == "completed", (name, j.state, j.reason, log(j.id), log(j.id, "stderr"))

    # gpt-pretrain: two ranks (one per GPU slot) on one node, metrics in its workdir.
    out = log(ids["gpt"])
    assert "world=2 backend=gloo device=cpu" in out and "step=30/30" in out
    metrics = json.loads((tmp_path / "gpt" / "runs" / f"job-{ids['gpt']}" / "metrics.json")
                         .read_text())
    assert metrics["job_id"] == str(ids["gpt"]) and metrics["attempt"] == "1"
    assert metrics["world_size"] == 2 and metrics["steps"] == 30
    assert metrics["final_loss"] < metrics["first_loss"]

    # allreduce-check: one torchrun per node, ranks on node01 and node02, labelled logs.
    out = log(ids["check"])
    assert "node01: allreduce-check: 2 ranks, backend=gloo" in out
    assert "node01: allreduce-check: PASS ranks=2" in out
    result = json.loads((tmp_path / "check" / "runs" / f"job-{ids['check']}"
                         / "allreduce.json").read_text())
    assert result["passed"] and result["ranks"] == 2
    assert [w.split("/")[1] for w in result["ranks_where"]] == ["node01", "node02"]

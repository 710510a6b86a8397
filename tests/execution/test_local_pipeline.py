"""A train -> evaluate pipeline on the real local executor (real processes, wall clock,
the real scheduler loop): evaluate (after_ok) starts only once train completed and reads
what train wrote; the after_not_ok branch is cancelled; with a failing train it is the
other way round."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.access.models import User
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.store.session import session_scope
from waiting import hold_command, release, wait_for


def _submit(factory: sessionmaker[Session], user_id: int, settings: Settings,
            doc: dict[str, object]) -> int:
    with session_scope(factory) as s:
        user = s.get(User, user_id)
        assert user is not None
        return service.submit(s, user, parse_spec({"gpus": 1, "walltime": "10m", **doc}),
                              clock=WallClock(), settings=settings).id


def _state(factory: sessionmaker[Session], job_id: int) -> tuple[str, str | None, str | None]:
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.state, job.reason_code, job.reason


def test_train_then_evaluate_pipeline_on_the_local_executor(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "var", scheduler_policy="fifo",
                        local_cluster="1x4:A100-80GB", kill_grace_s=1.0)
    work = tmp_path / "work"
    work.mkdir()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=100, starts_at=WallClock().now() - timedelta(days=1))
        pi_id, slug = pi.id, project.slug
    backend = LocalExecutor(settings.data_dir, cluster=settings.local_cluster, kill_grace_s=1.0)
    loop = SchedulerLoop(session_factory, backend, settings=settings, clock=WallClock())
    common = {"project": slug, "workdir": str(work)}
    gate = tmp_path / "release-train"
    train = _submit(session_factory, pi_id, settings, {
        **common, "name": "train",
        "command": hold_command(gate, after="open('model.txt', 'w').write('weights-42')")})
    evaluate = _submit(session_factory, pi_id, settings, {
        **common, "name": "evaluate", "depends_on": {"after_ok": [train]},
        "command": [sys.executable, "-c", "print('evaluated', open('model.txt').read())"]})
    on_failure = _submit(session_factory, pi_id, settings, {
        **common, "name": "report-failure", "depends_on": {"after_not_ok": [train]},
        "command": [sys.executable, "-c", "print('train failed')"]})
    # A second pipeline whose training fails.
    bad_train = _submit(session_factory, pi_id, settings, {
        **common, "name": "bad-train", "command": [sys.executable, "-c", "raise SystemExit(4)"]})
    bad_eval = _submit(session_factory, pi_id, settings, {
        **common, "name": "bad-eval", "depends_on": {"after_ok": [bad_train]},
        "command": [sys.executable, "-c", "print('must not run')"]})
    bad_report = _submit(session_factory, pi_id, settings, {
        **common, "name": "bad-report", "depends_on": {"after_not_ok": [bad_train]},
        "command": [sys.executable, "-c", "print('reported the failure')"]})

    def train_running() -> bool:
        loop.cycle()
        return _state(session_factory, train)[0] == "running"

    wait_for(train_running, "train to run")
    # 4 GPUs are free, yet the dependent jobs wait for train.
    for jid in (evaluate, on_failure):
        state, code, reason = _state(session_factory, jid)
        assert (state, code) == ("pending", "dependency"), (jid, state, reason)

    def bad_pipeline_settled() -> bool:
        loop.cycle()
        return (_state(session_factory, bad_report)[0] == "completed"
                and _state(session_factory, bad_eval)[0] == "cancelled")

    wait_for(bad_pipeline_settled, "the failed pipeline's branches")
    assert _state(session_factory, bad_train)[0] == "failed"
    assert _state(session_factory, bad_eval)[1:] == (
        "dependency_never_satisfied",
        f"dependency never satisfied: job {bad_train} ended as failed (after_ok)")
    assert _state(session_factory, evaluate)[0] == "pending"  # train still holds

    release(gate)

    def evaluated() -> bool:
        loop.cycle()
        return _state(session_factory, evaluate)[0] in ("completed", "failed")

    wait_for(evaluated, "evaluate to end")
    assert _state(session_factory, train)[0] == "completed"
    assert _state(session_factory, evaluate)[0] == "completed"
    out = settings.data_dir / "logs" / str(evaluate) / "1" / "stdout.log"
    assert out.read_text().strip() == "evaluated weights-42"
    assert _state(session_factory, on_failure)[:2] == ("cancelled", "dependency_never_satisfied")
    assert not (settings.data_dir / "logs" / str(on_failure) / "1").exists()
    with session_scope(session_factory) as s:
        ev, tr = s.get(Job, evaluate), s.get(Job, train)
        assert ev is not None and tr is not None
        assert ev.started_at is not None and tr.ended_at is not None
        assert ev.started_at >= tr.ended_at  # evaluate started only after train ended

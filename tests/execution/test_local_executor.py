"""The local executor with real processes (short sleeps)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import (
    BackendJobState,
    BackendJobStatus,
    ExecutionBackend,
    GpuSlice,
    LaunchRequest,
)
from rechenwerk.execution.local import LocalExecutor, parse_local_cluster
from waiting import BLOCK_TERM, DEADLINE_S, UNBLOCK_TERM, wait_for

PY = sys.executable


def request(tmp: Path, job_id: str, command: tuple[str, ...] | None, *, walltime_s: int = 30,
            attempt: int = 1, script: str | None = None,
            placement: tuple[GpuSlice, ...] | None = None, workdir: str | None = None
            ) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id, attempt=attempt, name=f"job-{job_id}", project="p1", user="alice",
        command=command, script=script, workdir=workdir or str(tmp), env={"FOO": "bar"},
        gpus=2, nodes=1, gpus_per_node=2, walltime_s=walltime_s, qos="normal",
        log_dir=str(tmp / "logs" / job_id / str(attempt)),
        placement=placement or (GpuSlice("node01", (2, 3)),),
    )


def wait_terminal(ex: LocalExecutor, handle: str, timeout: float = DEADLINE_S
                  ) -> BackendJobStatus:
    return wait_for(lambda: (lambda st: st if st.state not in (
        BackendJobState.PENDING, BackendJobState.RUNNING) else None)(ex.poll([handle])[handle]),
        f"{handle} to finish", timeout)


def wait_running(ex: LocalExecutor, handle: str) -> None:
    wait_for(lambda: ex.poll([handle])[handle].state == BackendJobState.RUNNING,
             f"{handle} to run", step=0.02)


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path / "data", cluster="2x8:A100-80GB", kill_grace_s=1.0)


def test_inventory_from_string_and_yaml(tmp_path: Path) -> None:
    nodes = parse_local_cluster("2x8:A100-80GB")
    assert [(n.name, n.gpus, n.gpu_type) for n in nodes] == [
        ("node01", 8, "A100-80GB"), ("node02", 8, "A100-80GB")]
    assert len(parse_local_cluster("1000x8")) == 1000
    f = tmp_path / "c.yaml"
    f.write_text("nodes:\n  - {name: big, gpus: 8, gpu_type: H100, block: b1}\n"
                 "  - {count: 2, gpus: 4, prefix: small}\n")
    got = parse_local_cluster(str(f))
    assert [(n.name, n.gpus, n.gpu_type, n.block) for n in got] == [
        ("big", 8, "H100", "b1"), ("small01", 4, "GPU", "block0"), ("small02", 4, "GPU", "block0")]
    with pytest.raises(InvalidInput, match="NODESxGPUS"):
        parse_local_cluster("eight nodes")
    with pytest.raises(InvalidInput, match="at least one"):
        parse_local_cluster("0x8")


def test_is_an_execution_backend(ex: LocalExecutor) -> None:
    assert isinstance(ex, ExecutionBackend)


def test_runs_command_with_gpus_env_and_logs(ex: LocalExecutor, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    code = ("import os,sys; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['FOO'], "
            "os.environ['RECHENWERK_JOB_ID'], 'RECHENWERK_DATABASE_URL' in os.environ); "
            "print('oops', file=sys.stderr)")
    monkeypatch.setenv("RECHENWERK_DATABASE_URL", "postgresql://secret")
    h = ex.submit(request(tmp_path, "7", (PY, "-c", code)))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.COMPLETED and st.exit_code == 0
    assert st.started_at is not None and st.ended_at is not None
    assert st.started_at <= st.ended_at
    logs = tmp_path / "logs" / "7" / "1"
    assert (logs / "stdout.log").read_text().strip() == "2,3 bar 7 False"
    assert (logs / "stderr.log").read_text().strip() == "oops"


def test_resubmitting_same_attempt_does_not_run_twice(ex: LocalExecutor, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    code = f"open({str(counter)!r}, 'a').write('x')"
    req = request(tmp_path, "8", (PY, "-c", code))
    h1 = ex.submit(req)
    h2 = ex.submit(req)
    assert h1 == h2
    wait_terminal(ex, h1)
    assert counter.read_text() == "x"


def test_nonzero_exit_is_failed(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.submit(request(tmp_path, "9", (PY, "-c", "raise SystemExit(3)")))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED and st.exit_code == 3
    assert st.reason == "exit code 3"


def test_missing_executable_fails_with_reason(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.submit(request(tmp_path, "10", ("no-such-binary-xyz", "--flag")))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED
    assert st.reason == "command not found: no-such-binary-xyz"


def test_missing_workdir_fails_with_reason(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.submit(request(tmp_path, "11", (PY, "-c", "pass"), workdir=str(tmp_path / "nope")))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED
    assert st.reason is not None and "working directory not found" in st.reason


def test_script_runs(ex: LocalExecutor, tmp_path: Path) -> None:
    h = ex.submit(request(tmp_path, "12", None, script="echo hello from $RECHENWERK_JOB_NAME\n"))
    assert wait_terminal(ex, h).state == BackendJobState.COMPLETED
    assert (tmp_path / "logs/12/1/stdout.log").read_text() == "hello from job-12\n"


def test_walltime_sigterm_then_timeout(ex: LocalExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    code = ("import signal,time,sys\n"
            f"def h(*a): open({str(marker)!r},'w').write('ckpt'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\n" + UNBLOCK_TERM +
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")
    h = ex.submit(request(tmp_path, "13", (*BLOCK_TERM, PY, "-c", code), walltime_s=1))
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.TIMEOUT
    assert marker.read_text() == "ckpt"  # the job got SIGTERM and could checkpoint
    assert st.reason == "walltime of 1 s exceeded"


def test_walltime_sigkill_after_grace(ex: LocalExecutor, tmp_path: Path) -> None:
    code = ("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            + UNBLOCK_TERM + "print('ready', flush=True)\ntime.sleep(600)\n")
    h = ex.submit(request(tmp_path, "14", (*BLOCK_TERM, PY, "-c", code), walltime_s=1))
    st = wait_terminal(ex, h)  # long before the job's own 600 s: it was killed
    assert st.state == BackendJobState.TIMEOUT
    assert st.exit_code == -signal.SIGKILL


def test_cancel_kills_the_whole_process_group(ex: LocalExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    code = ("import subprocess,sys,time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pidfile)!r},'w').write(str(p.pid))\n"
            "time.sleep(600)\n")
    h = ex.submit(request(tmp_path, "15", (PY, "-c", code)))
    wait_running(ex, h)
    wait_for(lambda: pidfile.exists() and pidfile.read_text(), "the grandchild's pid")
    ex.cancel(h)
    ex.cancel(h)  # idempotent
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.CANCELLED
    grandchild = int(pidfile.read_text())

    def gone() -> bool:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, "the grandchild to be killed by the cancel")


def test_preempt_sends_sigterm_first(ex: LocalExecutor, tmp_path: Path) -> None:
    ckpt, ready = tmp_path / "ckpt", tmp_path / "ready"
    code = ("import signal,time,sys\n"
            f"def h(*a): open({str(ckpt)!r},'w').write('step 3'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, h)\n"
            f"open({str(ready)!r},'w').close()\n"
            "time.sleep(600)\n")
    h = ex.submit(request(tmp_path, "16", (PY, "-c", code)))
    wait_for(ready.exists, "the job to install its SIGTERM handler")
    ex.preempt(h)
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.PREEMPTED
    assert ckpt.read_text() == "step 3"


def test_new_executor_finds_jobs_of_the_old_one(tmp_path: Path) -> None:
    """Restart safety at the executor level: the job ran on while 'the server' was gone."""
    data = tmp_path / "data"
    before = datetime.now(UTC)
    first = LocalExecutor(data, kill_grace_s=1.0)
    h = first.submit(request(tmp_path, "17", (PY, "-c", "import time; time.sleep(0.5)")))
    del first
    second = LocalExecutor(data, kill_grace_s=1.0)
    st = wait_terminal(second, h)
    after = datetime.now(UTC)
    assert st.state == BackendJobState.COMPLETED
    assert st.ended_at is not None and st.started_at is not None
    # Its real run: at least its sleep, within what the test saw (no fixed upper bound).
    assert (st.ended_at - st.started_at).total_seconds() >= 0.4
    assert before <= st.started_at <= st.ended_at <= after
    assert second.reconcile([h]).known[h].state == BackendJobState.COMPLETED


def test_unknown_handle(ex: LocalExecutor) -> None:
    assert ex.poll(["99.1"])["99.1"].state == BackendJobState.UNKNOWN
    assert ex.poll(["../etc"])["../etc"].state == BackendJobState.UNKNOWN


def test_killed_supervisor_is_reported_failed_and_job_killed(
    ex: LocalExecutor, tmp_path: Path
) -> None:
    h = ex.submit(request(tmp_path, "18", (PY, "-c", "import time; time.sleep(600)")))
    wait_running(ex, h)
    sup = int((ex.run_dir(h) / "supervisor.pid").read_text())
    os.kill(sup, signal.SIGKILL)
    st = wait_terminal(ex, h)
    assert st.state == BackendJobState.FAILED
    assert st.reason is not None and "supervisor" in st.reason


def test_supervisor_killed_by_an_early_stop_counts_as_the_stop(tmp_path: Path) -> None:
    """A cancel's SIGTERM can reach the supervisor before it sets its handler; it dies
    without a verdict, and the job ended as asked (cancelled), not as a fault."""
    ex = LocalExecutor(tmp_path / "data", cluster="1x8", kill_grace_s=1.0)
    for kind, state in (("cancel", BackendJobState.CANCELLED),
                        ("preempt", BackendJobState.PREEMPTED)):
        run_dir = ex.run_dir(f"{kind}.1")
        run_dir.mkdir(parents=True)
        (run_dir / "launch.json").write_text("{}")
        (run_dir / "stop").write_text(kind)
        dead = subprocess.Popen(["true"])
        dead.wait()
        (run_dir / "supervisor.pid").write_text(str(dead.pid))
        status = ex.poll([f"{kind}.1"])[f"{kind}.1"]
        assert status.state == state and status.reason and kind in status.reason

"""Per-job cgroups of the local executor: limits hold, and nothing a job started
outlives it (a daemon that left its process group included)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rechenwerk.execution.base import BackendJobState, GpuSlice, LaunchRequest
from rechenwerk.execution.cgroups import JobCgroup
from rechenwerk.execution.local import LocalExecutor
from waiting import wait_for


def _cgroups_or_skip() -> None:
    group, problem = JobCgroup.create(f"probe-{os.getpid()}", pids_max=100, memory_bytes=None)
    if group is None:
        pytest.skip(f"no writable cgroup hierarchy here: {problem}")
    group.remove()


def _request(tmp: Path, job_id: str, code: str, gpus: int = 1) -> LaunchRequest:
    log_dir = tmp / "data" / "logs" / job_id / "1"
    log_dir.mkdir(parents=True)
    return LaunchRequest(
        job_id=job_id, attempt=1, name=job_id, project="p", user="u",
        command=(sys.executable, "-c", code), script=None, workdir=str(tmp), env={},
        gpus=gpus, nodes=1, gpus_per_node=gpus, walltime_s=120, qos="normal",
        log_dir=str(log_dir), placement=(GpuSlice("node01", tuple(range(gpus))),))


def _end(ex: LocalExecutor, handle: str) -> tuple[BackendJobState, str | None]:
    status = wait_for(lambda: (lambda s: s if s.state not in (
        BackendJobState.PENDING, BackendJobState.RUNNING) else None)(
        ex.poll([handle])[handle]), f"{handle} to end")
    return status.state, status.reason


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_daemon_the_job_left_behind_is_killed_at_its_end(tmp_path: Path) -> None:
    _cgroups_or_skip()
    ex = LocalExecutor(tmp_path / "data", cluster="1x8", kill_grace_s=1.0, pids_max=256)
    pid_file = tmp_path / "daemon.pid"
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n")
    state, _ = _end(ex, ex.submit(_request(tmp_path, "1", code)))
    assert state == BackendJobState.COMPLETED
    daemon = int(pid_file.read_text())
    wait_for(lambda: not _alive(daemon), "the escaped daemon to be gone")


def test_process_limit(tmp_path: Path) -> None:
    _cgroups_or_skip()
    ex = LocalExecutor(tmp_path / "data", cluster="1x8", kill_grace_s=1.0, pids_max=30)
    code = ("import subprocess\nprocs, refused = [], 0\n"
            "for _ in range(60):\n"
            "    try:\n        procs.append(subprocess.Popen(['sleep', '30']))\n"
            "    except OSError:\n        refused += 1\n"
            "print('refused', refused, 'started', len(procs), flush=True)\n"
            "[p.kill() for p in procs]\n")
    state, reason = _end(ex, ex.submit(_request(tmp_path, "2", code)))
    out = (tmp_path / "data" / "logs" / "2" / "1" / "stdout.log").read_text().split()
    assert state == BackendJobState.COMPLETED, reason
    refused, started = int(out[1]), int(out[3])
    assert refused > 0 and started < 30 and refused + started == 60


def test_memory_limit_per_gpu(tmp_path: Path) -> None:
    _cgroups_or_skip()
    ex = LocalExecutor(tmp_path / "data", cluster="1x8", kill_grace_s=1.0, pids_max=256,
                       mem_per_gpu_mb=100)
    # 2 GPUs: 200 MiB for the job; it touches 600 MiB.
    code = "b = bytearray(600 * 1024 * 1024)\nprint('survived')\n"
    state, reason = _end(ex, ex.submit(_request(tmp_path, "3", code, gpus=2)))
    assert state == BackendJobState.FAILED
    assert reason == "killed by signal SIGKILL"  # the kernel's OOM killer, in the cgroup
    small = "b = bytearray(50 * 1024 * 1024)\nprint('fits')\n"
    state, reason = _end(ex, ex.submit(_request(tmp_path, "4", small, gpus=2)))
    assert state == BackendJobState.COMPLETED, reason

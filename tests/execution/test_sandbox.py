"""Local jobs isolated from each other and from the server: the probe job.

Tries every leak found when the local executor ran jobs as the server's account (the
operator's token in the data directory, other jobs' runs and logs, the server's secrets
in /proc/<pid>/environ) and asserts each fails inside the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from rechenwerk.errors import BackendError
from rechenwerk.execution.base import BackendJobState, GpuSlice, LaunchRequest
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.execution.sandbox import DEFAULT_UID_RANGE, IdRange, Sandbox, probe
from waiting import wait_for

PROBE = Path(__file__).with_name("sandbox_probe.py")
SECRET = "s3cret-key-that-no-job-may-see"
DB_URL = "postgresql://rechenwerk:hunter2@127.0.0.1/rechenwerk"
FIRST = DEFAULT_UID_RANGE[0]

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap (Debian package bubblewrap) is not installed")


def _sandbox(data_dir: Path, *, accounts: bool) -> Sandbox:
    ids = IdRange(*DEFAULT_UID_RANGE) if accounts else None
    box = Sandbox(bwrap=shutil.which("bwrap") or "bwrap", data_dir=data_dir.resolve(),
                  uids=ids, gids=ids)
    problem = probe(box)
    if problem:
        pytest.skip(f"bubblewrap cannot run here: {problem}")
    return box


def _request(data_dir: Path, job_id: int, user_id: int, project_id: int,
             command: tuple[str, ...], workdir: Path | None = None) -> LaunchRequest:
    log_dir = data_dir / "logs" / str(job_id) / "1"
    log_dir.mkdir(parents=True, exist_ok=True)
    return LaunchRequest(
        job_id=str(job_id), attempt=1, name=f"job-{job_id}", project=f"p{project_id}",
        user=f"user{user_id}", command=command, script=None,
        workdir=str(workdir or log_dir.parent), env={"MINE": "yes"}, gpus=1, nodes=1,
        gpus_per_node=1, walltime_s=120, qos="normal", log_dir=str(log_dir),
        placement=(GpuSlice("node01", (0,)),), user_id=user_id, project_id=project_id)


def _finish(ex: LocalExecutor, handle: str) -> BackendJobState:
    return wait_for(lambda: (lambda s: s if s not in (BackendJobState.PENDING,
                                                       BackendJobState.RUNNING) else None)(
        ex.poll([handle])[handle].state), f"{handle} to end")


def _data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "demo-tokens.json").write_text('{"operator": "rwk_operator_token"}')
    (data / "rechenwerk.db").write_bytes(b"SQLite format 3\x00")
    return data


@pytest.mark.parametrize("accounts", [True, False], ids=["own-account", "server-account"])
def test_probe_job_finds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 accounts: bool) -> None:
    if accounts and os.geteuid() != 0:
        pytest.skip("separate job accounts need a server running as root")
    monkeypatch.setenv("RECHENWERK_SECRET_KEY", SECRET)
    monkeypatch.setenv("RECHENWERK_DATABASE_URL", DB_URL)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    data = _data_dir(tmp_path)
    box = _sandbox(data, accounts=accounts)
    ex = LocalExecutor(data, cluster="1x8:A100", kill_grace_s=1.0, sandbox=box, pids_max=512)

    # Another user's job, still running, with a secret in its workdir and its log.
    other_work = tmp_path / "other"
    other_work.mkdir(mode=0o700)
    (other_work / "secret.txt").write_text("other user's data")
    if accounts:
        os.chown(other_work, FIRST + 2, FIRST + 2)
        os.chown(other_work / "secret.txt", FIRST + 2, FIRST + 2)
    other = ex.submit(_request(data, 7, 2, 2, (
        sys.executable, "-c",
        "print('other job output', flush=True); import time; time.sleep(600)"),
        workdir=other_work))
    other_log = data / "logs" / "7" / "1"
    wait_for(lambda: (other_log / "stdout.log").exists()
             and "other job output" in (other_log / "stdout.log").read_text(),
             "the other job to print")

    # The probe job of user 1: its script lies in its own workdir.
    mine = data / "logs" / "8"
    mine.mkdir(parents=True)
    shutil.copy(PROBE, mine / "probe.py")
    handle = ex.submit(_request(data, 8, 1, 1, (
        sys.executable, str(mine / "probe.py"), str(data), str(other_work), str(other_log),
        str(os.getpid()))))
    assert _finish(ex, handle) == BackendJobState.COMPLETED, (
        (mine / "1" / "stderr.log").read_text())
    got = json.loads((mine / "1" / "stdout.log").read_text())
    ex.cancel(other)
    _finish(ex, other)

    # Nothing of the data directory but its own folders; no other job.
    for key in ("tokens", "database", "runs", "other_log"):
        assert isinstance(got[key], dict) and "refused" in got[key], (key, got[key])
    assert not (data / "planted").exists()  # at most into the sandbox's empty stand-in
    assert got["logs"] == ["8"]  # only its own log folder exists in its view
    assert got["own_workdir"] == "written"
    # Other processes (the server, the supervisor, other jobs) are invisible.
    assert got["signal_server"] == {"refused": "ProcessLookupError"}
    assert len(got["pids"]) <= 3, got["pids"]  # bwrap's init, the job (and its parent)
    everything = json.dumps(got["environs"]) + json.dumps(got["env"])
    assert SECRET not in everything and "hunter2" not in everything
    assert not any(k.startswith("RECHENWERK_") and k not in _JOB_VARS for k in got["env"])
    assert got["env"]["MINE"] == "yes" and got["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert got["hostname"] == "node01"
    if accounts:
        assert (got["uid"], got["gid"], got["groups"]) == (FIRST + 1, FIRST + 1, [])
        assert "refused" in got["other_workdir"] and "refused" in got["shadow"]
    else:  # same account: the other's workdir is simply not there
        assert got["other_workdir"] == {"refused": "FileNotFoundError"}


_JOB_VARS = {"RECHENWERK_JOB_ID", "RECHENWERK_JOB_NAME", "RECHENWERK_ATTEMPT",
             "RECHENWERK_PROJECT", "RECHENWERK_GPUS", "RECHENWERK_NUM_NODES",
             "RECHENWERK_NODELIST", "RECHENWERK_PLACEMENT", "RECHENWERK_WALLTIME_S",
             "RECHENWERK_LOG_DIR", "RECHENWERK_NODE_NAME", "RECHENWERK_NODE_RANK",
             "RECHENWERK_GPUS_PER_NODE", "RECHENWERK_CHECKPOINT_INTERVAL_S"}


def test_workdir_above_the_data_dir_does_not_reveal_it(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    ex = LocalExecutor(data, cluster="1x8:A100", kill_grace_s=1.0,
                       sandbox=_sandbox(data, accounts=False))
    (tmp_path / "visible.txt").write_text("the user's own file")
    code = ("import os,sys; print(open('visible.txt').read()); "
            f"print(sorted(os.listdir({str(data)!r})))")
    handle = ex.submit(_request(data, 3, 1, 1, (sys.executable, "-c", code), workdir=tmp_path))
    assert _finish(ex, handle) == BackendJobState.COMPLETED
    out = (data / "logs" / "3" / "1" / "stdout.log").read_text().splitlines()
    assert out == ["the user's own file", "['logs']"]  # only the way to its own log


def test_workdir_inside_the_data_dir_is_refused(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    ex = LocalExecutor(data, cluster="1x8:A100", kill_grace_s=1.0,
                       sandbox=_sandbox(data, accounts=False))
    with pytest.raises(BackendError, match="would show the server's data directory"):
        ex.submit(_request(data, 4, 1, 1, ("true",), workdir=data / "logs"))

"""Slurm job arrays without the daemons: squeue's array records mapped to task handles,
and the array batch script each task runs (executed here with bash)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from rechenwerk.errors import BackendError
from rechenwerk.execution.base import ArrayTask, LaunchRequest
from rechenwerk.execution.slurm.backend import _array_tasks, _job_id
from rechenwerk.execution.slurm.script import array_expression, build_array_submit_spec
from rechenwerk.execution.slurm.types import SlurmJob, split_job_ref, task_indices
from rechenwerk.execution.slurm.v0_0_38 import parse_live_jobs


def test_task_strings_and_refs() -> None:
    assert task_indices("1-3%1") == {1, 2, 3}
    assert task_indices("0-8:4,11") == {0, 4, 8, 11}
    assert split_job_ref("67_3") == ("67", 3) and split_job_ref("67") == ("67", None)
    assert _job_id("67_3") == "67_3"
    with pytest.raises(BackendError):
        _job_id("67_x;rm")


def test_squeue_records_become_task_statuses() -> None:
    doc = {"jobs": [
        {"job_id": 68, "array_job_id": 67, "array_task_id": 0, "array_task_string": "",
         "job_state": "RUNNING"},
        {"job_id": 67, "array_job_id": 67, "array_task_id": None,
         "array_task_string": "1-3%1", "job_state": "PENDING",
         "state_reason": "JobArrayTaskLimit"},
        {"job_id": 90, "array_job_id": 0, "job_state": "PENDING"},
    ]}
    jobs = parse_live_jobs(doc)
    tasks = _array_tasks(jobs)
    assert set(tasks) == {"67_0", "67_1", "67_2", "67_3"}
    assert tasks["67_0"].job_id == "68" and tasks["67_2"].state == "PENDING"
    assert jobs[2].array_job_id == ""


def _req(tmp: Path, job_id: str, index: int) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id, attempt=1, name="sweep", project="proj", user="nobody",
        command=("bash", "-c", 'echo "$RECHENWERK_JOB_ID $RECHENWERK_ARRAY_TASK_ID '
                 '$RECHENWERK_ARRAY_JOB_ID $RECHENWERK_LOG_DIR"'),
        script=None, workdir=str(tmp), env={"LR": "0.1"}, gpus=1, nodes=1, gpus_per_node=1,
        walltime_s=60, qos="normal", log_dir=str(tmp / "logs" / job_id / "1"),
        array=ArrayTask("10", index, 3, 0, 7, 2))


def test_one_script_serves_every_task(tmp_path: Path) -> None:
    reqs = [_req(tmp_path, "10", 0), _req(tmp_path, "11", 4), _req(tmp_path, "12", 7)]
    spec = build_array_submit_spec(reqs, partition="debug")
    assert spec.array == "0,4,7%2" and spec.comment == "rechenwerk:10.1"
    assert spec.stdout.endswith("slurm-task-%a.out")
    assert array_expression([replace(r) for r in reqs[:2]], None) == "0,4"
    for r in reqs:
        Path(r.log_dir).mkdir(parents=True)
    for r in reqs:
        assert r.array is not None
        env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": str(r.array.task_id)}
        proc = subprocess.run(["bash", "-c", spec.script], env=env, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        out = (Path(r.log_dir) / "stdout.log").read_text().split()
        assert out == [r.job_id, str(r.array.task_id), "10", r.log_dir]
    stray = subprocess.run(["bash", "-c", spec.script],
                           env={"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "5"},
                           capture_output=True, text=True, timeout=30)
    assert stray.returncode == 1 and "not one of this array's" in stray.stderr


def test_refused_without_array_tasks(tmp_path: Path) -> None:
    plain = replace(_req(tmp_path, "1", 0), array=None)
    with pytest.raises(Exception, match="array"):
        build_array_submit_spec([plain], partition="debug")
    assert SlurmJob(job_id="1", state="PENDING").array_task_id is None

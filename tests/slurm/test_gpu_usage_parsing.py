"""GPU use from Slurm's step TRES usage (no Slurm needed).

The development cluster's GPUs are fake and record no ``gres/gpuutil``, so the data here
is written in the documented formats: ``sacct --parsable2`` lines with the fields of
``gpu_usage.PARSABLE_FIELDS`` (TRES strings as sacct(1) prints them, memory with a
1024-based suffix) and the ``steps[]`` of a ``sacct --json`` document in the shape Slurm
22.05 gives (taken from the dev cluster, with the GPU TRES a real cluster adds)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rechenwerk.execution.gpu_use import low_use_hint
from rechenwerk.execution.slurm import gpu_usage
from rechenwerk.execution.slurm.backend import to_status
from rechenwerk.execution.slurm.gpu_usage import StepTres
from rechenwerk.execution.slurm.types import SlurmJob

SACCT = Path(__file__).parent / "data" / "sacct_gpu_steps.txt"
GIB = 1 << 30


def test_tres_strings_and_quantities() -> None:
    tres = gpu_usage.parse_tres("cpu=00:01:02,gres/gpumem=21.5G,gres/gpuutil=37,Mem=1K")
    assert tres == {"cpu": "00:01:02", "gres/gpumem": "21.5G", "gres/gpuutil": "37", "mem": "1K"}
    assert gpu_usage.parse_tres("") == {} and gpu_usage.parse_tres(None) == {}
    assert gpu_usage.quantity_bytes("1234") == 1234
    assert gpu_usage.quantity_bytes("512K") == 512 * 1024
    assert gpu_usage.quantity_bytes("70.50G") == int(70.5 * GIB)
    assert gpu_usage.quantity_bytes("2T") == 2 << 40
    assert gpu_usage.quantity_bytes("lots") is None
    assert gpu_usage.gpu_count("cpu=8,gres/gpu:a100=4,gres/gpu=4,mem=64G") == 4
    assert gpu_usage.gpu_count("gres/gpu:a100=2,gres/gpu:v100=1") == 3
    assert gpu_usage.gpu_count("cpu=4,gres/gpumem=8G,gres/gpuutil=0") == 0


def test_sacct_parsable_steps_to_gpu_use() -> None:
    steps = gpu_usage.steps_from_parsable(SACCT.read_text())
    assert sorted(steps) == ["4101", "4102", "4103"]
    assert [s.step_id for s in steps["4101"]] == ["4101.batch", "4101.extern", "4101.0"]
    usage = gpu_usage.usage_by_job(steps)
    # 4101: 2 nodes x 4 GPUs; the srun step (2 tasks of 4 GPUs) did the work, the batch
    # shell's idle GPUs do not count. gpuutil 52 over a task's 4 GPUs: 13 % each.
    multi = usage["4101"]
    assert multi.source == "slurm" and multi.gpus == 8
    assert multi.mean_util_pct == 13.0
    assert multi.max_mem_bytes == int(70.5 * GIB) // 4
    assert multi.idle_gpu_s == 0.0 and multi.measured_s == 3540.0
    # 4102: one node, the batch step ran the command: 48 over 4 GPUs = 12 %
    single = usage["4102"]
    assert single.gpus == 4 and single.mean_util_pct == 12.0
    assert single.max_mem_bytes == 8192 * (1 << 20) // 4
    hint = low_use_hint(single.mean_util_pct, single.gpus)
    assert hint is not None and hint.startswith("this job used 12% of its 4 GPUs on average")
    # 4103: the cluster recorded no gres/gpuutil for it: not measured
    assert "4103" not in usage


def test_idle_steps_count_their_whole_gpu_time() -> None:
    steps = [
        StepTres("7.0", 600.0, 1, 4, "gres/gpuutil=8,gres/gpumem=4G", "gres/gpumem=4G"),
        StepTres("7.1", 1800.0, 1, 4, "gres/gpuutil=360", "gres/gpumem=64G"),
    ]
    use = gpu_usage.gpu_use_from_steps(steps, idle_below_pct=5.0)
    assert use is not None
    # step 0: 2 % per GPU for 600 s on 4 GPUs (idle); step 1: 90 % for 1800 s
    assert use.idle_gpu_s == 2400.0
    assert use.mean_util_pct == pytest.approx((2 * 2400 + 90 * 7200) / 9600, abs=0.01)
    assert use.max_mem_bytes == 16 * GIB
    assert gpu_usage.gpu_use_from_steps([]) is None
    assert (
        gpu_usage.gpu_use_from_steps([StepTres("8.batch", 60.0, 1, 1, "cpu=00:00:01,mem=1K", "")])
        is None
    )


def _json_step(
    name: str,
    elapsed: int,
    tasks: int,
    gpus: int,
    ave: list[dict[str, object]],
    mx: list[dict[str, object]],
) -> dict[str, object]:
    return {
        "step": {"job_id": 5001, "het": {"component": None}, "id": name, "name": name},
        "time": {"elapsed": elapsed},
        "tasks": {"count": tasks},
        "tres": {
            "requested": {"max": mx, "min": [], "average": ave, "total": []},
            "allocated": [
                {"type": "cpu", "name": None, "id": 1, "count": 8},
                {"type": "gres", "name": "gpu", "id": 1001, "count": gpus},
                {"type": "gres", "name": "gpu:a100", "id": 1002, "count": gpus},
            ],
        },
    }


def test_sacct_json_steps_to_gpu_use() -> None:
    util = {"type": "gres", "name": "gpuutil", "id": 1003}
    mem = {"type": "gres", "name": "gpumem", "id": 1004}
    doc = {
        "jobs": [
            {
                "job_id": 5001,
                "steps": [
                    _json_step(
                        "batch",
                        900,
                        1,
                        2,
                        [
                            {"type": "energy", "name": None, "id": 3, "count": 0},
                            {**util, "count": 150},
                            {**mem, "count": 40 * GIB},
                        ],
                        [{**util, "count": 190}, {**mem, "count": 44 * GIB}],
                    ),
                ],
            },
            {"job_id": 5002, "steps": [_json_step("batch", 60, 1, 1, [], [])]},
            {"job_id": 5003},
        ]
    }
    steps = gpu_usage.steps_from_json(doc)
    assert steps["5001"][0].step_id == "5001.batch" and steps["5001"][0].wrapper
    assert steps["5001"][0].usage_ave == "energy=0,gres/gpuutil=150,gres/gpumem=42949672960"
    usage = gpu_usage.usage_by_job(steps)
    assert usage["5001"].mean_util_pct == 75.0 and usage["5001"].gpus == 2
    assert usage["5001"].max_mem_bytes == 22 * GIB
    assert "5002" not in usage and "5003" not in usage


def test_gpu_use_rides_on_the_job_into_its_status() -> None:
    t0, t1 = datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 10, tzinfo=UTC)
    jobs = [
        SlurmJob("4102", "COMPLETED", start_time=t0, end_time=t1, exit_code=0),
        SlurmJob("4103", "COMPLETED", start_time=t0, end_time=t1, exit_code=0),
        SlurmJob("4101", "RUNNING", start_time=t0),
    ]
    out = gpu_usage.with_gpu_use(jobs, gpu_usage.steps_from_parsable(SACCT.read_text()))
    assert out[0].gpu_use is not None and out[0].gpu_use.mean_util_pct == 12.0
    assert out[1].gpu_use is None  # nothing recorded
    assert out[2].gpu_use is None  # still running: figures come when it ends
    status = to_status(out[0])
    assert status.gpu_use == out[0].gpu_use

"""GPU use of local jobs: aggregation of readings, the recorded-log path, NVML present
(a stand-in ``pynvml`` module) and absent (this machine: no GPU), end to end through
the supervisor."""

from __future__ import annotations

import csv
import sys
import textwrap
import types
from pathlib import Path

import pytest

from rechenwerk.execution.base import BackendJobState, GpuSlice, LaunchRequest
from rechenwerk.execution.gpu_use import (
    GpuMonitor,
    GpuSample,
    GpuUse,
    GpuUseAggregator,
    NvmlSampler,
    ReplaySampler,
    aggregate_recorded,
    low_use_hint,
    parse_nvidia_smi_csv,
    visible_indices,
)
from rechenwerk.execution.local import LocalExecutor
from waiting import DEADLINE_S, wait_for

# A synthetic log in nvidia-smi's CSV format (`nvidia-smi --query-gpu=timestamp,index,
# utilization.gpu,memory.used --format=csv -l 5`): a 4-GPU job starved by its data
# loader for six minutes (start-up, bursts on GPU 0, GPUs 1-3 mostly waiting, teardown).
LOG = Path(__file__).parent / "data" / "nvidia_smi_4gpu_starved.csv"


def _rows() -> list[dict[str, str]]:
    with LOG.open() as fh:
        return list(csv.DictReader(fh, skipinitialspace=True))


def test_recorded_log_aggregates_to_the_plain_figures() -> None:
    rounds = parse_nvidia_smi_csv(LOG.read_text())
    use = aggregate_recorded(rounds, [0, 1, 2, 3], idle_below_pct=5.0)
    assert use is not None
    rows = _rows()
    utils = [float(r["utilization.gpu [%]"].removesuffix("%")) for r in rows]
    mems = [int(r["memory.used [MiB]"].removesuffix("MiB")) for r in rows]
    # the log's rounds are 5 s apart, so the time-weighted figures are the plain ones
    assert len(rounds) == 72 and rounds[-1].at_s == 355.0
    assert use.gpus == 4 and use.samples == 72 and use.measured_s == 360.0
    assert use.mean_util_pct == pytest.approx(sum(utils) / len(utils), abs=0.01)
    assert use.idle_gpu_s == 5.0 * sum(1 for u in utils if u < 5.0)
    assert use.max_mem_bytes == max(mems) * 1024 * 1024
    assert use.mean_util_pct < 20.0
    hint = low_use_hint(use.mean_util_pct, 4)
    assert hint is not None and hint.startswith("this job used 14% of its 4 GPUs on average")
    assert "fewer GPUs" in hint and "data loader" in hint


def test_only_the_jobs_own_gpus_count() -> None:
    rounds = parse_nvidia_smi_csv(LOG.read_text())
    gpu0 = aggregate_recorded(rounds, [0])
    assert gpu0 is not None and gpu0.gpus == 1
    utils = [
        float(r["utilization.gpu [%]"].removesuffix("%")) for r in _rows() if r["index"] == "0"
    ]
    assert gpu0.mean_util_pct == pytest.approx(sum(utils) / len(utils), abs=0.01)


def test_irregular_rounds_weigh_by_the_time_they_stand_for() -> None:
    agg = GpuUseAggregator(100.0, idle_below_pct=5.0)
    agg.add(110.0, [GpuSample(0, 100.0, 2 << 30), GpuSample(1, 0.0, 1 << 30)])  # 10 s
    agg.add(140.0, [GpuSample(0, 50.0, 3 << 30), GpuSample(1, 4.0, 1 << 30)])  # 30 s
    agg.add(150.0, [])  # nothing read: 10 s unmeasured
    agg.add(160.0, [GpuSample(0, 130.0, 1 << 30)])  # over 100 reads as 100, 10 s
    use = agg.result()
    assert use is not None
    # (100*10 + 0*10 + 50*30 + 4*30 + 100*10) / (10+10+30+30+10)
    assert use.mean_util_pct == pytest.approx(3620 / 90, abs=0.01)
    assert use.idle_gpu_s == 40.0  # GPU 1: 0 % for 10 s and 4 % for 30 s
    assert use.max_mem_bytes == 3 << 30 and use.gpus == 2
    assert use.measured_s == 50.0 and use.samples == 3


def test_no_reading_is_not_measured_and_no_hint() -> None:
    assert GpuUseAggregator(0.0).result() is None
    assert low_use_hint(None, 4) is None
    assert low_use_hint(85.0, 4) is None
    one = low_use_hint(3.0, 1)
    assert one is not None and "of its GPU on average" in one and "fewer" not in one


def test_json_round_trip_and_malformed_records() -> None:
    use = GpuUse("nvml", 2, 41.5, 123, 60.0, 600.0, 60)
    assert GpuUse.from_json(use.to_json()) == use
    assert GpuUse.from_json(None) is None
    assert GpuUse.from_json({"source": "nvml"}) is None
    assert GpuUse.from_json({**use.to_json(), "gpus": "x"}) is None


def test_monitor_runs_readings_through_the_aggregator() -> None:
    rounds = parse_nvidia_smi_csv(LOG.read_text())
    now = [rounds[0].at_s - 5.0]
    monitor = GpuMonitor(
        ReplaySampler(rounds), [3, 1, 2, 0, 0], interval_s=5.0, clock=lambda: now[0]
    )
    for rnd in rounds:
        now[0] = rnd.at_s
        monitor.sample_once()
    assert monitor.stop() == aggregate_recorded(rounds, [0, 1, 2, 3])


def test_monitor_thread_samples_until_stopped() -> None:
    calls: list[tuple[int, ...]] = []

    class Steady:
        def sample(self, indices: tuple[int, ...]) -> list[GpuSample]:
            calls.append(tuple(indices))
            return [GpuSample(i, 60.0, 1000) for i in indices]

        def close(self) -> None:
            calls.append(())

    monitor = GpuMonitor(Steady(), [1, 0], interval_s=0.01).start()
    wait_for(lambda: len(calls) >= 3, "three rounds of readings")
    use = monitor.stop()
    assert use is not None and use.gpus == 2 and use.mean_util_pct == 60.0
    assert calls[0] == (0, 1) and calls[-1] == ()  # sorted indices; closed at the end


def test_visible_indices_from_node_environments() -> None:
    envs = [{"CUDA_VISIBLE_DEVICES": "2,3"}, {"CUDA_VISIBLE_DEVICES": "3,0"}, {}]
    assert visible_indices(envs) == [0, 2, 3]


def test_nvml_absent_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as when not installed
    sampler, why = NvmlSampler.open()
    assert sampler is None and why is not None and "rechenwerk[gpu]" in why


def _fake_nvml(init_error: bool = False, count: int = 2) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    state = {"shutdown": 0}

    def init() -> None:
        if init_error:
            raise RuntimeError("NVML Shared Library Not Found")

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", 1)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetUtilizationRates = (  # type: ignore[attr-defined]
        lambda h: types.SimpleNamespace(gpu=10 * (h + 1), memory=0)
    )
    mod.nvmlDeviceGetMemoryInfo = (  # type: ignore[attr-defined]
        lambda h: types.SimpleNamespace(used=(h + 1) << 30, total=80 << 30)
    )
    mod.state = state  # type: ignore[attr-defined]
    return mod


def test_nvml_without_driver_or_gpu_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_error=True))
    sampler, why = NvmlSampler.open()
    assert sampler is None and why is not None and "Library Not Found" in why
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(count=0))
    sampler, why = NvmlSampler.open()
    assert sampler is None and why == "NVML sees no GPU on this machine"


def test_nvml_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml(count=2)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler, why = NvmlSampler.open()
    assert sampler is not None and why is None
    # index 5 is an emulated GPU with no device: skipped, not an error
    assert sampler.sample([0, 1, 5]) == [GpuSample(0, 10.0, 1 << 30), GpuSample(1, 20.0, 2 << 30)]
    sampler.close()
    assert fake.state["shutdown"] == 1


def _request(tmp: Path, job_id: str, argv: tuple[str, ...]) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id,
        attempt=1,
        name=f"job-{job_id}",
        project="p1",
        user="alice",
        command=argv,
        script=None,
        workdir=str(tmp),
        env={},
        gpus=2,
        nodes=1,
        gpus_per_node=2,
        walltime_s=60,
        qos="normal",
        log_dir=str(tmp / "logs" / job_id),
        placement=(GpuSlice("node01", (0, 1)),),
    )


def _finished(ex: LocalExecutor, handle: str) -> object:
    st = ex.poll([handle])[handle]
    return st if st.state not in (BackendJobState.PENDING, BackendJobState.RUNNING) else None


def test_job_without_nvml_runs_and_is_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This machine has neither pynvml nor a GPU; hide an installed pynvml all the same.
    blocker = tmp_path / "nonvml"
    blocker.mkdir()
    (blocker / "pynvml.py").write_text("raise ImportError('no NVML here')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    ex = LocalExecutor(
        tmp_path / "data", cluster="1x2", kill_grace_s=1.0, gpu_sample_interval_s=0.05
    )
    handle = ex.submit(_request(tmp_path, "1", (sys.executable, "-c", "pass")))
    wait_for(lambda: _finished(ex, handle), "the job to finish", DEADLINE_S)
    st = ex.poll([handle])[handle]
    assert st.state == BackendJobState.COMPLETED and st.exit_code == 0
    assert st.gpu_use is None
    assert st.gpu_use_note is not None and "NVML is not installed" in st.gpu_use_note


def test_job_with_nvml_is_measured_by_its_supervisor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in pynvml on the supervisor's path: GPU i reads 10*(i+1) %, (i+1) GiB.
    fake = tmp_path / "fakenvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(
        textwrap.dedent("""\
        import os, types
        def nvmlInit(): pass
        def nvmlShutdown(): pass
        def nvmlDeviceGetCount(): return 4
        def nvmlDeviceGetHandleByIndex(i): return i
        def nvmlDeviceGetUtilizationRates(h):
            with open(os.environ["FAKE_NVML_LOG"], "a") as fh:  # the test sees each reading
                fh.write(f"{h}\\n")
            return types.SimpleNamespace(gpu=10 * (h + 1))
        def nvmlDeviceGetMemoryInfo(h): return types.SimpleNamespace(used=(h + 1) << 30)
        """)
    )
    readings = tmp_path / "readings.log"
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.setenv("FAKE_NVML_LOG", str(readings))
    ex = LocalExecutor(
        tmp_path / "data", cluster="1x4", kill_grace_s=1.0, gpu_sample_interval_s=0.02
    )
    release = tmp_path / "release"
    wait_job = f"import os,time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)"
    req = _request(tmp_path, "2", (sys.executable, "-c", wait_job))
    handle = ex.submit(req)
    # the supervisor samples every 20 ms while the job waits for its release
    wait_for(
        lambda: readings.exists() and len(readings.read_text().split()) >= 6,
        "three rounds of readings of the job's two GPUs",
    )
    assert set(readings.read_text().split()) == {"0", "1"}
    release.write_text("go")
    wait_for(lambda: _finished(ex, handle), "the job to finish", DEADLINE_S)
    st = ex.poll([handle])[handle]
    assert st.state == BackendJobState.COMPLETED
    assert st.gpu_use is not None and st.gpu_use_note is None
    # the job's GPUs are 0 and 1 (CUDA_VISIBLE_DEVICES): 10 % and 20 %
    assert st.gpu_use.source == "nvml" and st.gpu_use.gpus == 2
    assert st.gpu_use.mean_util_pct == pytest.approx(15.0, abs=0.01)
    assert st.gpu_use.max_mem_bytes == 2 << 30
    assert st.gpu_use.idle_gpu_s == 0.0 and st.gpu_use.samples >= 1

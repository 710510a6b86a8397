"""Measured energy of local runs (``execution/energy_meter.py``): RAPL from a fake
powercap tree (wrap-around at ``max_energy_range_uj``, subzones ignored, apportioned by
the job's share), NVML from a stand-in module, NVML absent (this machine: no GPU, no
readable RAPL), and end to end through the supervisor, the executor's status and the
settled usage record (kWh x the period's PUE)."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from rechenwerk.execution.base import (
    BackendJobState,
    BackendJobStatus,
    GpuSlice,
    LaunchRequest,
)
from rechenwerk.execution.energy_meter import (
    EnergyMeter,
    EnergyUse,
    NvmlEnergyCounter,
    RaplCounter,
    counter_delta_j,
    open_meter,
)
from rechenwerk.execution.local import LocalExecutor
from waiting import DEADLINE_S, wait_for

RANGE_UJ = 262_143_328_850  # a typical package's max_energy_range_uj


def _zone(root: Path, name: str, energy_uj: int, range_uj: int = RANGE_UJ) -> Path:
    z = root / name
    z.mkdir(parents=True)
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (z / "name").write_text("package-0\n")
    return z


def _set(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_counter_delta_wraps_once_at_its_range() -> None:
    assert counter_delta_j({"a": 10.0}, {"a": 25.0}, {}) == 15.0
    # 5 J below the top, then 3 J after the wrap: 8 J
    assert counter_delta_j({"a": 95.0}, {"a": 3.0}, {"a": 100.0}) == pytest.approx(8.0)
    # a counter without a range that went down was reset: nothing, never negative
    assert counter_delta_j({"a": 95.0, "b": 1.0}, {"a": 3.0, "b": 2.0}, {}) == 1.0
    assert counter_delta_j({"a": 1.0}, {}, {}) == 0.0


def test_rapl_tree_with_wrap_around_apportioned(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    z0 = _zone(root, "intel-rapl:0", RANGE_UJ - 2_000_000)  # 2 J below the wrap
    z1 = _zone(root, "intel-rapl:1", 10_000_000)
    sub = _zone(root, "intel-rapl:0:0", 0)  # the cores, inside package 0: not counted
    counter, why = RaplCounter.open(root)
    assert counter is not None and why is None
    clock = _Clock()
    meter = EnergyMeter(counter, share=0.25, interval_s=60.0, clock=clock).start(thread=False)
    # package 0 wraps: 2 J to the top + 5 J after; package 1: 40 J; the subzone's 900 J
    # are inside package 0's figure
    _set(z0, 5_000_000)
    _set(z1, 50_000_000)
    _set(sub, 900_000_000)
    clock.t += 30.0
    meter.read_once()
    # a second interval: package 0 +20 J, package 1 +33 J
    _set(z0, 25_000_000)
    _set(z1, 83_000_000)
    clock.t += 30.0
    use = meter.stop()
    assert use == EnergyUse(source="rapl", joules=pytest.approx(0.25 * (7 + 40 + 20 + 33)),
                            measured_s=60.0, share=0.25, readings=3)
    assert EnergyUse.from_json(use.to_json()) == use


def test_no_rapl_and_no_nvml_is_not_measured_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "nonvml"
    blocker.mkdir()
    (blocker / "pynvml.py").write_text("raise ImportError('no NVML here')\n")
    monkeypatch.syspath_prepend(str(blocker))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    meter, why = open_meter([0, 1], share=0.5, interval_s=60.0,
                            powercap_root=tmp_path / "none")
    assert meter is None and why is not None
    assert "NVML is not installed" in why and "no RAPL energy counters under" in why
    # RAPL present, NVML absent: RAPL, apportioned
    _zone(tmp_path / "pc", "intel-rapl:0", 0)
    meter, why = open_meter([0, 1], share=0.5, interval_s=60.0, powercap_root=tmp_path / "pc")
    assert meter is not None and why is None


def test_unreadable_rapl_says_so(tmp_path: Path) -> None:
    z = _zone(tmp_path, "intel-rapl:0", 0)
    (z / "energy_uj").write_text("not a number\n")
    counter, why = RaplCounter.open(tmp_path)
    assert counter is None and why is not None and "not readable" in why
    (z / "energy_uj").unlink()
    (z / "energy_uj").mkdir()  # an EISDIR on read, as an unreadable file
    counter, why = RaplCounter.open(tmp_path)
    assert counter is None and why is not None and "not readable" in why


class _FakeNvml:
    """NVML with per-GPU total-energy counters in millijoules, set by the test."""

    def __init__(self, count: int, *, supported: bool = True) -> None:
        self.count = count
        self.mj = dict.fromkeys(range(count), 0)
        self.supported = supported
        self.shutdown = 0

    def nvmlInit(self) -> None:
        return None

    def nvmlShutdown(self) -> None:
        self.shutdown += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if not self.supported:
            raise RuntimeError("Not Supported")
        return self.mj[h]


def test_nvml_counts_exactly_the_jobs_gpus(tmp_path: Path) -> None:
    nvml = _FakeNvml(4)
    nvml.mj.update({0: 1_000_000, 1: 2_000_000, 2: 5_000_000})
    counter, why = NvmlEnergyCounter.open([1, 2], nvml)
    assert counter is not None and why is None
    clock = _Clock()
    meter = EnergyMeter(counter, interval_s=60.0, clock=clock).start(thread=False)
    nvml.mj.update({0: 9_000_000, 1: 2_500_000, 2: 5_250_000})  # GPU 0: not the job's
    clock.t += 10.0
    use = meter.stop()
    assert use is not None and use.source == "nvml" and use.share == 1.0
    assert use.joules == pytest.approx(500.0 + 250.0) and use.measured_s == 10.0
    assert nvml.shutdown == 1
    # NVML wins over RAPL where both are there
    _zone(tmp_path, "intel-rapl:0", 0)
    meter2, _ = open_meter([1, 2], share=0.5, interval_s=60.0, powercap_root=tmp_path,
                           nvml=_FakeNvml(4))
    assert meter2 is not None and meter2._counter.source == "nvml"
    # several emulated nodes share the devices: RAPL, and the note says why
    meter4, _ = open_meter([1, 2], share=0.5, interval_s=60.0, powercap_root=tmp_path,
                           nvml=_FakeNvml(4), inventory_nodes=2)
    assert meter4 is not None and meter4._counter.source == "rapl"
    none, why = open_meter([1, 2], share=0.5, interval_s=60.0,
                           powercap_root=tmp_path / "none", nvml=_FakeNvml(4),
                           inventory_nodes=2)
    assert none is None and why is not None and "2 emulated nodes share" in why
    # an emulated GPU without a device, or GPUs without an energy counter: RAPL instead
    for fake, text in ((_FakeNvml(2), "GPU 3 of the job has no device"),
                       (_FakeNvml(4, supported=False), "report no energy counter")):
        counter, why = NvmlEnergyCounter.open([0, 3], fake)
        assert counter is None and why is not None and text in why
        meter3, _ = open_meter([0, 3], share=0.5, interval_s=60.0, powercap_root=tmp_path,
                               nvml=fake)
        assert meter3 is not None and meter3._counter.source == "rapl"


def test_a_meter_with_one_reading_measured_nothing() -> None:
    class _Once:
        source = "rapl"

        def __init__(self) -> None:
            self.n = 0

        def read(self) -> dict[str, float] | None:
            self.n += 1
            return {"a": 1.0} if self.n == 1 else None

        def wrap_j(self) -> dict[str, float]:
            return {}

        def close(self) -> None:
            return None

    assert EnergyMeter(_Once(), interval_s=60.0).start(thread=False).stop() is None


def _request(tmp: Path, job_id: str, argv: tuple[str, ...], gpus: int = 2) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id, attempt=1, name=f"job-{job_id}", project="p1", user="alice",
        command=argv, script=None, workdir=str(tmp), env={}, gpus=gpus, nodes=1,
        gpus_per_node=gpus, walltime_s=60, qos="normal",
        log_dir=str(tmp / "logs" / job_id),
        placement=(GpuSlice("node01", tuple(range(gpus))),),
    )


def _finished(ex: LocalExecutor, handle: str) -> BackendJobStatus | None:
    st = ex.poll([handle])[handle]
    return st if st.state not in (BackendJobState.PENDING, BackendJobState.RUNNING) else None


def _hide_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "nonvml"
    blocker.mkdir(exist_ok=True)
    (blocker / "pynvml.py").write_text("raise ImportError('no NVML here')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker))


def test_local_run_measured_by_rapl_through_the_supervisor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_nvml(tmp_path, monkeypatch)
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", RANGE_UJ - 1_000_000)
    ex = LocalExecutor(tmp_path / "data", cluster="1x8", kill_grace_s=1.0,
                       energy_interval_s=30.0, powercap_root=root)
    release = tmp_path / "release"
    # the job waits until the supervisor's first reading is taken (it is RUNNING), then
    # the package's counter wraps: 1 J to the top and 7 J after
    job = (f"import os,time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)\n"
           f"open({str(zone / 'energy_uj')!r}, 'w').write('7000000')")
    handle = ex.submit(_request(tmp_path, "1", (sys.executable, "-c", job)))
    wait_for(lambda: ex.poll([handle])[handle].state == BackendJobState.RUNNING,
             "the job to run", DEADLINE_S)
    release.write_text("go")
    wait_for(lambda: _finished(ex, handle), "the job to finish", DEADLINE_S)
    st = ex.poll([handle])[handle]
    assert st.state == BackendJobState.COMPLETED, st.reason
    assert st.energy is not None and st.energy_note is None
    # 8 J of the machine's package energy x the job's 2 of the 8 GPUs
    assert (st.energy.source, st.energy.share) == ("rapl", 0.25)
    assert st.energy.joules == pytest.approx(2.0)


def test_local_run_without_counters_keeps_its_estimate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_nvml(tmp_path, monkeypatch)
    ex = LocalExecutor(tmp_path / "data", cluster="1x2", kill_grace_s=1.0,
                       powercap_root=tmp_path / "nothing")
    handle = ex.submit(_request(tmp_path, "2", (sys.executable, "-c", "pass")))
    wait_for(lambda: _finished(ex, handle), "the job to finish", DEADLINE_S)
    st = ex.poll([handle])[handle]
    assert st.state == BackendJobState.COMPLETED and st.energy is None
    assert st.energy_note is not None and "NVML is not installed" in st.energy_note
    assert "no RAPL energy counters" in st.energy_note
    off = LocalExecutor(tmp_path / "data2", cluster="1x2", kill_grace_s=1.0,
                        energy_interval_s=0.0)
    handle = off.submit(_request(tmp_path, "3", (sys.executable, "-c", "pass")))
    wait_for(lambda: _finished(off, handle), "the job to finish", DEADLINE_S)
    assert off.poll([handle])[handle].energy_note == "energy metering is off"


def test_local_run_measured_by_nvml_through_the_supervisor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in pynvml on the supervisor's path: GPU i's counter is in the file gpu<i>
    fake = tmp_path / "fakenvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(textwrap.dedent("""\
        import os
        def nvmlInit(): pass
        def nvmlShutdown(): pass
        def nvmlDeviceGetCount(): return 4
        def nvmlDeviceGetHandleByIndex(i): return i
        def nvmlDeviceGetTotalEnergyConsumption(h):
            with open(os.path.join(os.environ["FAKE_NVML_DIR"], f"gpu{h}")) as fh:
                return int(fh.read())
        """))
    counters = tmp_path / "counters"
    counters.mkdir()
    for i in range(4):
        (counters / f"gpu{i}").write_text("1000")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.setenv("FAKE_NVML_DIR", str(counters))
    ex = LocalExecutor(tmp_path / "data", cluster="1x4", kill_grace_s=1.0,
                       powercap_root=tmp_path / "nothing")
    release = tmp_path / "release"
    # GPU 0 +300 J, GPU 1 +150 J (mJ counters); GPU 3 is not the job's
    job = (f"import os,time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)\n"
           f"open({str(counters / 'gpu0')!r}, 'w').write('301000')\n"
           f"open({str(counters / 'gpu1')!r}, 'w').write('151000')\n"
           f"open({str(counters / 'gpu3')!r}, 'w').write('999999000')")
    handle = ex.submit(_request(tmp_path, "4", (sys.executable, "-c", job)))
    wait_for(lambda: ex.poll([handle])[handle].state == BackendJobState.RUNNING,
             "the job to run", DEADLINE_S)
    release.write_text("go")
    wait_for(lambda: _finished(ex, handle), "the job to finish", DEADLINE_S)
    st = ex.poll([handle])[handle]
    assert st.state == BackendJobState.COMPLETED, st.reason
    assert st.energy is not None and (st.energy.source, st.energy.share) == ("nvml", 1.0)
    assert st.energy.joules == pytest.approx(450.0)


def test_a_measured_local_run_is_charged_its_kwh_with_the_pue(session: Session) -> None:
    from sqlalchemy import select

    from factories import make_award, make_project
    from rechenwerk.accounting.models import UsageRecord
    from rechenwerk.jobs.models import Job
    from rechenwerk.jobs.progress import apply_backend_status

    project = make_project(session)
    make_award(session, project)
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    job = Job(project_id=project.id, user_id=project.pi_user_id, name="j", spec={},
              state="running", qos="normal", requested_qos="normal", over_budget=False,
              gpus=2, walltime_s=7200, attempt=1, attained_gpu_s=0.0, gpu_type="A100-80GB",
              submitted_at=t0, started_at=t0, backend="local", backend_handle="1.1",
              updated_at=t0)
    session.add(job)
    session.flush()
    end = t0 + timedelta(hours=1)
    status = BackendJobStatus("1.1", BackendJobState.COMPLETED, started_at=t0, ended_at=end,
                              exit_code=0, energy=EnergyUse("rapl", 7.2e6, 3600.0, 0.25, 61))
    apply_backend_status(session, job, status, now=end, source="local")
    rec = session.scalars(select(UsageRecord).where(UsageRecord.job_id == job.id)).one()
    # 2 kWh metered x the default PUE 1.2; CO2 with the German grid's 381 g/kWh
    assert rec.energy_source == "measured"
    assert rec.energy_kwh == pytest.approx(2.4)
    assert rec.co2_kg == pytest.approx(2.4 * 0.381)

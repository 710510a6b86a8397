"""Measured energy of a local run (docs/jobs.md "Energy"): the job's supervisor reads an
energy counter when the job's command starts, every ``interval_s`` while it runs and when
it ends, and reports the joules in between; the run is then charged that energy instead
of the TDP estimate (``energy_source`` 'measured').

Two counters, the first that works:

- **NVML** (``nvmlDeviceGetTotalEnergyConsumption``: millijoules since the driver
  loaded, Volta and later) of each of the job's GPUs (``CUDA_VISIBLE_DEVICES`` of its
  node processes): the GPU boards' own energy, exactly the job's (the local executor
  gives a GPU to one job at a time). CPUs, memory, fans and the rest of the node are not
  in it. Used only when every GPU of the job is a real device that reports energy and
  the executor emulates one node (with several, each numbers its GPUs from 0 and a
  device serves a GPU of each).
- **RAPL** (``/sys/class/powercap/intel-rapl:N/energy_uj``, the CPU packages; AMD's
  driver uses the same names): whole-package energy of the machine, every process on it
  included, so the job is charged its share of it: the energy x the job's GPUs over the
  GPUs of the executor's inventory (``share``). Only the top-level zones are read (their
  subzones, cores and uncore, are inside them; DRAM where it is a subzone is not
  counted). The counter wraps at ``max_energy_range_uj`` (a few hundred kJ: under an
  hour at full load), so it is read every ``interval_s`` and a reading below the last
  one adds the range; a run read less often than once a wrap loses whole ranges.
  Since Linux 5.10 ``energy_uj`` is readable by root only: elsewhere the run keeps its
  estimate and the record says why.

The powercap root and the NVML module are injectable (tests: a fake powercap tree and a
fake NVML)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

POWERCAP_ROOT = Path("/sys/class/powercap")
DEFAULT_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class EnergyUse:
    """A run's measured energy: ``joules`` charged to the job (RAPL: ``share`` of what
    the counters counted), over ``measured_s`` of wall time."""

    source: str  # "nvml" | "rapl"
    joules: float
    measured_s: float
    share: float = 1.0
    readings: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "joules": self.joules, "measured_s": self.measured_s,
                "share": self.share, "readings": self.readings}

    @classmethod
    def from_json(cls, data: Any) -> EnergyUse | None:
        """The record a supervisor wrote; None for none or a malformed one."""
        if not isinstance(data, dict):
            return None
        try:
            use = cls(source=str(data["source"]), joules=float(data["joules"]),
                      measured_s=float(data["measured_s"]),
                      share=float(data.get("share", 1.0)),
                      readings=int(data.get("readings") or 0))
        except (KeyError, TypeError, ValueError):
            return None
        return use if use.joules >= 0 else None


class EnergyCounter(Protocol):
    """Cumulative counters in joules by name; None when a reading failed."""

    source: str

    def read(self) -> dict[str, float] | None: ...

    def wrap_j(self) -> Mapping[str, float]: ...

    def close(self) -> None: ...


class NvmlEnergyCounter:
    """The total-energy counters of some GPUs through NVML. Build it with :meth:`open`."""

    source = "nvml"

    def __init__(self, nvml: Any, handles: Mapping[int, Any]) -> None:
        self._nvml = nvml
        self._handles = dict(handles)

    @classmethod
    def open(cls, indices: Sequence[int], nvml: Any = None
             ) -> tuple[NvmlEnergyCounter | None, str | None]:
        """The counter of the GPUs ``indices``, or None and why not (no pynvml, no
        driver, an emulated GPU without a device, a GPU without an energy counter)."""
        if not indices:
            return None, "the job has no GPUs"
        if nvml is None:
            try:
                import pynvml as nvml_module
            except ImportError:
                return None, "NVML is not installed (pip install 'rechenwerk[gpu]')"
            nvml = nvml_module
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            return None, f"NVML is not usable here: {exc}"
        counter = cls(nvml, {})
        try:
            count = int(nvml.nvmlDeviceGetCount())
            missing = [i for i in indices if not 0 <= i < count]
            if missing:
                counter.close()
                return None, (f"GPU {missing[0]} of the job has no device behind it "
                              f"(NVML sees {count})")
            counter._handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in indices}
            if counter.read() is None:
                counter.close()
                return None, "the job's GPUs report no energy counter (NVML)"
        except Exception as exc:  # a driver error while probing: estimate instead
            counter.close()
            return None, f"NVML energy counters not readable: {exc}"
        return counter, None

    def read(self) -> dict[str, float] | None:
        try:
            return {f"gpu{i}": float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h))
                    / 1000.0 for i, h in self._handles.items()}
        except Exception:  # not supported, or a GPU fallen off the bus: no reading
            return None

    def wrap_j(self) -> Mapping[str, float]:
        return {}  # 64-bit millijoules: no wrap in a job's lifetime

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # shutting down a library that failed: nothing to keep
            return


class RaplCounter:
    """The top-level RAPL zones of a powercap tree. Build it with :meth:`open`."""

    source = "rapl"

    def __init__(self, zones: Sequence[Path], ranges: Mapping[str, float]) -> None:
        self._zones = tuple(zones)
        self._ranges = dict(ranges)

    @classmethod
    def open(cls, root: Path = POWERCAP_ROOT) -> tuple[RaplCounter | None, str | None]:
        zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        if not zones:
            return None, f"no RAPL energy counters under {root}"
        try:
            ranges = {z.name: int((z / "max_energy_range_uj").read_text().strip()) / 1e6
                      for z in zones}
            for z in zones:
                int((z / "energy_uj").read_text().strip())
        except PermissionError:
            return None, (f"the RAPL energy counters under {root} are readable by root only "
                          "(Linux 5.10 and later)")
        except (OSError, ValueError) as exc:
            return None, f"the RAPL energy counters under {root} are not readable: {exc}"
        return cls(zones, ranges), None

    def read(self) -> dict[str, float] | None:
        try:
            return {z.name: int((z / "energy_uj").read_text().strip()) / 1e6
                    for z in self._zones}
        except (OSError, ValueError):
            return None

    def wrap_j(self) -> Mapping[str, float]:
        return self._ranges

    def close(self) -> None:
        return None


def counter_delta_j(before: Mapping[str, float], after: Mapping[str, float],
                    wrap_j: Mapping[str, float]) -> float:
    """Joules counted from ``before`` to ``after`` over the counters in both; a counter
    that went down wrapped once at its ``wrap_j`` range (a counter without a range that
    went down was reset: its part is lost, not negative)."""
    total = 0.0
    for name, b in before.items():
        a = after.get(name)
        if a is None:
            continue
        d = a - b
        if d < 0:
            rng = wrap_j.get(name)
            d = d + rng if rng else 0.0
        total += max(d, 0.0)
    return total


class EnergyMeter:
    """Reads ``counter`` at :meth:`start`, every ``interval_s`` on a thread of its own
    and at :meth:`stop`, which returns the energy in between times ``share``."""

    def __init__(self, counter: EnergyCounter, *, share: float = 1.0,
                 interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._counter = counter
        self._share = share
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] | None = None
        self._started_s = 0.0
        self._joules = 0.0
        self._readings = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="energy-meter", daemon=True)

    def start(self, *, thread: bool = True) -> EnergyMeter:
        self._started_s = self._clock()
        self.read_once()
        if thread and self._interval > 0:
            self._thread.start()
        return self

    def read_once(self) -> None:
        now = self._counter.read()
        if now is None:
            return  # a failed reading: the next one covers the time
        with self._lock:
            if self._last is not None:
                self._joules += counter_delta_j(self._last, now, self._counter.wrap_j())
            self._last = now
            self._readings += 1

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.read_once()

    def stop(self) -> EnergyUse | None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + 5.0)
        self.read_once()
        self._counter.close()
        if self._readings < 2:
            return None
        return EnergyUse(source=self._counter.source,
                         joules=round(self._joules * self._share, 3),
                         measured_s=round(max(0.0, self._clock() - self._started_s), 3),
                         share=self._share, readings=self._readings)


def open_meter(indices: Sequence[int], *, share: float, interval_s: float,
               powercap_root: Path = POWERCAP_ROOT, nvml: Any = None,
               inventory_nodes: int = 1) -> tuple[EnergyMeter | None, str | None]:
    """A meter for a job with the GPUs ``indices`` and ``share`` of the machine: NVML
    when every GPU of the job reports energy and the GPUs are the job's alone, else RAPL
    apportioned by ``share``; or None and why neither works (both reasons).

    ``inventory_nodes``: the nodes the executor emulates on this machine. With more than
    one, each emulated node numbers its GPUs from 0 (``CUDA_VISIBLE_DEVICES``), so a
    device serves a GPU of every node and its counter is not one job's: NVML is skipped."""
    counter: EnergyCounter | None
    why_nvml: str | None
    if inventory_nodes > 1:
        counter, why_nvml = None, (f"the {inventory_nodes} emulated nodes share this "
                                   "machine's GPUs, so NVML's counters are not one job's")
    else:
        counter, why_nvml = NvmlEnergyCounter.open(indices, nvml)
    if counter is not None:
        return EnergyMeter(counter, share=1.0, interval_s=interval_s), None
    counter, why_rapl = RaplCounter.open(powercap_root)
    if counter is not None:
        return EnergyMeter(counter, share=share, interval_s=interval_s), None
    return None, f"energy not measured: {why_nvml}; {why_rapl}"

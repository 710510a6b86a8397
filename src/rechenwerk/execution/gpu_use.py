"""How much of its GPUs a job really used (docs/jobs.md "GPU use").

One shape for every backend, :class:`GpuUse`: the mean utilisation of the job's GPUs,
the most memory one of them held, and the idle GPU-seconds (utilisation below a
threshold). The local executor measures it by sampling NVML (``pynvml``, the optional
``gpu`` extra) from the job's supervisor; Slurm's accounting records it as the
``gres/gpuutil`` / ``gres/gpumem`` TRES (:mod:`rechenwerk.execution.slurm.gpu_usage`).
None anywhere means "not measured" (no NVML, no GPU, a cluster that does not record
them): never zero, never an error.

Samplers are an interface (:class:`GpuSampler`) so recorded data (an ``nvidia-smi``
CSV log, :func:`parse_nvidia_smi_csv`) runs through the same aggregation as live NVML.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# Utilisation below this (percent) counts as idle; the setting's default.
DEFAULT_IDLE_BELOW_PCT = 5.0
# A finished job that used its GPUs less than this on average gets a hint.
LOW_USE_PCT = 20.0
NOT_MEASURED = "not measured"


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One reading of one GPU: its index (as the job sees it on its node), the
    utilisation in percent over the driver's last sample period, the memory in use."""

    index: int
    util_pct: float
    mem_used_bytes: int


@dataclass(frozen=True, slots=True)
class GpuUse:
    """A run's GPU use. ``measured_s``: the wall time the figures cover."""

    source: str  # "nvml" | "slurm"
    gpus: int  # GPUs measured
    mean_util_pct: float
    max_mem_bytes: int | None  # None: the source records no memory
    idle_gpu_s: float  # GPU-seconds below the idle threshold
    measured_s: float
    samples: int = 0  # rounds of readings (0: the source only gives aggregates)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "gpus": self.gpus,
            "mean_util_pct": self.mean_util_pct,
            "max_mem_bytes": self.max_mem_bytes,
            "idle_gpu_s": self.idle_gpu_s,
            "measured_s": self.measured_s,
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, data: Any) -> GpuUse | None:
        """The record a supervisor wrote; None for a missing or malformed one (an older
        supervisor, a truncated file): not measured."""
        if not isinstance(data, dict):
            return None
        try:
            mem = data.get("max_mem_bytes")
            return cls(
                source=str(data["source"]),
                gpus=int(data["gpus"]),
                mean_util_pct=float(data["mean_util_pct"]),
                max_mem_bytes=None if mem is None else int(mem),
                idle_gpu_s=float(data["idle_gpu_s"]),
                measured_s=float(data["measured_s"]),
                samples=int(data.get("samples") or 0),
            )
        except (KeyError, TypeError, ValueError):
            return None


def low_use_hint(mean_util_pct: float | None, gpus: int) -> str | None:
    """The hint shown for a finished job that left most of its GPUs idle; None when it
    used them well or nobody measured."""
    if mean_util_pct is None or mean_util_pct >= LOW_USE_PCT or gpus <= 0:
        return None
    what = "its GPU" if gpus == 1 else f"its {gpus} GPUs"
    advice = (
        "check that the data loader keeps the GPU busy (more workers, faster storage)"
        if gpus == 1
        else "consider asking for fewer GPUs, and check that the data "
        "loader keeps them busy (more workers, faster storage)"
    )
    return f"this job used {mean_util_pct:.0f}% of {what} on average: {advice}"


def describe_gpu_use(use: dict[str, Any] | None) -> str:
    """The job resource's ``gpu_use`` in one line for people: ``14% mean utilisation
    over 4 GPUs, max 21.3 GiB memory, 0.28 idle GPU-hours (measured by NVML)`` or
    ``not measured: <why>``."""
    if use is None:
        return NOT_MEASURED + ": the job has not run"
    if not use.get("measured"):
        return f"{NOT_MEASURED}: {use.get('note') or 'no figures'}"
    mem = use.get("max_mem_bytes")
    mem_text = f", max {mem / (1 << 30):.1f} GiB memory" if mem is not None else ""
    n = int(use.get("gpus_measured") or 0)
    return (
        f"{float(use['mean_util_pct']):.0f}% mean utilisation over {n} "
        f"GPU{'s' * (n != 1)}{mem_text}, {float(use['idle_gpu_hours']):.2f} idle "
        f"GPU-hours (measured by {'NVML' if use.get('source') == 'nvml' else 'Slurm'})"
    )


class GpuUseAggregator:
    """Folds rounds of readings into a :class:`GpuUse`. A round at time ``t`` stands for
    the time since the previous round (the first: since ``start_s``), so irregular
    intervals weigh correctly."""

    def __init__(
        self,
        start_s: float,
        *,
        idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT,
        source: str = "nvml",
    ) -> None:
        self._last_s = start_s
        self._idle_below = idle_below_pct
        self._source = source
        self._util_gpu_s = 0.0  # sum of util% x seconds over every GPU
        self._gpu_s = 0.0
        self._idle_gpu_s = 0.0
        self._measured_s = 0.0
        self._max_mem: int | None = None
        self._gpus: set[int] = set()
        self._rounds = 0

    def add(self, at_s: float, samples: Sequence[GpuSample]) -> None:
        dt = max(0.0, at_s - self._last_s)
        self._last_s = max(self._last_s, at_s)
        if not samples:
            return  # nothing read this round: the time stays unmeasured
        self._rounds += 1
        self._measured_s += dt
        for s in samples:
            util = min(100.0, max(0.0, s.util_pct))
            self._gpus.add(s.index)
            self._util_gpu_s += util * dt
            self._gpu_s += dt
            if util < self._idle_below:
                self._idle_gpu_s += dt
            self._max_mem = max(self._max_mem or 0, s.mem_used_bytes)

    def result(self) -> GpuUse | None:
        if self._rounds == 0 or self._gpu_s <= 0.0:
            return None
        return GpuUse(
            source=self._source,
            gpus=len(self._gpus),
            mean_util_pct=round(self._util_gpu_s / self._gpu_s, 2),
            max_mem_bytes=self._max_mem,
            idle_gpu_s=round(self._idle_gpu_s, 3),
            measured_s=round(self._measured_s, 3),
            samples=self._rounds,
        )


class GpuSampler(Protocol):
    """Reads the GPUs with the given indices; an empty list when none can be read."""

    def sample(self, indices: Sequence[int]) -> list[GpuSample]: ...

    def close(self) -> None: ...


class NvmlSampler:
    """Live readings through NVML (``nvidia-ml-py``). Build it with :meth:`open`."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._count = int(nvml.nvmlDeviceGetCount())

    @classmethod
    def open(cls) -> tuple[NvmlSampler | None, str | None]:
        """The sampler, or None and why GPU use is not measured here (no ``pynvml``,
        no driver, no GPU)."""
        try:
            import pynvml
        except ImportError:
            return None, "NVML is not installed (pip install 'rechenwerk[gpu]')"
        try:
            pynvml.nvmlInit()
            sampler = cls(pynvml)
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            return None, f"NVML is not usable here: {exc}"
        if sampler._count == 0:
            sampler.close()
            return None, "NVML sees no GPU on this machine"
        return sampler, None

    def sample(self, indices: Sequence[int]) -> list[GpuSample]:
        out: list[GpuSample] = []
        for index in indices:
            if not 0 <= index < self._count:
                continue  # an emulated GPU with no device behind it
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # a GPU fallen off the bus: this reading is lost, not the job
                continue
            out.append(GpuSample(index, float(util.gpu), int(mem.used)))
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:  # shutting down a library that failed: nothing to keep
            return


@dataclass(frozen=True, slots=True)
class RecordedRound:
    """One round of a recorded log: seconds since the log began, and the readings."""

    at_s: float
    samples: tuple[GpuSample, ...]


def parse_nvidia_smi_csv(text: str) -> list[RecordedRound]:
    """Rounds from ``nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used
    --format=csv -l N`` output (``2026/11/30 14:02:11.123, 0, 87 %, 30512 MiB``)."""
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    if not rows:
        return []
    header = [h.strip().split(" ")[0] for h in rows[0]]
    try:
        i_ts, i_idx = header.index("timestamp"), header.index("index")
        i_util, i_mem = header.index("utilization.gpu"), header.index("memory.used")
    except ValueError as exc:
        raise ValueError(f"not an nvidia-smi --query-gpu CSV log: {exc}") from None
    by_time: dict[datetime, list[GpuSample]] = {}
    for row in rows[1:]:
        if not row:
            continue
        at = datetime.strptime(row[i_ts].strip(), "%Y/%m/%d %H:%M:%S.%f")
        # nvidia-smi logs each GPU a few ms apart: one round per second of the log
        at = at.replace(microsecond=0)
        util = float(row[i_util].strip().removesuffix("%").strip())
        mem_mib = float(row[i_mem].strip().removesuffix("MiB").strip())
        by_time.setdefault(at, []).append(
            GpuSample(int(row[i_idx]), util, int(mem_mib * 1024 * 1024))
        )
    if not by_time:
        return []
    first = min(by_time)
    return [
        RecordedRound((at - first).total_seconds(), tuple(s)) for at, s in sorted(by_time.items())
    ]


class ReplaySampler:
    """Plays recorded rounds back, one per :meth:`sample` call (tests, benchmarks)."""

    def __init__(self, rounds: Iterable[RecordedRound]) -> None:
        self._rounds: Iterator[RecordedRound] = iter(rounds)

    def sample(self, indices: Sequence[int]) -> list[GpuSample]:
        rnd = next(self._rounds, None)
        if rnd is None:
            return []
        wanted = set(indices)
        return [s for s in rnd.samples if s.index in wanted]

    def close(self) -> None:
        return None


def aggregate_recorded(
    rounds: Sequence[RecordedRound],
    indices: Sequence[int],
    *,
    idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT,
) -> GpuUse | None:
    """A recorded log through the same sampler/aggregator path as a live job, with the
    log's own timestamps as the clock."""
    if not rounds:
        return None
    sampler = ReplaySampler(rounds)
    agg = GpuUseAggregator(rounds[0].at_s - _first_interval(rounds), idle_below_pct=idle_below_pct)
    for rnd in rounds:
        agg.add(rnd.at_s, sampler.sample(indices))
    return agg.result()


def _first_interval(rounds: Sequence[RecordedRound]) -> float:
    return rounds[1].at_s - rounds[0].at_s if len(rounds) > 1 else 1.0


class GpuMonitor:
    """Samples a job's GPUs every ``interval_s`` on a thread of its own until
    :meth:`stop`, which returns the aggregate. The clock is injectable for tests."""

    def __init__(
        self,
        sampler: GpuSampler,
        indices: Sequence[int],
        *,
        interval_s: float,
        idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sampler = sampler
        self._indices = tuple(sorted(set(indices)))
        self._interval = interval_s
        self._clock = clock
        self._agg = GpuUseAggregator(clock(), idle_below_pct=idle_below_pct)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-monitor", daemon=True)

    def start(self) -> GpuMonitor:
        self._thread.start()
        return self

    def sample_once(self) -> None:
        self._agg.add(self._clock(), self._sampler.sample(self._indices))

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.sample_once()

    def stop(self) -> GpuUse | None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + 5.0)
        self._sampler.close()
        return self._agg.result()


def visible_indices(task_envs: Iterable[dict[str, Any]]) -> list[int]:
    """The distinct GPU indices of a job's node processes (``CUDA_VISIBLE_DEVICES``);
    on one machine emulating several nodes they name the same devices."""
    out: set[int] = set()
    for env in task_envs:
        for part in str(env.get("CUDA_VISIBLE_DEVICES") or "").split(","):
            if part.strip().isdigit():
                out.add(int(part))
    return sorted(out)

"""A Slurm job's GPU use from its steps' TRES usage (``gres/gpuutil``, ``gres/gpumem``).

Slurm records them where the cluster tracks them: ``AccountingStorageTRES`` lists
``gres/gpuutil`` and ``gres/gpumem`` (slurm.conf(5) of recent releases: setting
``gres/gpu`` sets both) and the nodes' GPU plugin reads NVML (``gres.conf``
``AutoDetect=nvml``);
``jobacct_gather`` then samples them every ``JobAcctGatherFrequency`` with a step's other
usage. They appear per step in ``sacct``'s ``TRESUsageInAve`` / ``TRESUsageInMax``
(average over the step's tasks / the most of any task) and, while a step runs, in
``sstat``'s; ``sacct --json`` and slurmdbd's REST API give the same figures as lists of
``{type, name, count}`` under ``steps[].tres.requested.average`` / ``.max``. Read per
task, ``gpuutil`` adds up the utilisation in percent of the task's GPUs and ``gpumem``
the memory it holds on them (text: K/M/G/T suffix, 1024-based; JSON: bytes). That
reading is checked against data in the documented format only: the development
cluster's GPUs are fake and record no usage.

Everything here works on those TRES strings (the JSON lists are turned into the same
form), so it does not depend on one API version's JSON. What it yields is coarser than
the local executor's sampling: the mean utilisation per GPU is the step's average
``gpuutil`` divided by the GPUs of one task, weighed by each step's GPU-time; idle time
is estimated per step (a step whose mean is below the threshold counts all its
GPU-time idle). A cluster that records no ``gres/gpuutil`` gives None: not measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rechenwerk.execution.gpu_use import DEFAULT_IDLE_BELOW_PCT, GpuUse
from rechenwerk.execution.slurm.types import SlurmJob

GPUUTIL = "gres/gpuutil"
GPUMEM = "gres/gpumem"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_QUANTITY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)B?\s*$", re.IGNORECASE)
# Steps that run no user command of their own on the GPUs (the batch shell around srun
# steps, the extern step holding the allocation).
_WRAPPER_STEPS = ("batch", "extern")


@dataclass(frozen=True, slots=True)
class StepTres:
    """One step's accounting: its id (``123.0``, ``123.batch``), run time, tasks, GPUs
    (``gres/gpu`` of its AllocTRES) and usage strings (``TRESUsageInAve`` / ``Max``)."""

    step_id: str
    elapsed_s: float
    tasks: int
    gpus: int
    usage_ave: str
    usage_max: str

    @property
    def wrapper(self) -> bool:
        return self.step_id.rsplit(".", 1)[-1] in _WRAPPER_STEPS


def parse_tres(tres: str | None) -> dict[str, str]:
    """``"cpu=00:01:02,gres/gpumem=21.5G,gres/gpuutil=37"`` -> {name: value}."""
    out: dict[str, str] = {}
    for item in (tres or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep and name:
            out[name.lower()] = value.strip()
    return out


def quantity_bytes(value: str) -> int | None:
    """``"1234"`` (bytes), ``"512K"``, ``"21.50G"`` -> bytes; None when not a quantity."""
    m = _QUANTITY_RE.match(value)
    if m is None:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def gpu_count(alloc_tres: str) -> int:
    """The GPUs of an AllocTRES string (``gres/gpu=4``; typed ``gres/gpu:a100`` only
    when no plain count is there)."""
    tres = parse_tres(alloc_tres)
    plain = _number(tres.get("gres/gpu"))
    if plain is not None:
        return int(plain)
    typed = [_number(v) for k, v in tres.items() if k.startswith("gres/gpu:")]
    return int(sum(v for v in typed if v is not None))


def gpu_use_from_steps(
    steps: Iterable[StepTres], *, idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT
) -> GpuUse | None:
    """The job's GPU use from its steps' usage; None when no step recorded ``gpuutil``."""
    measured = [
        s
        for s in steps
        if s.gpus > 0
        and s.elapsed_s > 0
        and _number(parse_tres(s.usage_ave).get(GPUUTIL)) is not None
    ]
    # srun steps run the work; the batch step is then only the shell that waits for them
    work = [s for s in measured if not s.wrapper] or measured
    if not work:
        return None
    gpu_s = util_gpu_s = idle_gpu_s = 0.0
    max_mem: int | None = None
    gpus = 0
    for s in work:
        per_task = max(1.0, s.gpus / max(1, s.tasks))
        summed = _number(parse_tres(s.usage_ave).get(GPUUTIL)) or 0.0
        util = min(100.0, max(0.0, summed / per_task))
        weight = s.gpus * s.elapsed_s
        gpu_s += weight
        util_gpu_s += util * weight
        if util < idle_below_pct:
            idle_gpu_s += weight
        mem_text = parse_tres(s.usage_max).get(GPUMEM)
        mem = quantity_bytes(mem_text) if mem_text is not None else None
        if mem is not None:
            # the most one task held, over its GPUs: per GPU, the even share of it
            max_mem = max(max_mem or 0, int(mem / per_task))
        gpus = max(gpus, s.gpus)
    return GpuUse(
        source="slurm",
        gpus=gpus,
        mean_util_pct=round(util_gpu_s / gpu_s, 2),
        max_mem_bytes=max_mem,
        idle_gpu_s=round(idle_gpu_s, 3),
        measured_s=round(max(s.elapsed_s for s in work), 3),
        samples=0,
    )


def steps_from_parsable(text: str) -> dict[str, list[StepTres]]:
    """Steps by job id from ``sacct --parsable2 --noheader
    --format=JobIDRaw,ElapsedRaw,NTasks,AllocTRES,TRESUsageInAve,TRESUsageInMax``
    (the allocation's own line, without a step suffix, is skipped)."""
    out: dict[str, list[StepTres]] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(PARSABLE_FIELDS):
            continue
        step_id, elapsed, tasks, alloc, ave, mx = parts[: len(PARSABLE_FIELDS)]
        job_id, dot, _ = step_id.partition(".")
        if not dot:
            continue
        out.setdefault(job_id, []).append(
            StepTres(
                step_id=step_id,
                elapsed_s=_number(elapsed) or 0.0,
                tasks=int(_number(tasks) or 1),
                gpus=gpu_count(alloc),
                usage_ave=ave,
                usage_max=mx,
            )
        )
    return out


PARSABLE_FIELDS = (
    "JobIDRaw",
    "ElapsedRaw",
    "NTasks",
    "AllocTRES",
    "TRESUsageInAve",
    "TRESUsageInMax",
)


def tres_list_string(items: Any) -> str:
    """A JSON TRES list (``[{"type": "gres", "name": "gpuutil", "count": 37}, ...]``)
    as the text form (``gres/gpuutil=37``); counts stay raw (bytes for memory)."""
    out: list[str] = []
    for t in items or []:
        if not isinstance(t, Mapping) or t.get("count") is None:
            continue
        name = f"{t.get('type')}/{t['name']}" if t.get("name") else str(t.get("type"))
        out.append(f"{name}={t['count']}")
    return ",".join(out)


def _step_name(step: Mapping[str, Any], job_id: str) -> str:
    ident = step.get("step")
    if isinstance(ident, Mapping):  # 0.0.38/39: {"job_id": 21, "id": "batch", ...}
        name = ident.get("id") if ident.get("id") is not None else ident.get("name")
    else:
        name = ident
    name = str(name if name is not None else "")
    return name if "." in name else f"{job_id}.{name}"


def steps_from_json(doc: Mapping[str, Any]) -> dict[str, list[StepTres]]:
    """Steps by job id from a ``sacct --json`` / slurmdbd ``/jobs`` document."""
    out: dict[str, list[StepTres]] = {}
    for job in doc.get("jobs") or []:
        if not isinstance(job, Mapping):
            continue
        job_id = str(job.get("job_id", ""))
        for step in job.get("steps") or []:
            if not isinstance(step, Mapping):
                continue
            tres = step.get("tres") or {}
            requested = tres.get("requested") or {}
            tasks = (step.get("tasks") or {}).get("count")
            out.setdefault(job_id, []).append(
                StepTres(
                    step_id=_step_name(step, job_id),
                    elapsed_s=float(_elapsed(step.get("time"))),
                    tasks=int(tasks) if isinstance(tasks, int) and tasks > 0 else 1,
                    gpus=gpu_count(tres_list_string(tres.get("allocated"))),
                    usage_ave=tres_list_string(requested.get("average")),
                    usage_max=tres_list_string(requested.get("max")),
                )
            )
    return out


def _elapsed(time: Any) -> float:
    value = time.get("elapsed") if isinstance(time, Mapping) else None
    if isinstance(value, Mapping):  # newer APIs: {"set": true, "number": 8}
        value = value.get("number")
    return float(value) if isinstance(value, int | float) else 0.0


def usage_by_job(
    steps: Mapping[str, Sequence[StepTres]], *, idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT
) -> dict[str, GpuUse]:
    """Each job's GPU use where its steps recorded some."""
    out: dict[str, GpuUse] = {}
    for job_id, job_steps in steps.items():
        use = gpu_use_from_steps(job_steps, idle_below_pct=idle_below_pct)
        if use is not None:
            out[job_id] = use
    return out


def with_gpu_use(
    jobs: Sequence[SlurmJob],
    steps: Mapping[str, Sequence[StepTres]],
    *,
    idle_below_pct: float = DEFAULT_IDLE_BELOW_PCT,
) -> list[SlurmJob]:
    """``jobs`` with the GPU use of those that ended and whose steps recorded some."""
    usage = usage_by_job(steps, idle_below_pct=idle_below_pct)
    return [
        replace(j, gpu_use=usage[j.job_id]) if j.end_time is not None and j.job_id in usage else j
        for j in jobs
    ]

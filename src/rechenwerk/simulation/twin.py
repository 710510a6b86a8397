"""The digital twin against real Slurm: a trace slice made replayable on a small cluster,
and the simulator configured from a slurm.conf (``rechenwerk twin validate``).

``prepare_slice`` compresses time by ``scale`` (submit offsets and run times divided by
it, rounded to whole seconds as Slurm keeps times), caps run times, and clips GPU counts
to the cluster: up to one node's GPUs on one node, more as whole nodes (Slurm's
``--gres`` is per node). Each job asks ``cpus_per_gpu`` CPUs per GPU, so CPUs never bind
before GPUs, and a time limit in whole minutes (``sbatch -t`` has minute resolution),
which the simulator gets as the walltime estimate.

``simulate`` replays the slice twice: ``event`` (the simulator as it is, with the
slurm.conf's weights and intervals) and ``slurm`` (plus the Slurm behaviours in
``SlurmTiming``), so the effect of modelling them shows in the figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.engine import run_simulation
from rechenwerk.simulation.fidelity import JobTimes
from rechenwerk.simulation.slurm_conf import SlurmConf
from rechenwerk.simulation.traces.base import TraceJob

PROJECT = "twin"  # one account: fair share is the same for every job on both sides


@dataclass(frozen=True, slots=True)
class TwinJob:
    job_id: str
    submit_s: int  # from the replay's start
    duration_s: int  # what the job sleeps
    gpus: int
    nodes: int
    cpus_per_node: int
    time_limit_min: int


@dataclass(frozen=True, slots=True)
class SlurmTiming:
    """Slurm behaviours the plain event-driven simulator lacks.

    ``bf_phase_s``: the backfill thread runs on its own timer, every bf_interval from its
    last cycle, not when something changed: passes only at ``bf_phase_s + k*bf_interval``
    (the phase of the real controller's timer, from ``sdiag``'s "Last cycle when").
    ``release_delay_s``: the GPUs of an ended job go to the next job only this much later
    (the batch script starts a fraction of a second after its allocation, its end is
    handled by a later scheduling pass, and every time is a whole second: measured
    here as one second per job generation). ``job_overhead_s``: a batch job lasts longer
    than its ``sleep`` as sacct records it; added to every run time.
    """

    bf_phase_s: float | None = None
    bf_resolution_s: float | None = None
    bf_grid_origin_s: float = 0.0
    sched_period_s: float | None = 1.0
    sched_phase_s: float = 0.5
    release_delay_s: float = 0.0
    job_overhead_s: float = 0.1
    whole_seconds: bool = True


def slurm_timing(
    conf: SlurmConf,
    t0: float,
    bf_phase_s: float | None,
    *,
    job_overhead_s: float = 0.1,
    with_resolution: bool = True,
) -> SlurmTiming:
    """The Slurm behaviours for a replay that began at epoch second ``t0``: the backfill
    timer's phase (``sdiag``), bf_resolution from the slurm.conf on Slurm's epoch grid
    (points at -(t0 mod resolution) + k * resolution on the replay's axis)."""
    res = conf.sched["bf_resolution"]
    return SlurmTiming(
        bf_phase_s=bf_phase_s,
        bf_resolution_s=res if with_resolution else None,
        bf_grid_origin_s=-(t0 % res) if with_resolution else 0.0,
        job_overhead_s=job_overhead_s,
    )


def prepare_slice(
    jobs: Sequence[TraceJob],
    *,
    start: int,
    count: int,
    scale: float,
    max_duration_s: int,
    gpus_per_node: int,
    nodes: int,
    cpus_per_gpu: int,
    limit_margin_s: int = 10,
) -> list[TwinJob]:
    if not (scale > 0 and math.isfinite(scale)):
        raise InvalidInput("--scale must be a number > 0", field="scale")
    if count < 1 or start < 0:
        raise InvalidInput("--jobs must be >= 1 and --skip >= 0", field="jobs")
    if max_duration_s < 1:
        raise InvalidInput("--max-duration must be >= 1 second", field="max_duration")
    picked = list(jobs[start : start + count])
    if not picked:
        raise InvalidInput(
            f"the trace has only {len(jobs)} jobs; nothing after --skip {start}", field="skip"
        )
    t_first = picked[0].submit_time
    out: list[TwinJob] = []
    for j in picked:
        g = min(j.gpus, gpus_per_node * nodes)
        n = 1 if g <= gpus_per_node else math.ceil(g / gpus_per_node)
        if n > 1:
            g = n * gpus_per_node
        dur = max(1, min(round(j.duration_s / scale), max_duration_s))
        out.append(
            TwinJob(
                job_id=j.job_id,
                submit_s=round((j.submit_time - t_first) / scale),
                duration_s=dur,
                gpus=g,
                nodes=n,
                cpus_per_node=cpus_per_gpu * (g // n),
                time_limit_min=math.ceil((dur + limit_margin_s) / 60),
            )
        )
    return out


def trace_of(jobs: Sequence[TwinJob], overhead_s: float = 0.0) -> list[TraceJob]:
    return [
        TraceJob(
            job_id=j.job_id,
            submit_time=float(j.submit_s),
            duration_s=j.duration_s + overhead_s,
            gpus=j.gpus,
            project=PROJECT,
            walltime_s=j.time_limit_min * 60.0,
            gpus_per_node=j.gpus // j.nodes,
        )
        for j in jobs
    ]


def simulate(
    jobs: Sequence[TwinJob], conf: SlurmConf, timing: SlurmTiming | None = None
) -> dict[str, JobTimes]:
    """Per job id its simulated times, with the policy and parameters of ``conf``."""
    params = conf.params()
    t = timing or SlurmTiming(sched_period_s=None, job_overhead_s=0.0, whole_seconds=False)
    params = replace(
        params,
        bf_phase_s=t.bf_phase_s,
        bf_resolution_s=t.bf_resolution_s,
        bf_grid_origin_s=t.bf_grid_origin_s,
    )
    res = run_simulation(
        trace_of(jobs, t.job_overhead_s),
        conf.cluster(),
        conf.policy,
        params=params,
        shares={PROJECT: 1.0},
        release_delay_s=t.release_delay_s,
        sched_period_s=t.sched_period_s,
        sched_phase_s=t.sched_phase_s,
    )
    rnd = math.floor if t.whole_seconds else float  # Slurm records time(NULL): floor
    return {
        o.job_id: JobTimes(o.submit_time, rnd(o.first_start_time), rnd(o.end_time), o.gpus)
        for o in res.outcomes
    }

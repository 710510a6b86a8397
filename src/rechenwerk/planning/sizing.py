"""Centre sizing: how many GPUs a demand portfolio needs to meet a service target.

A demand portfolio (YAML, see ``examples/demand.yaml``) lists planned trainings per year
(size, GPUs per run, runs per year) and a background workload (a trace file in native or
Philly format, or the simulation generator). For one GPU type, the number of nodes is
searched with the trace-driven simulator (``rechenwerk.simulation.engine.run_simulation``,
the same scheduling code as production):

1. scan ``search.points`` sizes, geometrically spaced between the smallest size that can
   run the largest job and ``search.max_gpus``;
2. bisect on whole nodes between the largest scanned size that misses the target and the
   smallest that meets it, until they are ``search.resolution`` apart (default 2%).

With ``seeds: N`` (or ``--seeds N``) every size is simulated on N workloads (the seed and
a generated background's seed advanced by 0..N-1: other training phases, fractional runs
and background jobs) and the target is judged on the mean; the curve reports each
size's min-max range, so a funder sees how much of the answer is chance.

Targets: p90 wait of all jobs <= ``p90_wait_days``, p90 wait of the planned trainings <=
``training_p90_wait_days`` (default: the same value), and/or utilisation <=
``max_utilisation`` (busy GPU-time / (GPUs x horizon) inside the simulated horizon). A size
whose offered load (GPU-time the jobs would need inside the horizon, runs clipped at its
end, / capacity) exceeds 100% cannot meet any target and is reported as overloaded
without simulating it. The planned trainings
become jobs whose run time comes from the training estimator; ``per_year`` x horizon / 365
runs are spread evenly over the horizon with a seeded phase (a fractional run is drawn).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rechenwerk.errors import InvalidInput, invalid_input, issues_from_validation
from rechenwerk.planning.energy import EnergyParams, yearly_centre_cost
from rechenwerk.planning.hardware import GPUSpec, get_gpu
from rechenwerk.planning.schemas import CostInputs
from rechenwerk.planning.training import MAX_GPUS, estimate_training

if TYPE_CHECKING:
    from rechenwerk.simulation.traces.base import TraceJob

DAY_S = 86_400.0
# Sizes whose offered load exceeds this are reported as overloaded without simulating.
MAX_SIMULATED_LOAD = 1.0
# Bounds that keep one sizing run within minutes (and the API safe from huge requests).
MAX_SIZING_GPUS = 200_000
MAX_BACKGROUND_GPU_DAYS = 500_000.0  # generated background: total_gpus x load x horizon
MAX_JOBS = 300_000
Progress = Callable[[int, int, str], None]


class TrainingDemand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    params: float
    tokens: float | None = None
    active_params: float | None = None
    gpus: int = Field(..., description="GPUs per run")
    per_year: float = Field(..., gt=0, le=10_000, description="runs per year")
    project: str = "planned"
    mfu: float | None = None
    efficiency: float | None = None


class GeneratedBackground(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 1
    total_gpus: int = Field(..., gt=0, le=MAX_GPUS,
                            description="size of the system the load is relative to")
    load: float = Field(default=0.6, gt=0, le=2.0,
                        description="offered GPU-time / (total_gpus x horizon)")
    large_fraction: float = Field(default=0.3, ge=0, le=1)
    n_projects: int = Field(default=6, ge=1, le=1000)


class Background(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace: str | None = Field(default=None, description="trace file (relative to the YAML file)")
    format: str = Field(default="native", description="native or philly")
    start_day: float = Field(default=0.0, ge=0, le=3650,
                             description="skip this many days at the start of the trace")
    generate: GeneratedBackground | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Background:
        if (self.trace is None) == (self.generate is None):
            raise ValueError("give exactly one of 'trace' (a file) or 'generate'")
        return self


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p90_wait_days: float | None = Field(default=None, gt=0, le=365, description="all jobs")
    training_p90_wait_days: float | None = Field(
        None, gt=0, le=365, description="planned trainings; default: p90_wait_days")
    max_utilisation: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _some_target(self) -> Target:
        if self.p90_wait_days is None and self.max_utilisation is None:
            raise ValueError("give p90_wait_days and/or max_utilisation")
        return self

    @property
    def training_wait_days(self) -> float | None:
        return (self.training_p90_wait_days if self.training_p90_wait_days is not None
                else self.p90_wait_days)

    def description(self) -> str:
        parts = []
        if self.p90_wait_days is not None:
            parts.append(f"p90 wait <= {self.p90_wait_days:g} days")
        if self.training_wait_days is not None:
            parts.append(f"planned trainings p90 wait <= {self.training_wait_days:g} days")
        if self.max_utilisation is not None:
            parts.append(f"utilisation <= {self.max_utilisation:.0%}")
        return " and ".join(parts)


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_gpus: int = Field(default=8, ge=1, le=MAX_SIZING_GPUS)
    max_gpus: int = Field(default=8192, ge=1, le=MAX_SIZING_GPUS)
    points: int = Field(default=7, ge=2, le=40)
    resolution: float = Field(default=0.02, gt=0, le=0.5, description="relative bisection stop")

    @model_validator(mode="after")
    def _ordered(self) -> Search:
        if self.min_gpus > self.max_gpus:
            raise ValueError("min_gpus must not exceed max_gpus")
        return self


class DemandPortfolio(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "demand portfolio"
    gpu: str
    gpus_per_node: int = Field(default=8, ge=1, le=64)
    horizon_days: float = Field(default=90.0, gt=0, le=3650)
    policy: str = "multifactor+easy-backfill"
    seed: int = 0
    seeds: int = Field(default=1, ge=1, le=20,
                       description="workload replicates per size; the target uses the mean")
    target: Target
    search: Search = Field(default_factory=Search)
    trainings: list[TrainingDemand] = Field(default_factory=list)
    background: Background | None = None
    costs: CostInputs = Field(default_factory=CostInputs)
    base_dir: str = Field(default=".", exclude=True, description="set by load_demand")


def parse_demand(
    data: Any, *, base_dir: Path | None = None, origin: str = "demand"
) -> DemandPortfolio:
    try:
        portfolio = DemandPortfolio.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(
            issues_from_validation(exc), prefix=f"{origin}: ", count_more=True,
            hint="see examples/demand.yaml and docs/planning.md for the format",
        ) from exc
    if not portfolio.trainings and portfolio.background is None:
        raise InvalidInput(f"{origin}: the portfolio has neither trainings nor a background",
                           field="trainings", hint="add planned trainings or a background")
    if base_dir is not None:
        portfolio.base_dir = str(base_dir)
    return portfolio


def load_demand(path: Path) -> DemandPortfolio:
    if not path.is_file():
        raise InvalidInput(f"demand file {path} does not exist", field="demand",
                           hint="give a YAML file such as examples/demand.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}", field="demand") from exc
    return parse_demand(data, base_dir=path.parent, origin=str(path))


@dataclass(frozen=True, slots=True)
class CurvePoint:
    gpus: int
    nodes: int
    p90_wait_days: float | None
    training_p90_wait_days: float | None
    utilisation: float | None
    meets_target: bool
    jobs: int
    offered_load: float  # job GPU-time inside the horizon / (GPUs x horizon)
    simulated_seconds: float
    note: str = ""
    replicates: int = 1
    # min and max over the replicates (None with one replicate or when not simulated)
    p90_wait_days_range: tuple[float, float] | None = None
    training_p90_wait_days_range: tuple[float, float] | None = None
    utilisation_range: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainingJobs:
    name: str
    runs_in_horizon: int
    gpus: int
    gpu_hours_per_run: float
    days_per_run: float


@dataclass(slots=True)
class SizingResult:
    portfolio: DemandPortfolio
    gpu: GPUSpec
    curve: list[CurvePoint]
    chosen: CurvePoint | None
    cost: dict[str, float] | None
    trainings: list[TrainingJobs]
    background_jobs: int
    demand_gpu_hours_per_year: float
    warnings: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        p = self.portfolio
        return {
            "name": p.name,
            "gpu": self.gpu.name,
            "gpus_per_node": p.gpus_per_node,
            "policy": p.policy,
            "horizon_days": p.horizon_days,
            "target": {**p.target.model_dump(), "description": p.target.description()},
            "search": p.search.model_dump(),
            "seeds": p.seeds,
            "demand": {
                "trainings": [asdict(t) for t in self.trainings],
                "background_jobs": self.background_jobs,
                "gpu_hours_per_year": round(self.demand_gpu_hours_per_year, 0),
                "lower_bound_gpus": math.ceil(self.demand_gpu_hours_per_year / 8760.0),
            },
            "curve": [c.to_dict() for c in self.curve],
            "chosen": None if self.chosen is None else self.chosen.to_dict(),
            "cost": self.cost,
            "warnings": list(self.warnings),
            "simulations": len(self.curve),
            "wall_seconds": round(self.wall_seconds, 2),
            "units": {
                "p90_wait_days": "days", "utilisation": "fraction of GPU-time",
                "gpu_hours_per_year": "GPU-hours/year", "capex_eur": "EUR",
                "opex_eur_per_year": "EUR/year", "energy_mwh_per_year": "MWh/year",
                "co2_t_per_year": "t CO2e/year",
            },
        }


def _energy_params(p: DemandPortfolio) -> EnergyParams:
    params = p.costs.energy_params()
    params.validate()
    return params


def build_workload(
    p: DemandPortfolio, gpu: GPUSpec, warnings: list[str],
) -> tuple[list[TraceJob], list[TrainingJobs], int, float]:
    """Trace jobs of the horizon: planned trainings (seeded placement) + background."""
    from rechenwerk.simulation.traces.base import TraceJob

    horizon_s = p.horizon_days * DAY_S
    rng = random.Random(p.seed)
    jobs: list[TraceJob] = []
    summaries: list[TrainingJobs] = []
    gpu_hours_year = 0.0
    for i, t in enumerate(p.trainings):
        try:
            est = estimate_training(params=t.params, tokens=t.tokens,
                                    active_params=t.active_params, gpu=gpu.name, gpus=t.gpus,
                                    mfu=t.mfu, efficiency=t.efficiency)
        except InvalidInput as exc:
            raise InvalidInput(f"trainings[{i}] ({t.name}): {exc.message}",
                               field=f"trainings.{i}.{exc.field or ''}".rstrip("."),
                               hint=exc.hint) from exc
        if not est.memory.feasible:
            warnings.append(f"training {t.name}: {est.memory.message}")
        duration = est.wall_clock_days * DAY_S
        # Expected runs in the horizon; the fractional part is drawn with the seed.
        expected = t.per_year * p.horizon_days / 365.0
        runs = math.floor(expected) + (1 if rng.random() < expected - math.floor(expected)
                                       else 0)
        spacing = horizon_s / max(runs, 1)
        phase = rng.random() * spacing
        for k in range(runs):
            jobs.append(TraceJob(
                job_id=f"plan-{i}-{k}", submit_time=phase + k * spacing, duration_s=duration,
                gpus=t.gpus, project=t.project, walltime_s=duration * 1.2,
                # whole nodes when the run fills them; otherwise the scheduler picks the shape
                gpus_per_node=p.gpus_per_node if t.gpus % p.gpus_per_node == 0 else None,
            ))
        summaries.append(TrainingJobs(t.name, runs, t.gpus, round(est.gpu_hours, 0),
                                      round(est.wall_clock_days, 2)))
        gpu_hours_year += est.gpu_hours * t.per_year
    background = _background_jobs(p, horizon_s)
    bg_gpu_s = sum(j.gpus * j.duration_s for j in background)
    gpu_hours_year += bg_gpu_s / 3600.0 * 365.0 / p.horizon_days
    jobs.extend(background)
    jobs.sort(key=lambda j: j.submit_time)
    return jobs, summaries, len(background), gpu_hours_year


def _background_jobs(p: DemandPortfolio, horizon_s: float) -> list[TraceJob]:
    bg = p.background
    if bg is None:
        return []
    if bg.generate is not None:
        from rechenwerk.simulation.traces.generator import generate_llm_workload

        g = bg.generate
        gpu_days = g.total_gpus * g.load * p.horizon_days
        if gpu_days > MAX_BACKGROUND_GPU_DAYS:
            raise InvalidInput(
                f"generated background of {gpu_days:,.0f} GPU-days is too large to simulate "
                "repeatedly", field="background.generate",
                hint=f"keep total_gpus x load x horizon_days <= {MAX_BACKGROUND_GPU_DAYS:,.0f} "
                "(shorten horizon_days)")
        trace = generate_llm_workload(seed=g.seed, days=p.horizon_days, total_gpus=g.total_gpus,
                                      gpus_per_node=p.gpus_per_node, load=g.load,
                                      large_fraction=g.large_fraction, n_projects=g.n_projects)
    else:
        from rechenwerk.simulation.traces import read_trace

        path = Path(bg.trace or "")
        if not path.is_absolute():
            path = Path(p.base_dir) / path
        trace = read_trace(path, bg.format, skip_invalid=True)
    if not trace.jobs:
        return []
    t0 = trace.jobs[0].submit_time + bg.start_day * DAY_S
    out = []
    for j in trace.jobs:
        if j.submit_time < t0:
            continue
        if j.submit_time - t0 >= horizon_s:
            break
        # One GPU type per sized centre: the background runs on it, whatever it was traced on.
        out.append(replace(j, submit_time=j.submit_time - t0, gpu_type=None))
    return out


def _utilisation(times: Sequence[float], busy: Sequence[int], gpus: int, end: float) -> float:
    """Busy GPU-time / (GPUs x [0, end]) of a step function."""
    total = 0.0
    for i, t in enumerate(times):
        if t >= end:
            break
        nxt = times[i + 1] if i + 1 < len(times) else end
        total += busy[i] * (min(nxt, end) - t)
    return total / (gpus * end) if end > 0 else 0.0


def _simulate(p: DemandPortfolio, gpu: GPUSpec, jobs: Sequence[TraceJob], nodes: int,
              offered_gpu_s: float) -> CurvePoint:
    import numpy as np

    from rechenwerk.scheduling.model import ClusterSpec, Node
    from rechenwerk.simulation.engine import run_simulation

    gpn = p.gpus_per_node
    horizon_s = p.horizon_days * DAY_S
    load = offered_gpu_s / (nodes * gpn * horizon_s)
    if load > MAX_SIMULATED_LOAD:
        # Demand exceeds capacity: the queue grows without bound, no target can be met
        # (and simulating an ever longer backlog only costs time).
        return CurvePoint(gpus=nodes * gpn, nodes=nodes, p90_wait_days=None,
                          training_p90_wait_days=None, utilisation=None, meets_target=False,
                          jobs=len(jobs), offered_load=round(load, 4), simulated_seconds=0.0,
                          note=f"overloaded: offered load {load:.0%} > "
                          f"{MAX_SIMULATED_LOAD:.0%}, not simulated")
    cluster = ClusterSpec(nodes=tuple(
        Node(name=f"n{i:05d}", gpus=gpn, gpu_type=gpu.name, block=f"b{i // 32}")
        for i in range(nodes)))
    started = time.perf_counter()
    res = run_simulation(list(jobs), cluster, p.policy, seed=p.seed)
    elapsed = time.perf_counter() - started
    outs = res.outcomes
    waits = np.array([o.first_start_time - o.submit_time for o in outs], dtype=float)
    train_waits = np.array([o.first_start_time - o.submit_time for o in outs
                            if o.job_id.startswith("plan-")], dtype=float)
    p90 = float(np.percentile(waits, 90)) / DAY_S if waits.size else 0.0
    tp90 = float(np.percentile(train_waits, 90)) / DAY_S if train_waits.size else None
    util = _utilisation(res.timeline.times, res.timeline.busy_gpus, nodes * gpn,
                        p.horizon_days * DAY_S)
    return CurvePoint(gpus=nodes * gpn, nodes=nodes, p90_wait_days=p90,
                      training_p90_wait_days=tp90, utilisation=util,
                      meets_target=_meets(p, p90, tp90, util), jobs=len(outs),
                      offered_load=round(load, 4), simulated_seconds=round(elapsed, 3))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _combine(p: DemandPortfolio, points: Sequence[CurvePoint]) -> CurvePoint:
    """One curve point from the replicates of a size: means (the target is judged on
    them) and the min-max ranges."""
    first = points[0]
    if len(points) == 1:
        return first
    simulated = [c for c in points if c.p90_wait_days is not None]
    jobs = round(_mean([c.jobs for c in points]))
    load = round(_mean([c.offered_load for c in points]), 4)
    seconds = round(sum(c.simulated_seconds for c in points), 3)
    if len(simulated) < len(points):  # some replicate is overloaded: no target is met
        return replace(first, p90_wait_days=None, training_p90_wait_days=None,
                       utilisation=None, meets_target=False, jobs=jobs, offered_load=load,
                       simulated_seconds=seconds, replicates=len(points),
                       note=f"overloaded in {len(points) - len(simulated)} of "
                       f"{len(points)} replicates")
    p90s = [c.p90_wait_days or 0.0 for c in simulated]
    utils = [c.utilisation or 0.0 for c in simulated]
    tp90s = [c.training_p90_wait_days for c in simulated
             if c.training_p90_wait_days is not None]
    p90, util = _mean(p90s), _mean(utils)
    tp90 = _mean(tp90s) if tp90s else None
    return replace(first, p90_wait_days=p90, training_p90_wait_days=tp90, utilisation=util,
                   meets_target=_meets(p, p90, tp90, util), jobs=jobs, offered_load=load,
                   simulated_seconds=seconds, replicates=len(points),
                   p90_wait_days_range=(min(p90s), max(p90s)),
                   training_p90_wait_days_range=(min(tp90s), max(tp90s)) if tp90s else None,
                   utilisation_range=(min(utils), max(utils)))


def _replicate(p: DemandPortfolio, k: int) -> DemandPortfolio:
    """Replicate ``k`` of the portfolio: its seeds advanced by ``k``."""
    if k == 0:
        return p
    update: dict[str, Any] = {"seed": p.seed + k}
    if p.background is not None and p.background.generate is not None:
        gen = p.background.generate.model_copy(update={"seed": p.background.generate.seed + k})
        update["background"] = p.background.model_copy(update={"generate": gen})
    return p.model_copy(update=update)


def _meets(p: DemandPortfolio, p90_days: float, train_p90_days: float | None,
           util: float) -> bool:
    t = p.target
    ok = True
    if t.p90_wait_days is not None:
        ok = ok and p90_days <= t.p90_wait_days
    if t.training_wait_days is not None and train_p90_days is not None:
        ok = ok and train_p90_days <= t.training_wait_days
    if t.max_utilisation is not None:
        ok = ok and util <= t.max_utilisation
    return ok


def size_centre(p: DemandPortfolio, *, progress: Progress | None = None) -> SizingResult:
    """Scan and bisect the number of nodes; see the module docstring."""
    started = time.perf_counter()
    gpu = get_gpu(p.gpu, field="gpu")
    energy = _energy_params(p)
    warnings: list[str] = []
    replicas = [_replicate(p, k) for k in range(p.seeds)]
    workloads = [build_workload(r, gpu, warnings if k == 0 else [])
                 for k, r in enumerate(replicas)]
    jobs, trainings, n_bg, demand = workloads[0]
    if not jobs:
        raise InvalidInput("no job falls into the simulated horizon", field="horizon_days",
                           hint="lengthen horizon_days or raise per_year")
    if sum(len(w[0]) for w in workloads) > MAX_JOBS:
        raise InvalidInput(f"{sum(len(w[0]) for w in workloads):,} jobs in the horizon "
                           "(all replicates) are too many to simulate repeatedly",
                           field="horizon_days",
                           hint=f"shorten horizon_days or use fewer seeds to stay below "
                           f"{MAX_JOBS:,} jobs")
    gpn = p.gpus_per_node
    horizon_s = p.horizon_days * DAY_S
    # GPU-time the horizon could serve at most: runs are clipped at its end.
    offered = [sum(j.gpus * max(0.0, min(j.duration_s, horizon_s - j.submit_time))
                   for j in w[0]) for w in workloads]
    largest = max(j.gpus for w in workloads for j in w[0])
    lo_nodes = max(math.ceil(p.search.min_gpus / gpn), math.ceil(largest / gpn))
    hi_nodes = p.search.max_gpus // gpn
    if hi_nodes < lo_nodes:
        raise InvalidInput(
            f"search.max_gpus = {p.search.max_gpus} cannot run the largest job "
            f"({largest} GPUs) on {gpn}-GPU nodes",
            field="search.max_gpus", hint=f"raise search.max_gpus to at least {lo_nodes * gpn}",
        )
    scan = sorted({round(lo_nodes * (hi_nodes / lo_nodes) ** (k / (p.search.points - 1)))
                   for k in range(p.search.points)})
    expected_bisect = max(1, math.ceil(math.log2(max(2.0, 1.0 / p.search.resolution))))
    total = len(scan) + expected_bisect
    results: dict[int, CurvePoint] = {}

    def run(nodes: int) -> CurvePoint:
        if progress:
            progress(len(results), max(total, len(results) + 1), f"{nodes * gpn:,} GPUs")
        point = _combine(p, [_simulate(r, gpu, w[0], nodes, o)
                             for r, w, o in zip(replicas, workloads, offered, strict=True)])
        results[nodes] = point
        return point

    for nodes in scan:
        run(nodes)
    ordered = sorted(results)
    meeting = [n for n in ordered if results[n].meets_target]
    chosen: CurvePoint | None = None
    if meeting:
        hi = meeting[0]
        below = [n for n in ordered if n < hi]
        lo = below[-1] if below else None
        # Bisect between the largest failing and the smallest meeting size.
        while lo is not None and hi - lo > max(1, math.ceil(p.search.resolution * hi)):
            mid = (lo + hi) // 2
            if run(mid).meets_target:
                hi = mid
            else:
                lo = mid
        chosen = results[hi]
        if any(not results[n].meets_target for n in results if n > hi):
            warnings.append("the target is not monotone in the number of GPUs on this "
                            "workload; the smallest meeting size is reported")
    else:
        warnings.append(f"no size up to {hi_nodes * gpn:,} GPUs meets the target "
                        f"({p.target.description()})")
    if progress:
        progress(len(results), len(results), "done")
    cost = None
    if chosen is not None and chosen.utilisation is not None:
        cost = {k: round(v, 1) for k, v in
                yearly_centre_cost(gpu, chosen.gpus, chosen.utilisation, energy).items()}
    if p.horizon_days < 365 and any(t.per_year * p.horizon_days / 365 < 1 for t in p.trainings):
        warnings.append("some trainings run less than once per horizon; their presence "
                        "depends on the seed (lengthen horizon_days for a steadier answer)")
    return SizingResult(
        portfolio=p, gpu=gpu, curve=[results[n] for n in sorted(results)], chosen=chosen,
        cost=cost, trainings=trainings, background_jobs=n_bg,
        demand_gpu_hours_per_year=demand, warnings=warnings,
        wall_seconds=time.perf_counter() - started,
    )


def write_plot(result: SizingResult, plot_dir: Path) -> list[Path]:
    """The sizing curve (GPUs vs. p90 wait and utilisation) as ``centre-sizing.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    pts = [c for c in result.curve if c.p90_wait_days is not None]
    xs = [c.gpus for c in pts]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    nan = float("nan")
    ax.plot(xs, [c.p90_wait_days or 0.0 for c in pts], "o-", color="tab:blue",
            label="p90 wait, all jobs" + (f" (mean of {result.portfolio.seeds} seeds, "
                                          "band: min-max)" if result.portfolio.seeds > 1
                                          else ""))
    ranged = [c for c in pts if c.p90_wait_days_range is not None]
    if ranged:
        ax.fill_between([c.gpus for c in ranged],
                        [c.p90_wait_days_range[0] for c in ranged],  # type: ignore[index]
                        [c.p90_wait_days_range[1] for c in ranged],  # type: ignore[index]
                        color="tab:blue", alpha=0.15, lw=0)
    if any(c.training_p90_wait_days is not None for c in pts):
        waits = [nan if c.training_p90_wait_days is None else c.training_p90_wait_days
                 for c in pts]
        ax.plot(xs, waits, "^-", color="tab:purple",
                label="p90 wait, planned trainings")
        tr = [c for c in pts if c.training_p90_wait_days_range is not None]
        if tr:
            ax.fill_between([c.gpus for c in tr],
                            [c.training_p90_wait_days_range[0] for c in tr],  # type: ignore[index]
                            [c.training_p90_wait_days_range[1] for c in tr],  # type: ignore[index]
                            color="tab:purple", alpha=0.12, lw=0)
    ax.set_xlabel(f"GPUs ({result.gpu.name})")
    ax.set_ylabel("p90 wait (days)", color="tab:blue")
    ax.set_yscale("symlog", linthresh=0.1)
    target = result.portfolio.target
    if target.p90_wait_days is not None:
        ax.axhline(target.p90_wait_days, color="tab:blue", ls=":", lw=1,
                   label=f"target p90 <= {target.p90_wait_days:g} d")
    if target.training_wait_days is not None and target.training_wait_days != target.p90_wait_days:
        ax.axhline(target.training_wait_days, color="tab:purple", ls=":", lw=1,
                   label=f"target trainings p90 <= {target.training_wait_days:g} d")
    ax2 = ax.twinx()
    ax2.plot(xs, [100 * (c.utilisation or 0) for c in pts], "s--", color="tab:orange",
             label="utilisation")
    ax2.set_ylabel("utilisation (%)", color="tab:orange")
    ax2.set_ylim(0, 105)
    if target.max_utilisation is not None:
        ax2.axhline(100 * target.max_utilisation, color="tab:orange", ls=":", lw=1)
    if result.chosen is not None:
        ax.axvline(result.chosen.gpus, color="tab:green", lw=1.5,
                   label=f"chosen: {result.chosen.gpus:,} GPUs")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    ax.set_title(f"Centre sizing: {result.portfolio.name}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = plot_dir / "centre-sizing.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]

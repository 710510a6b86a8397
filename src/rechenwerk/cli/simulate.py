"""``rechenwerk simulate``: replay a trace under several policies side by side."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rechenwerk.cli.output import console, err_console, handle_errors
from rechenwerk.errors import InvalidInput

if TYPE_CHECKING:
    from rechenwerk.scheduling.model import Reservation


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


@handle_errors
def simulate(
    trace: Path = typer.Option(..., "--trace", help="Trace file (CSV)."),
    fmt: str = typer.Option("native", "--format", help="Trace format: native or philly."),
    cluster: str = typer.Option(
        "56x8", "--cluster", help='Cluster: "NODESxGPUS[:TYPE]" (e.g. 56x8) or a YAML file.'
    ),
    policy: list[str] = typer.Option(
        ["fifo"],
        "--policy",
        help="Policy to compare (repeatable): fifo, easy-backfill, conservative-backfill, "
        "multifactor, multifactor+easy-backfill, multifactor+conservative-backfill, quota, las.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write per-policy metrics here."),
    plot_dir: Path | None = typer.Option(None, "--plot-dir", help="Write PNG plots here."),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Skip (and count) malformed rows and jobs larger than the cluster.",
    ),
    walltime_factor: str = typer.Option(
        "exact",
        "--walltime-factor",
        help='Walltime estimate for jobs without one: "exact" (= run time) or a factor '
        ">= 1 (estimate = factor x run time).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulator's random numbers."),
    limit: int | None = typer.Option(
        None, "--limit", help="Only the first N jobs of the trace (by submit time)."
    ),
    params_file: Path | None = typer.Option(
        None, "--params",
        help="Policy parameters (YAML): the same file RECHENWERK_SCHEDULER_PARAMS gives "
        "the live scheduler, to try a setting on a trace first.",
    ),
    checkpoint_interval: float | None = typer.Option(
        None,
        "--checkpoint-interval",
        help="Seconds between checkpoints of preempted jobs (default 3600; 0 = none).",
    ),
    node_mtbf_days: float | None = typer.Option(
        None, "--node-mtbf-days", help="Simulate node failures: mean days between failures."
    ),
    repair_hours: float = typer.Option(4.0, "--repair-hours", help="Node repair time (hours)."),
    reservations_file: Path | None = typer.Option(
        None, "--reservations", help="YAML file of advance reservations (docs/scheduling.md)."),
) -> None:
    """Replay a workload trace on a simulated cluster under one or more policies."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from rechenwerk.jobs.policy_config import load_params_file
    from rechenwerk.scheduling.params import PolicyParams
    from rechenwerk.scheduling.policies import make_policy
    from rechenwerk.simulation.cluster import load_cluster
    from rechenwerk.simulation.engine import FailureModel, SimulationResult, run_simulation
    from rechenwerk.simulation.report import comparison_table, run_to_dict, write_plots
    from rechenwerk.simulation.traces import read_trace

    factor = _parse_factor(walltime_factor)
    spec = load_cluster(cluster)
    held: tuple[Reservation, ...] = ()
    if reservations_file is not None:
        from rechenwerk.simulation.reservations_file import load_reservations

        held = load_reservations(reservations_file, spec)
    names = list(dict.fromkeys(make_policy(p).name for p in policy))  # validate all first
    params = load_params_file(params_file) if params_file is not None else PolicyParams()
    if checkpoint_interval is not None:
        if checkpoint_interval < 0:
            raise InvalidInput(
                "checkpoint interval must be >= 0 seconds", field="checkpoint_interval"
            )
        params = replace(params, checkpoint_interval_s=checkpoint_interval or None)
    failures = None
    if node_mtbf_days is not None:
        failures = FailureModel(node_mtbf_days * 86400.0, repair_hours * 3600.0)
    if limit is not None and limit < 1:
        raise InvalidInput("--limit must be >= 1", field="limit")
    if not trace.is_file():
        raise InvalidInput(
            f"trace file {trace} does not exist",
            field="trace",
            hint="pass the path of a CSV trace (native or --format philly, see docs/traces.md), "
                 "or make one with `rechenwerk trace generate`",
        )
    tr = read_trace(trace, fmt, skip_invalid=skip_invalid)
    jobs = tr.jobs[:limit] if limit else tr.jobs
    if not jobs:
        raise InvalidInput(f"trace {trace} has no jobs", field="trace")
    console.print(
        f"[bold]{len(jobs):,}[/] jobs from {tr.source}; cluster: {spec.describe()}; "
        f"{_note(factor)}; seed {seed}",
        highlight=False,
    )
    if tr.skipped:
        err_console.print(
            f"[yellow]skipped {len(tr.skipped):,} malformed rows[/], first: {tr.skipped[0]}",
            highlight=False,
        )

    results: dict[str, SimulationResult] = {}
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} jobs"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        for name in names:
            task = bar.add_task(name, total=len(jobs))

            def report(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            results[name] = run_simulation(
                jobs,
                spec,
                name,
                params=params,
                walltime_factor=factor,
                seed=seed,
                failures=failures,
                progress=report,
                drop_oversized=skip_invalid,
                reservations=held,
            )
    for name, r in results.items():
        if r.dropped:
            err_console.print(
                f"[yellow]{name}: dropped {len(r.dropped)} jobs larger than the "
                f"cluster[/] (first: {r.dropped[0]})",
                highlight=False,
            )
    console.print(comparison_table(results, title=f"{len(jobs):,} jobs on {spec.describe()}"))
    if json_out is not None:
        payload = {
            "trace": str(trace),
            "format": fmt,
            "cluster": cluster,
            "total_gpus": spec.total_gpus,
            "walltime_estimate": _note(factor),
            "seed": seed,
            "skipped_rows": len(tr.skipped),
            "policies": {
                name: {
                    **run_to_dict(r),
                    **{
                        k: v
                        for k, v in r.to_dict().items()
                        if k
                        in (
                            "events",
                            "node_failures",
                            "dropped_jobs",
                            "metrics_seconds",
                            "walltime_estimate",
                        )
                    },
                }
                for name, r in results.items()
            },
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=2))
        console.print(f"metrics written to {json_out}", highlight=False)
    if plot_dir is not None:
        paths = write_plots(results, plot_dir)
        console.print(f"{len(paths)} plots written to {plot_dir}", highlight=False)


def _parse_factor(text: str) -> float:
    if text.strip().lower() == "exact":
        return 1.0
    try:
        f = float(text)
    except ValueError:
        f = float("nan")
    if not f >= 1.0 or f == float("inf"):
        raise InvalidInput(
            f"--walltime-factor must be 'exact' or a number >= 1, got {text!r}",
            field="walltime_factor",
            hint="e.g. --walltime-factor 2.0 (estimate = 2 x the real run time)",
        )
    return f


def _note(factor: float) -> str:
    from rechenwerk.simulation.engine import walltime_note

    return walltime_note(factor)

"""``rechenwerk simulate``: replay a trace under several policies side by side."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rechenwerk.cli.output import console, err_console, handle_errors
from rechenwerk.errors import InvalidInput

if TYPE_CHECKING:
    from rechenwerk.scheduling.model import Reservation
    from rechenwerk.scheduling.params import PolicyParams


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
    params_files: list[str] = typer.Option(
        [], "--params",
        help="Policy parameters (YAML): the same file RECHENWERK_SCHEDULER_PARAMS gives "
        "the live scheduler, to try a setting on a trace first. Repeat it as "
        "[LABEL=]FILE to compare settings side by side (the first is the baseline); "
        "`defaults` is the built-in parameters.",
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
    project_kinds: Path | None = typer.Option(
        None, "--project-kinds",
        help="CSV project,kind: the organisation kind of each project, for waits per kind "
        "(overrides the trace's kind column; docs/traces.md)."),
) -> None:
    """Replay a workload trace on a simulated cluster under one or more policies."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from rechenwerk.scheduling.policies import make_policy
    from rechenwerk.simulation.cluster import load_cluster
    from rechenwerk.simulation.engine import FailureModel, SimulationResult, run_simulation
    from rechenwerk.simulation.report import (
        comparison_table,
        configuration_table,
        kind_table,
        relative_changes,
        run_to_dict,
        write_plots,
    )
    from rechenwerk.simulation.traces import read_trace

    factor = _parse_factor(walltime_factor)
    spec = load_cluster(cluster)
    held: tuple[Reservation, ...] = ()
    if reservations_file is not None:
        from rechenwerk.simulation.reservations_file import load_reservations

        held = load_reservations(reservations_file, spec)
    names = list(dict.fromkeys(make_policy(p).name for p in policy))  # validate all first
    settings = _param_sets(params_files)  # label -> (file or None, params)
    if checkpoint_interval is not None:
        if checkpoint_interval < 0:
            raise InvalidInput(
                "checkpoint interval must be >= 0 seconds", field="checkpoint_interval"
            )
        settings = {
            label: (src, replace(p, checkpoint_interval_s=checkpoint_interval or None))
            for label, (src, p) in settings.items()
        }
    compare = len(settings) > 1
    # one run per (policy, parameter set); with one set the runs are named by policy
    runs = [
        (f"{name} @ {label}" if compare else name, name, label)
        for name in names
        for label in settings
    ]
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
    if project_kinds is not None:
        from rechenwerk.simulation.traces.kinds import read_project_kinds, with_kinds

        jobs = with_kinds(jobs, read_project_kinds(project_kinds))
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
    # The bar is redrawn from the replay's own progress callback (at most every 0.2 s),
    # not by Rich's refresh thread: a second Python thread waking 10 times a second makes
    # the replay hand over the GIL, and on a busy machine wait for it to come back
    # (docs/benchmarks.md, "the CLI and the script").
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} jobs"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        auto_refresh=False,
    ) as bar:
        for run_name, name, label in runs:
            task = bar.add_task(run_name, total=len(jobs))
            drawn = [0.0]

            def report(done: int, total: int, task: TaskID = task,
                       drawn: list[float] = drawn) -> None:
                bar.update(task, completed=done)
                t = time.monotonic()
                if done >= total or t - drawn[0] >= 0.2:
                    drawn[0] = t
                    bar.refresh()

            results[run_name] = run_simulation(
                jobs,
                spec,
                name,
                params=settings[label][1],
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
    title = f"{len(jobs):,} jobs on {spec.describe()}"
    if compare:
        console.print(configuration_table(results, title=title))
    else:
        console.print(comparison_table(results, title=title))
    # waits per organisation kind, one block of rows per run (when the trace has kinds)
    by_kind = kind_table(results, first="run" if compare else "policy")
    if by_kind is not None:
        console.print(by_kind)
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
                            "cpu_seconds",
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
        if compare:
            base = next(iter(results))
            payload["params"] = {label: src for label, (src, _p) in settings.items()}
            payload["baseline"] = base
            payload["runs"] = {
                run_name: {"policy": name, "params": label} for run_name, name, label in runs
            }
            payload["change_vs_baseline"] = {
                run_name: relative_changes(results[base].metrics, r.metrics)
                for run_name, r in results.items()
                if run_name != base
            }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=2))
        console.print(f"metrics written to {json_out}", highlight=False)
    if plot_dir is not None:
        paths = write_plots(results, plot_dir)
        console.print(f"{len(paths)} plots written to {plot_dir}", highlight=False)


DEFAULTS = "defaults"


def _param_sets(values: list[str]) -> dict[str, tuple[str | None, PolicyParams]]:
    """``--params`` values (``FILE``, ``LABEL=FILE`` or ``defaults``) -> label ->
    (file, parameters), in the order given; none -> the built-in parameters."""
    from rechenwerk.jobs.policy_config import load_params_file
    from rechenwerk.scheduling.params import PolicyParams

    if not values:
        return {DEFAULTS: (None, PolicyParams())}
    out: dict[str, tuple[str | None, PolicyParams]] = {}
    for value in values:
        label, sep, file = value.partition("=")
        if not sep or Path(value).is_file():  # a bare FILE (even one with '=' in its name)
            label, file = "", value
        label, file = label.strip(), file.strip()
        if not file:
            raise InvalidInput(f"--params {value!r}: no file after '='", field="params",
                               hint="give --params LABEL=FILE, FILE or defaults")
        if file == DEFAULTS and not Path(file).exists():
            src, params = None, PolicyParams()
        else:
            src, params = file, load_params_file(Path(file))
        label = label or (DEFAULTS if src is None else Path(file).stem)
        if label in out:
            raise InvalidInput(
                f"--params: two parameter sets are labelled {label!r}", field="params",
                hint="label them apart: --params current=a/sched.yaml "
                "--params changed=b/sched.yaml")
        out[label] = (src, params)
    return out


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

"""``rechenwerk twin validate``: how faithful is the simulator to the real Slurm cluster?

Replays a time-compressed trace slice on the Slurm cluster this machine talks to (jobs
that sleep their scaled run time), simulates the same slice with the settings of its
slurm.conf, and compares job by job (docs/scheduling.md "Fidelity against real Slurm").
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, err_console, handle_errors
from rechenwerk.errors import InvalidInput

LOCK = "/tmp/rechenwerk-slurm-tests.lock"


def register(app: typer.Typer) -> None:
    twin = typer.Typer(
        help="The digital twin: measure the simulator against real Slurm.", no_args_is_help=True
    )
    app.add_typer(twin, name="twin")
    twin.command("validate")(validate)


@handle_errors
def validate(
    trace: Path = typer.Option(..., "--trace", help="Trace file (CSV)."),
    fmt: str = typer.Option("philly", "--format", help="Trace format: native or philly."),
    skip: int = typer.Option(0, "--skip", help="Jobs of the trace to skip (by submit time)."),
    count: int = typer.Option(150, "--jobs", help="Jobs in the slice."),
    scale: float = typer.Option(
        100.0, "--scale", help="Time compression: submit gaps and run times / SCALE."
    ),
    max_duration: int = typer.Option(
        60, "--max-duration", help="Cap on a job's scaled run time (seconds)."
    ),
    slurm_conf: Path = typer.Option(
        Path("/etc/slurm/slurm.conf"),
        "--slurm-conf",
        help="slurm.conf the simulator is configured from.",
    ),
    user: str = typer.Option(
        "rwtwin", "--user", help="Unprivileged Unix user that submits the jobs."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the scatter plot (PNG)."),
    real: Path | None = typer.Option(
        None,
        "--real",
        help="Reuse the real schedule of an earlier --json file instead of "
        "replaying (same slice options).",
    ),
    lock: str = typer.Option(LOCK, "--lock", help="flock held during the replay ('' = none)."),
    job_overhead: float = typer.Option(
        0.1,
        "--job-overhead",
        help="Seconds a batch job outlasts its sleep (allocation to completion in "
        "slurmctld.log: 0.03-0.33 s, median 0.08 s here).",
    ),
    deadline: float = typer.Option(
        480.0, "--deadline", help="Give up (and cancel) a replay after this many s."
    ),
) -> None:
    """Replay a trace slice on real Slurm and in the simulator; compare start times."""
    from rechenwerk.simulation.slurm_conf import read_slurm_conf
    from rechenwerk.simulation.traces import read_trace
    from rechenwerk.simulation.twin import prepare_slice

    conf = read_slurm_conf(slurm_conf)
    cluster = conf.cluster()
    nodes = conf.nodes_with_gpus()
    gpn = min(n.gpus for n in nodes)
    cpus_per_gpu = max(1, min(n.cpus // n.gpus for n in nodes))
    if not trace.is_file():
        raise InvalidInput(f"trace file {trace} does not exist", field="trace")
    tr = read_trace(trace, fmt)
    jobs = prepare_slice(
        tr.jobs,
        start=skip,
        count=count,
        scale=scale,
        max_duration_s=max_duration,
        gpus_per_node=gpn,
        nodes=len(nodes),
        cpus_per_gpu=cpus_per_gpu,
    )
    span = max(j.submit_s for j in jobs)
    work = sum(j.duration_s * j.gpus for j in jobs) / cluster.total_gpus
    console.print(
        f"[bold]{len(jobs)}[/] jobs of {tr.source} from #{skip}, scale 1/{scale:g}: "
        f"submissions over {span} s, {work:.0f} s of work for {cluster.describe()}; "
        f"policy {conf.policy} from {conf.source}",
        highlight=False,
    )

    if real is not None:
        real_times, _, meta = _load_real(real, jobs)
    else:
        real_times, _, meta = _replay(jobs, user, lock, deadline, conf)
    figures, sims = _compare_all(jobs, conf, real_times, meta, job_overhead)
    _print_table(figures, meta)
    cmd = "rechenwerk " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if json_out is not None:
        payload: dict[str, Any] = {
            "command": cmd,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "slurm_conf": str(conf.source),
            "policy": conf.policy,
            "params": vars_of(conf.params()),
            "sched": conf.sched,
            "defaulted": list(conf.defaulted),
            "slice": {
                "trace": str(trace),
                "format": fmt,
                "skip": skip,
                "jobs": len(jobs),
                "scale": scale,
                "max_duration_s": max_duration,
            },
            "replay": meta,
            "figures": {k: f.to_dict() for k, f in figures.items()},
            "jobs": [
                {
                    "id": j.job_id,
                    "submit_s": j.submit_s,
                    "duration_s": j.duration_s,
                    "gpus": j.gpus,
                    "nodes": j.nodes,
                    "time_limit_min": j.time_limit_min,
                    "real": _t(real_times.get(j.job_id)),
                    **{k: _t(s.get(j.job_id)) for k, s in sims.items()},
                }
                for j in jobs
            ],
        }
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(_plain(payload), indent=2, default=str))
        console.print(f"results written to {json_out}", highlight=False)
    if plot is not None:
        from rechenwerk.simulation.fidelity_plot import scatter

        scatter(
            real_times,
            sims,
            figures,
            plot,
            title=f"{len(jobs)} jobs of {trace.name} (#{skip}..), scale 1/{scale:g}",
        )
        console.print(f"plot written to {plot}", highlight=False)


def vars_of(obj: object) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in getattr(obj, "__slots__", ())}


def _plain(o: object) -> object:
    """JSON-safe: mappings and tuples as JSON, non-finite floats as strings ("inf")."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, Mapping):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    return o


def _t(jt: Any) -> list[float] | None:
    return None if jt is None else [jt.submit, jt.start, jt.end]


def _replay(
    jobs: list[Any], user: str, lock: str, deadline: float, conf: Any
) -> tuple[dict[str, Any], float | None, dict[str, Any]]:
    import subprocess

    from rechenwerk.execution.slurm.replay import backfill_phase, replay, temporary_account

    if os.geteuid() == 0 and subprocess.run(["id", user], capture_output=True).returncode:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/bash", user],
            check=True,
            capture_output=True,
        )
    fh = open(lock, "a") if lock else None  # noqa: SIM115 - held for the whole replay
    try:
        if fh is not None:
            err_console.print(f"waiting for the lock {lock} ...", highlight=False)
            fcntl.flock(fh, fcntl.LOCK_EX)
        started = time.monotonic()
        with temporary_account(user) as account:
            err_console.print(f"replaying under account {account} as {user} ...", highlight=False)
            res = replay(
                jobs,
                account=account,
                user=user,
                deadline_s=deadline,
                progress=lambda m: err_console.print(m, highlight=False),
            )
            phase = backfill_phase(res.t0, conf.sched["bf_interval"])
        wall = time.monotonic() - started
    finally:
        if fh is not None:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
    bad = {k: v for k, v in res.states.items() if v != "COMPLETED"}
    if bad:
        err_console.print(
            f"[yellow]{len(bad)} jobs did not complete[/]: {sorted(bad.items())[:5]}",
            highlight=False,
        )
    meta = {
        "t0": res.t0,
        "wall_s": round(wall, 1),
        "account": account,
        "bf_phase_s": phase,
        "not_completed": bad,
    }
    return res.times, phase, meta


def _load_real(path: Path, jobs: list[Any]) -> tuple[dict[str, Any], float | None, dict[str, Any]]:
    from rechenwerk.simulation.fidelity import JobTimes

    try:
        data = json.loads(path.read_text())
        by_id = {j["id"]: j for j in data["jobs"]}
        times: dict[str, JobTimes] = {}
        for j in jobs:
            got = by_id.get(j.job_id, {}).get("real")
            if got:
                sub, start, end = (float(x) for x in got)
                times[j.job_id] = JobTimes(sub, start, end, j.gpus)
        meta = dict(data["replay"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"cannot read the real schedule from {path}: {exc}", field="real"
        ) from exc
    if not times:
        raise InvalidInput(
            f"{path} has none of this slice's jobs",
            field="real",
            hint="use the same --skip/--jobs/--scale as the replay",
        )
    meta["reused_from"] = str(path)
    return times, meta.get("bf_phase_s"), meta


def _compare_all(
    jobs: list[Any], conf: Any, real: dict[str, Any], meta: dict[str, Any], overhead: float
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The simulator as it is, then with Slurm's timers, then also with bf_resolution:
    each step's share of the gap shows in the figures."""
    from rechenwerk.simulation.fidelity import compare
    from rechenwerk.simulation.twin import simulate, slurm_timing

    t0, phase = float(meta.get("t0", 0.0)), meta.get("bf_phase_s")
    variants = {
        "event-driven": None,
        "+ slurm timers": slurm_timing(
            conf, t0, phase, job_overhead_s=overhead, with_resolution=False
        ),
        "+ bf_resolution": slurm_timing(conf, t0, phase, job_overhead_s=overhead),
    }
    cap = conf.cluster().total_gpus
    sims = {name: simulate(jobs, conf, t) for name, t in variants.items()}
    figures = {name: compare(real, s, cap) for name, s in sims.items()}
    return figures, sims


def _print_table(figures: dict[str, Any], meta: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(
        title="Simulator vs real Slurm, job by job",
        caption="err: |simulated - real start|; rel: over the real mean wait; "
        "rho: Spearman rank correlation of start times; util: GPU utilisation "
        "over the real makespan",
    )
    for col in (
        "simulator",
        "jobs",
        "err p50",
        "err p90",
        "rel p50",
        "rel p90",
        "mean wait real/sim",
        "rho",
        "util real/sim",
        "makespan real/sim",
    ):
        t.add_column(col, justify="left" if col == "simulator" else "right")
    for name, f in figures.items():
        t.add_row(
            name,
            str(f.jobs),
            f"{f.median_abs_error_s:.1f}s",
            f"{f.p90_abs_error_s:.1f}s",
            f"{100 * f.median_rel_error:.1f}%",
            f"{100 * f.p90_rel_error:.1f}%",
            f"{f.mean_wait_real_s:.1f}/{f.mean_wait_sim_s:.1f}s",
            f"{f.spearman:.3f}",
            f"{100 * f.utilisation_real:.1f}/{100 * f.utilisation_sim:.1f}%",
            f"{f.makespan_real_s:.0f}/{f.makespan_sim_s:.0f}s",
        )
    console.print(t)
    console.print(
        f"backfill timer phase: {meta.get('bf_phase_s')}; replay wall time: {meta.get('wall_s')} s",
        highlight=False,
    )

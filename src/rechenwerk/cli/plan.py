"""``rechenwerk plan``: training estimates, centre sizing and the hardware catalogue.

Everything here runs locally (no server needed)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGTP]?)\s*$", re.I)


def parse_quantity(text: str | None, field: str, *, example: str) -> float | None:
    """``70e9``, ``70B``, ``2T``, ``1.5e12`` -> float; anything else is InvalidInput."""
    if text is None:
        return None
    m = _QUANTITY.match(text)
    if not m:
        raise InvalidInput(f"cannot read {field} = {text!r} as a number", field=field,
                           hint=f"write e.g. {example}")
    value = float(m.group(1)) * _SUFFIX.get(m.group(2).upper(), 1.0) if m.group(2) else float(
        m.group(1))
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be finite", field=field)
    return value


def parse_count(text: str, field: str) -> int:
    value = parse_quantity(text, field, example="1024")
    if value is None or value != int(value):
        raise InvalidInput(f"{field} must be a whole number, got {text!r}", field=field,
                           hint="e.g. 1024")
    return int(value)


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def register(app: typer.Typer) -> None:
    plan = typer.Typer(
        help="Plan trainings and centres: GPU-hours, days, energy, CO2, cost, GPU counts.",
        no_args_is_help=True,
    )
    app.add_typer(plan, name="plan")

    @plan.command("train")
    @handle_errors
    def train(
        params: str = typer.Option(..., "--params", help="Total parameters, e.g. 70e9 or 70B."),
        tokens: str | None = typer.Option(
            None, "--tokens", help="Training tokens, e.g. 2e12 or 2T (default: 20 x params)."),
        gpu: str = typer.Option(..., "--gpu", help="GPU type (see `rechenwerk plan gpus`)."),
        gpus: str = typer.Option(..., "--gpus", help="Number of GPUs, e.g. 1024."),
        active_params: str | None = typer.Option(
            None, "--active-params", help="Active parameters per token (mixture-of-experts)."),
        mfu: float | None = typer.Option(
            None, "--mfu", help="Steady-state model-FLOPs utilisation (default per GPU)."),
        efficiency: float | None = typer.Option(
            None, "--efficiency", help="End-to-end efficiency factor (default 0.8)."),
        precision: str = typer.Option(
            "bf16", "--precision",
            help="bf16, or fp8 (Hopper and newer: BF16 throughput x --fp8-speedup)."),
        fp8_speedup: float | None = typer.Option(
            None, "--fp8-speedup",
            help="End-to-end FP8 speedup over BF16 (default 1.3, measured 1.2-1.6)."),
        layers: int | None = typer.Option(None, "--layers", help="Transformer layers."),
        hidden: int | None = typer.Option(None, "--hidden", help="Hidden size."),
        seq_len: int | None = typer.Option(None, "--seq-len", help="Sequence length."),
        country: str = typer.Option("DE", "--country", help="Grid country code (DE, FR, FI...)."),
        grid_intensity: float | None = typer.Option(
            None, "--grid-intensity", help="Custom grid intensity in g CO2e/kWh."),
        pue: float | None = typer.Option(None, "--pue", help="Power usage effectiveness."),
        electricity_price: float | None = typer.Option(
            None, "--electricity-price", help="EUR per kWh."),
        cloud_price: float | None = typer.Option(
            None, "--cloud-price", help="Cloud EUR per GPU-hour (default from catalogue)."),
        capex: float | None = typer.Option(
            None, "--capex", help="Own hardware EUR per GPU (default from catalogue)."),
        sharding: str = typer.Option(
            "zero1", "--sharding", help="Optimizer sharding: none, zero1, zero2, zero3."),
        recompute: str = typer.Option(
            "selective", "--recompute", help="Activation recomputation: none, selective, full."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Estimate GPU-hours, wall-clock days, energy, CO2 and cost of one training run."""
        from rechenwerk.planning.energy import EnergyParams, merge_params
        from rechenwerk.planning.training import estimate_training

        energy = merge_params(EnergyParams(), {
            "country": country, "grid_intensity_g_per_kwh": grid_intensity, "pue": pue,
            "electricity_eur_per_kwh": electricity_price,
            "cloud_eur_per_gpu_hour": cloud_price, "capex_eur_per_gpu": capex,
        })
        est = estimate_training(
            params=parse_quantity(params, "params", example="70e9 or 70B") or 0.0,
            tokens=parse_quantity(tokens, "tokens", example="2e12 or 2T"),
            active_params=parse_quantity(active_params, "active_params", example="13e9"),
            gpu=gpu, gpus=parse_count(gpus, "gpus"), mfu=mfu, efficiency=efficiency,
            layers=layers, hidden=hidden, seq_len=seq_len, energy=energy,
            sharding=sharding, recompute=recompute, precision=precision,
            fp8_speedup=fp8_speedup,
        )
        if as_json:
            print_json(est.to_dict())
            return
        render_training(est.to_dict())

    @plan.command("gpus")
    @handle_errors
    def gpus_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the hardware catalogue (built-in plus RECHENWERK_HARDWARE_CATALOGUE)."""
        from rechenwerk.planning.hardware import default_catalogue

        cat = default_catalogue()
        if as_json:
            print_json({"sources": list(cat.sources),
                        "gpus": [g.to_dict() for g in cat.gpus.values()]})
            return
        print_table(
            ["GPU", "year", "BF16", "FP8", "GB", "TB/s", "TDP W", "MFU", "kEUR", "EUR/h"],
            [(g.name, g.year, _fmt(g.peak_bf16_tflops),
              "-" if g.peak_fp8_tflops is None else _fmt(g.peak_fp8_tflops),
              _fmt(g.memory_gb), f"{g.memory_bandwidth_gbs / 1000:.2f}", _fmt(g.tdp_w),
              f"{g.default_mfu:.2f}", _fmt(g.capex_eur / 1000), f"{g.cloud_eur_per_gpu_hour:.2f}")
             for g in cat.gpus.values()],
            title="Hardware catalogue: dense peak TFLOP/s, memory GB and TB/s, default MFU, "
            "capex kEUR/GPU, cloud EUR/GPU-hour (sources: --json)",
        )

    @plan.command("grid")
    @handle_errors
    def grid_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List grid carbon intensities by country (g CO2e/kWh, with source and year)."""
        from rechenwerk.planning.energy import grid_intensities

        table = grid_intensities()
        if as_json:
            print_json([g.to_dict() for g in table.values()])
            return
        print_table(
            ["code", "country", "g CO2e/kWh", "year", "note"],
            [(g.code, g.name, _fmt(g.g_per_kwh), g.year, "approximate" if g.approximate else "")
             for g in table.values()],
            title="Grid carbon intensity (" + next(iter(table.values())).source + ")",
        )

    @plan.command("accuracy")
    @handle_errors
    def accuracy_cmd(
        csv_path: Path | None = typer.Option(
            None, "--csv",
            help="Reference CSV of published training runs (default: the built-in one, "
                 "planning/data/training-runs.csv)."),
        markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Compare predicted with reported GPU-hours of published runs (default settings)."""
        from rechenwerk.planning.accuracy import accuracy_table, markdown_table

        rows = accuracy_table(csv_path)
        if as_json:
            print_json([r.to_dict() for r in rows])
        elif markdown:
            typer.echo(markdown_table(rows))
        else:
            print_table(
                ["model", "GPU", "reported GPU-hours", "predicted GPU-hours", "error"],
                [(r.model, r.accelerator, _fmt(r.reported_gpu_hours),
                  _fmt(r.predicted_gpu_hours), f"{r.error:+.1%}") for r in rows],
                title="Predicted vs. reported GPU-hours",
            )

    @plan.command("centre")
    @handle_errors
    def centre_cmd(
        demand: Path = typer.Argument(
            ..., help="Demand portfolio YAML (see examples/demand.yaml)."),
        plot_dir: Path | None = typer.Option(
            None, "--plot-dir", help="Write the sizing curve as PNG into this directory."),
        seeds: int | None = typer.Option(
            None, "--seeds", min=1, max=20,
            help="Workload replicates per size (default: the file's 'seeds', 1); the "
            "target is judged on the mean, the curve shows the min-max range."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Size a centre: GPUs needed for a demand portfolio to meet a wait/utilisation target."""
        from rechenwerk.planning.sizing import load_demand, size_centre, write_plot

        portfolio = load_demand(demand)
        if seeds is not None:
            portfolio = portfolio.model_copy(update={"seeds": seeds})
        if as_json:
            result = size_centre(portfolio)
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            with Progress(TextColumn("[bold]simulating[/] {task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                          transient=True) as bar:
                task = bar.add_task("", total=None)

                def progress(done: int, total: int, label: str) -> None:
                    bar.update(task, completed=done, total=total, description=label)

                result = size_centre(portfolio, progress=progress)
        data = result.to_dict()
        if plot_dir is not None:
            data["plots"] = [str(p) for p in write_plot(result, plot_dir)]
        if as_json:
            print_json(data)
            return
        render_centre(data)


def render_training(d: dict[str, Any]) -> None:
    m, hw, a = d["model"], d["hardware"], d["assumptions"]
    mem = d["memory"]
    rows: list[tuple[str, str, str]] = [
        ("parameters", _fmt(m["params"]), "parameters"),
        ("active parameters", _fmt(m["active_params"]), "parameters"),
        ("tokens", _fmt(m["tokens"]), "tokens"),
        ("training compute", f"{d['training_flops']:.4g}", "FLOP"),
        ("throughput", _fmt(d["tokens_per_second_per_gpu"]), "tokens/s per GPU"),
        ("compute", _fmt(d["gpu_hours"]), "GPU-hours"),
        ("wall-clock", _fmt(d["wall_clock_days"], 1), "days"),
        ("energy", _fmt(d["energy_mwh"], 1), "MWh"),
        ("CO2", _fmt(d["co2_t"], 1), "t CO2e"),
        ("cost, cloud", _fmt(d["cost_cloud_eur"]), "EUR"),
        ("cost, own hardware", _fmt(d["cost_own_eur"]), "EUR"),
        ("minimum GPUs (memory)", str(mem["min_gpus"] or "n/a"), "GPUs"),
    ]
    print_table(["quantity", "value", "unit"], rows,
                title=f"Training estimate: {hw['gpus']:,} x {hw['gpu']}")
    notes = [
        f"tokens: {m['tokens_source']}; FLOPs: {d['flops_formula']}",
        f"utilisation: MFU {a['mfu']:.2f} ({a['mfu_source']}) x efficiency "
        f"{a['efficiency']:.2f} = {a['effective_utilisation']:.3f} of "
        f"{hw['peak_tflops']:g} TFLOP/s (BF16)"
        + (f", x {a['precision_speedup']:g} for FP8" if a["precision"] == "fp8" else ""),
        f"energy: {a['it_power_per_gpu_w']:g} W per GPU (GPU at {a['power_fraction']:.0%} of "
        f"{hw['tdp_w']:g} W TDP + node overhead) x PUE {a['pue']}",
        f"CO2: {a['grid']['name']} grid, {a['grid']['g_per_kwh']:g} g CO2e/kWh "
        f"({a['grid']['year'] or 'custom'})",
        f"cost: cloud {a['cloud_eur_per_gpu_hour']:.2f} EUR/GPU-hour; own hardware "
        f"{a['own_capex_eur_per_gpu_hour']:.2f} EUR/GPU-hour capex+maintenance "
        f"({a['amortisation_years']:g} years, {a['centre_utilisation']:.0%} utilised) "
        f"+ electricity {a['electricity_eur_per_kwh']:.2f} EUR/kWh",
    ]
    if mem["feasible"]:
        notes.append(f"memory: {mem['message']}")
    for n in notes:
        console.print(f"  {n}", highlight=False)
    for w in d["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def render_centre(d: dict[str, Any]) -> None:
    def days(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    def p90(p: dict[str, Any], key: str = "p90_wait_days") -> str:
        r = p.get(f"{key}_range")
        return days(p[key]) + (f" ({r[0]:.2f}-{r[1]:.2f})" if r else "")

    rows = [
        (f"{p['gpus']:,}", p["nodes"], f"{p['offered_load']:.0%}", p90(p),
         p90(p, "training_p90_wait_days"),
         "-" if p["utilisation"] is None else f"{p['utilisation']:.1%}",
         ("yes" if p["meets_target"] else "no") + (f" ({p['note']})" if p["note"] else ""))
        for p in d["curve"]
    ]
    dem = d["demand"]
    console.print(
        f"demand: {dem['gpu_hours_per_year']:,.0f} GPU-hours/year "
        f"(>= {dem['lower_bound_gpus']:,} GPUs at 100% utilisation); "
        f"{d['simulations']} sizes in {d['wall_seconds']:.0f} s, horizon "
        f"{d['horizon_days']:g} days, policy {d['policy']}"
        + (f"; {d['seeds']} seeds per size (mean, min-max)" if d.get("seeds", 1) > 1 else ""),
        highlight=False)
    print_table(["GPUs", "nodes", "offered load", "p90 wait all (days)",
                 "p90 wait trainings (days)", "utilisation", "meets target"],
                rows, title=f"Sizing curve ({d['gpu']}; target: {d['target']['description']})")
    c = d["chosen"]
    if c is None:
        console.print(f"[red]no size up to {d['search']['max_gpus']:,} GPUs meets the "
                      "target[/]; raise search.max_gpus or relax the target")
    else:
        cost = d["cost"]
        console.print(
            f"[bold]chosen size:[/] {c['gpus']:,} x {d['gpu']} ({c['nodes']} nodes): "
            f"p90 wait {c['p90_wait_days']:.2f} days (planned trainings "
            f"{days(c['training_p90_wait_days'])} days), utilisation {c['utilisation']:.1%}\n"
            f"investment (capex): {_fmt(cost['capex_eur'])} EUR\n"
            f"operating cost: {_fmt(cost['opex_eur_per_year'])} EUR/year "
            f"(energy {_fmt(cost['energy_eur_per_year'])} EUR/year for "
            f"{_fmt(cost['energy_mwh_per_year'])} MWh/year, maintenance "
            f"{_fmt(cost['maintenance_eur_per_year'])} EUR/year); "
            f"{_fmt(cost['co2_t_per_year'])} t CO2e/year",
            highlight=False,
        )
    for w in d.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    for p in d.get("plots", []):
        console.print(f"plot: {p}", highlight=False)

"""``rechenwerk report usage|utilisation|waits|energy|support|gpu-use``: the reports of the REST API
(``/api/v1/reports``) as a table, ``--json`` or ``--csv``. Operators see the whole centre,
others the projects they belong to."""

from __future__ import annotations

import csv
import sys
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

REPORTS = ("usage", "utilisation", "waits", "energy", "support", "gpu-use")
USAGE_BY = ("project", "org", "kind", "call", "mode", "gpu-type", "period")
WAITS_BY = ("qos", "size", "qos-size", "kind", "kind-size")
SUPPORT_BY = ("kind", "state", "project")
GPU_USE_BY = ("project", "user")
PERIODS = ("day", "week", "month")


def _cell(value: Any, key: str, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if key in ("share", "utilisation", "idle_share"):
            return f"{100 * value:.1f} %"
        digits = 3 if ("MWh" in label or "CO2" in label or "kWh" in label) else 2
        return f"{value:,.{digits}f}"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return value[:10]  # ISO timestamps of period starts: the day is enough
    return str(value)


def _csv(data: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    cols = data["columns"]
    writer.writerow([c["label"] for c in cols])
    for row in data["rows"]:
        writer.writerow(["" if row.get(c["key"]) is None else row.get(c["key"]) for c in cols])


def _show(data: dict[str, Any]) -> None:
    cols = data["columns"]
    print_table([c["label"] for c in cols],
                ([_cell(r.get(c["key"]), c["key"], c["label"]) for c in cols]
                 for r in data["rows"]),
                title=f"{data['title']} ({data['from'][:10]} to {data['to'][:10]}, UTC)")
    if not data["rows"]:
        console.print("[dim]no data in this range: widen it with --from/--to[/]")
    totals = data.get("totals") or {}
    if totals:
        labels = {c["key"]: c["label"] for c in cols}
        console.print("totals: " + ", ".join(
            f"{labels.get(k, k)} {_cell(v, k, labels.get(k, k))}" for k, v in totals.items()),
            highlight=False)
    for a in data.get("assumptions") or ():
        console.print(f"[dim]- {a}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("report")
    @handle_errors
    def report(
        name: str = typer.Argument(..., help="usage, utilisation, waits, energy, support or "
                                   "gpu-use"),
        by: str | None = typer.Option(
            None, "--by", help="usage: project|org|kind|call|mode|gpu-type|period (default "
            "project); waits: qos|size|qos-size|kind|kind-size (default qos-size); "
            "support: kind|state|"
            "project (default kind); gpu-use: project|user (default project)"),
        period: str | None = typer.Option(
            None, "--period", help="time buckets: day|week|month (usage --by period: month; "
            "utilisation: day)"),
        start: str | None = typer.Option(None, "--from", help="start day (UTC), YYYY-MM-DD; "
                                         "default 30 days before --to"),
        end: str | None = typer.Option(None, "--to", help="end (UTC, exclusive), YYYY-MM-DD; "
                                       "default now"),
        country: str | None = typer.Option(None, "--country",
                                           help="energy: grid carbon intensity of this country"),
        pue: float | None = typer.Option(None, "--pue", help="energy: PUE, e.g. 1.2"),
        total_gpus: int | None = typer.Option(None, "--total-gpus",
                                              help="utilisation: capacity (default: the "
                                              "backend's GPUs)"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV (column labels with units)."),
    ) -> None:
        """Reports: GPU-hours, utilisation, waiting times, energy and CO2, support requests,
        idle GPUs."""
        from rechenwerk.cli.client import call

        if name not in REPORTS:
            raise InvalidInput(f"unknown report {name!r}", field="report",
                               hint="Use one of: " + ", ".join(REPORTS) + ".")
        if as_json and as_csv:
            raise InvalidInput("give --json or --csv, not both", field="format")
        if by is not None:
            allowed = {"usage": USAGE_BY, "waits": WAITS_BY, "support": SUPPORT_BY,
                       "gpu-use": GPU_USE_BY}.get(name, ())
            if by not in allowed:
                raise InvalidInput(
                    f"--by {by!r} is not valid for the {name} report", field="by",
                    hint=("Use one of: " + ", ".join(allowed) + ".") if allowed
                    else f"The {name} report has no --by.")
        if period is not None and period not in PERIODS:
            raise InvalidInput(f"--period {period!r} is not valid", field="period",
                               hint="Use day, week or month.")
        params: dict[str, Any] = {"from": start, "to": end}
        if name == "usage":
            params |= {"by": by, "period": period}
        elif name == "utilisation":
            params |= {"period": period, "total_gpus": total_gpus}
        elif name in ("waits", "support", "gpu-use"):
            params |= {"by": by}
        else:
            params |= {"country": country, "pue": pue}
        data = call("GET", f"/api/v1/reports/{name}", params=params)
        if as_json:
            print_json(data)
        elif as_csv:
            _csv(data)
        else:
            _show(data)

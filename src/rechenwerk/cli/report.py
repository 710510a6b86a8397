"""``rechenwerk report usage|utilisation|waits|energy|support|gpu-use|funder|yearly``: the
reports of the REST API (``/api/v1/reports``) as a table, ``--json`` or ``--csv``. Operators
see the whole centre, others the projects they belong to; the funder report is for
operators, and so is the yearly report (``--year 2026 --out report.html --pdf report.pdf``:
the documents written to files)."""

from __future__ import annotations

import csv
import sys
from datetime import date
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

REPORTS = ("usage", "utilisation", "waits", "energy", "support", "gpu-use", "funder",
           "yearly")
FUNDER_SECTIONS = ("country", "field", "field-detail", "kind", "mode", "people",
                   "decisions", "deadlines", "capacity", "waits", "fair-access",
                   "fair-access-kind", "energy")
USAGE_BY = ("project", "org", "kind", "call", "mode", "gpu-type", "period", "job-kind",
            "cluster")
WAITS_BY = ("qos", "size", "qos-size", "kind", "kind-size")
SUPPORT_BY = ("kind", "state", "project")
GPU_USE_BY = ("project", "user")
PERIODS = ("day", "week", "month")


def _cell(value: Any, key: str, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if key in ("share", "utilisation") or key.endswith("_share"):
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


def check_day(value: str | None, option: str) -> str | None:
    """``value`` if it is a day YYYY-MM-DD (or None); else InvalidInput naming ``option``."""
    if value is None:
        return None
    try:
        date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} must be a day like 2026-01-01, got {value!r}",
                           field=option.lstrip("-"),
                           hint="Dates are UTC days: YYYY-MM-DD.") from None
    if len(value) != 10:
        raise InvalidInput(f"{option} must be a day like 2026-01-01, got {value!r}",
                           field=option.lstrip("-"), hint="Dates are UTC days: YYYY-MM-DD.")
    return value


def _funder(params: dict[str, Any], section: str | None, as_json: bool,
            as_csv: bool) -> None:
    from rechenwerk.cli.client import call

    if section is not None and section not in FUNDER_SECTIONS:
        raise InvalidInput(f"--section {section!r} is not valid", field="section",
                           hint="Use one of: " + ", ".join(FUNDER_SECTIONS) + ".")
    params = {**params, "from": check_day(params["from"], "--from"),
              "to": check_day(params["to"], "--to")}
    if as_csv:
        text = call("GET", "/api/v1/reports/funder",
                    params={**params, "section": section, "format": "csv"})
        sys.stdout.write(text)
        return
    data = call("GET", "/api/v1/reports/funder", params=params)
    sections = data["sections"]
    if section is not None:
        sections = {section: sections[section]}
    if as_json:
        print_json(data if section is None else sections[section])
        return
    console.print(f"Funder report {data['from'][:10]} to {data['to'][:10]} (UTC); energy "
                  f"is {data['energy_basis']}", highlight=False)
    for t in sections.values():
        _show(t)


def check_year(value: str | None) -> str | None:
    """``value`` if it is a year of four digits (the server checks its range)."""
    if value is not None and not (value.isdigit() and len(value) == 4):
        raise InvalidInput(f"--year must be a calendar year like 2026, got {value!r}",
                           field="year", hint="Give four digits, e.g. --year 2026.")
    return value


def _write(path: Path, content: str | bytes, what: str) -> None:
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write the {what} to {str(path)!r}: "
                           f"{exc.strerror or exc}", field="out" if what == "HTML" else "pdf",
                           hint="Give a file in a directory you can write to.") from None
    console.print(f"wrote the {what} to {path} ({len(content):,} bytes)", highlight=False)


def _yearly(year: str | None, out: Path | None, pdf: Path | None, as_json: bool) -> None:
    from rechenwerk.cli.client import call

    params = {"year": check_year(year)}
    if as_json:
        print_json(call("GET", "/api/v1/reports/yearly", params=params))
        return
    if out is None and pdf is None:
        raise InvalidInput("the yearly report needs --out FILE.html and/or --pdf FILE.pdf",
                           field="out", hint="e.g. rechenwerk report yearly --year 2026 "
                           "--out report.html --pdf report.pdf (or --json).")
    if out is not None:
        _write(out, call("GET", "/api/v1/reports/yearly", params={**params, "format": "html"}),
               "HTML")
    if pdf is not None:
        _write(pdf, call("GET", "/api/v1/reports/yearly", params={**params, "format": "pdf"}),
               "PDF")


def register(app: typer.Typer) -> None:
    @app.command("report")
    @handle_errors
    def report(
        name: str = typer.Argument(..., help="usage, utilisation, waits, energy, support, "
                                   "gpu-use, funder or yearly (operators)"),
        by: str | None = typer.Option(
            None, "--by", help="usage: project|org|kind|call|mode|gpu-type|period|job-kind|"
            "cluster (default project); waits: qos|size|qos-size|kind|kind-size (default "
            "qos-size); "
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
        section: str | None = typer.Option(
            None, "--section", help="funder: only this section (" + ", ".join(FUNDER_SECTIONS)
            + ")"),
        year: str | None = typer.Option(None, "--year", help="yearly: the calendar year "
                                        "(default: this year)"),
        out: Path | None = typer.Option(None, "--out", help="yearly: write the HTML "
                                        "document to this file"),
        pdf: Path | None = typer.Option(None, "--pdf", help="yearly: write the PDF to this "
                                        "file"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV (column labels with units)."),
    ) -> None:
        """Reports: GPU-hours, utilisation, waiting times, energy and CO2, support requests,
        idle GPUs; the funder report and the yearly report document (operators)."""
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
        if section is not None and name != "funder":
            raise InvalidInput(f"the {name} report has no --section", field="section",
                               hint="--section is for the funder report.")
        yearly_only = {"--year": year, "--out": out, "--pdf": pdf}
        if name != "yearly" and any(v is not None for v in yearly_only.values()):
            option = next(k for k, v in yearly_only.items() if v is not None)
            raise InvalidInput(f"the {name} report has no {option}", field=option[2:],
                               hint="--year, --out and --pdf are for the yearly report.")
        if name == "yearly":
            given = {"--by": by, "--period": period, "--from": start, "--to": end,
                     "--section": section}
            extra = next((k for k, v in given.items() if v is not None), None)
            if extra is not None or as_csv:
                option = extra or "--csv"
                raise InvalidInput(f"the yearly report has no {option}",
                                   field=option[2:],
                                   hint="Give --year with --out and/or --pdf, or --json.")
            _yearly(year, out, pdf, as_json)
            return
        params: dict[str, Any] = {"from": start, "to": end}
        if name == "funder":
            if by is not None or period is not None:
                raise InvalidInput("the funder report has no --by or --period",
                                   field="by" if by is not None else "period",
                                   hint="Give --from and --to; --section for one part.")
            _funder(params, section, as_json, as_csv)
            return
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

"""``rechenwerk reservation create|list|delete``: advance reservations of GPUs through the
REST API (operators create and delete; everyone lists the ones that concern them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput


def _call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def parse_when(value: str, *, field: str, now: datetime | None = None) -> datetime:
    """``now``, ``+2h`` / ``+30m`` / ``+1d`` (from now) or an ISO time (UTC if no zone)."""
    now = now or datetime.now(UTC)
    text = value.strip()
    if text == "now":
        return now
    if text.startswith("+"):
        from rechenwerk.jobs.specs import parse_duration

        return now + timedelta(seconds=parse_duration(text[1:], field=field))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"cannot read {field} {value!r} as a time", field=field,
                           hint="use 'now', '+2h', or an ISO time like 2026-12-07T14:00") \
            from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    resv = typer.Typer(help="Advance reservations of GPUs (operators create and delete).",
                       no_args_is_help=True)
    app.add_typer(resv, name="reservation")

    @resv.command("create")
    @handle_errors
    def create(
        name: str = typer.Argument(..., help="A unique name (also the Slurm reservation's)."),
        start: str = typer.Option(..., "--start", help="'now', '+2h' or an ISO time (UTC)."),
        end: str | None = typer.Option(None, "--end", help="ISO time or '+6h'."),
        duration: str | None = typer.Option(None, "--duration", help="Instead of --end: 6h."),
        project: list[str] = typer.Option([], "--project", "-p",
                                          help="A project it is for (repeatable)."),
        maintenance: bool = typer.Option(False, "--maintenance",
                                         help="Maintenance: no jobs run in it."),
        gpus: int | None = typer.Option(None, "--gpus", help="How many GPUs."),
        gpu_type: str | None = typer.Option(None, "--gpu-type"),
        node: list[str] = typer.Option([], "--node", "-n", help="A node to hold (repeatable)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Reserve GPUs for a window: by count (--gpus, --gpu-type) or named nodes."""
        at = parse_when(start, field="start")
        if (end is None) == (duration is None):
            raise InvalidInput("give either --end or --duration", field="end")
        if duration is not None:
            from rechenwerk.jobs.specs import parse_duration

            until = at + timedelta(seconds=parse_duration(duration, field="duration"))
        else:
            assert end is not None
            until = parse_when(end, field="end")
        body = {"name": name, "start": at.isoformat(), "end": until.isoformat(),
                "projects": project, "maintenance": maintenance, "gpus": gpus,
                "gpu_type": gpu_type, "nodes": node}
        r = _call("POST", "/api/v1/reservations", json=body)
        if as_json:
            print_json(r)
            return
        held = ", ".join(f"{n['node']}:{n['gpus']}" for n in r["nodes"])
        who = "maintenance" if r["maintenance"] else "projects " + ", ".join(r["projects"])
        console.print(f"reservation {r['name']} created: {r['gpus']} GPUs ({held}) for {who}, "
                      f"{r['start']} to {r['end']}", highlight=False)

    @resv.command("list")
    @handle_errors
    def list_(ended: bool = typer.Option(False, "--ended", help="Include ended ones."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Reservations that concern you (operators: all)."""
        data = _call("GET", "/api/v1/reservations", params={"ended": ended or None})
        if as_json:
            print_json(data)
            return
        print_table(["NAME", "START", "END", "GPUS", "NODES", "FOR"],
                    [[r["name"], r["start"][:16].replace("T", " "),
                      r["end"][:16].replace("T", " "), r["gpus"],
                      ",".join(f"{n['node']}:{n['gpus']}" for n in r["nodes"]),
                      "maintenance" if r["maintenance"] else ",".join(r["projects"])]
                     for r in data["items"]], title="reservations")

    @resv.command("delete")
    @handle_errors
    def delete(name: str) -> None:
        """Delete a reservation (operators); its waiting jobs stay pending."""
        _call("DELETE", f"/api/v1/reservations/{name}")
        console.print(f"reservation {name} deleted", highlight=False)

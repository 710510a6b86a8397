"""``call-type``: the rules each kind of call holds its proposals to (list, show, create,
and the EuroHPC AI Factory presets). Every command that prints data has ``--json``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer

from rechenwerk.access.call_type_rules import EUROHPC_TYPES
from rechenwerk.cli.access_output import (
    JSON_OPT,
    LIMIT_OPT,
    OFFSET_OPT,
    page,
    print_call_type,
    server_call,
    show,
)
from rechenwerk.cli.output import handle_errors
from rechenwerk.errors import InvalidInput

PRESETS = {t.key: t for t in EUROHPC_TYPES}


def _preset_body(key: str) -> dict[str, Any]:
    spec = PRESETS.get(key)
    if spec is None:
        raise InvalidInput(f"no preset {key!r}", field="preset",
                           hint="Presets: " + ", ".join(PRESETS) + ".")
    body = asdict(spec)
    for name in ("duration_months", "eligible_kinds", "review_steps"):
        body[name] = list(body[name])
    return body


def register(app: typer.Typer) -> None:
    ct = typer.Typer(help="Call types: GPU-hour range, durations, eligibility, review "
                          "steps and decision deadline of each kind of call.",
                     no_args_is_help=True)
    app.add_typer(ct, name="call-type")

    @ct.command("list")
    @handle_errors
    def call_type_list(limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                       as_json: bool = JSON_OPT) -> None:
        """List call types."""
        data = server_call("GET", "/api/v1/call-types",
                           params={"limit": limit, "offset": offset})
        page(data, as_json, ["key", "title", "GPU-hours", "months", "decision", "submission"],
             lambda t: (t["key"], t["title"], _range(t),
                        ", ".join(map(str, t["duration_months"])) or "-",
                        f"{t['decision_working_days']} working days",
                        t["submission_mode"] + (f" ({t['cutoff_period']})"
                                                if t["cutoff_period"] else "")), "call types")

    @ct.command("show")
    @handle_errors
    def call_type_show(ref: str = typer.Argument(..., help="Key or id."),
                       as_json: bool = JSON_OPT) -> None:
        """Show a call type's rules."""
        show(server_call("GET", f"/api/v1/call-types/{ref}"), as_json, print_call_type)

    @ct.command("create")
    @handle_errors
    def call_type_create(
        key: str = typer.Argument(None, help="e.g. fast-lane (not with --preset)."),
        preset: str = typer.Option(None, "--preset", help="Create an EuroHPC AI Factory "
                                   "type as published: " + ", ".join(PRESETS) + "."),
        title: str = typer.Option(None, "--title"),
        description: str = typer.Option("", "--description"),
        min_gpu_hours: float = typer.Option(None, "--min-gpu-hours"),
        max_gpu_hours: float = typer.Option(None, "--max-gpu-hours"),
        months: list[int] = typer.Option(None, "--months", help="An allowed duration in "
                                         "months; repeatable (default 1, 2, 3)."),
        no_duration: bool = typer.Option(False, "--no-duration",
                                         help="Proposals give no duration."),
        eligible: list[str] = typer.Option(None, "--eligible",
                                           help="Organisation kind; repeatable (default all)."),
        countries: str = typer.Option("any", "--countries",
                                      help="any | eu | eu_and_horizon_associated"),
        steps: list[str] = typer.Option(None, "--step", help="A review step, in order; "
                                        "repeatable (default all six)."),
        decision_days: int = typer.Option(10, "--decision-days",
                                          help="Decision deadline in working days."),
        mode: str = typer.Option("window", "--submission", help="window | cutoffs | rolling"),
        cutoff: str = typer.Option(None, "--cutoff", help="monthly | quarterly (with "
                                   "--submission cutoffs)"),
        min_reviews: int = typer.Option(1, "--min-reviews", help="Submitted reviews the "
                                        "scientific step needs (1..20)."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Create a call type (operators). Types are not changed once created."""
        if preset is not None:
            if key is not None:
                raise InvalidInput("give a KEY or --preset, not both", field="preset")
            body = _preset_body(preset)
        else:
            if key is None or title is None:
                raise InvalidInput("a new call type needs a KEY and --title", field="key",
                                   hint="Or create a published one: --preset "
                                        + "|".join(PRESETS) + ".")
            body = {"key": key, "title": title, "description": description,
                    "min_gpu_hours": min_gpu_hours, "max_gpu_hours": max_gpu_hours,
                    "countries": countries, "decision_working_days": decision_days,
                    "submission_mode": mode, "cutoff_period": cutoff,
                    "min_reviews": min_reviews}
            if no_duration and months:
                raise InvalidInput("give --months or --no-duration, not both",
                                   field="duration_months")
            if no_duration or months:
                body["duration_months"] = [] if no_duration else list(months)
            if eligible:
                body["eligible_kinds"] = list(eligible)
            if steps:
                body["review_steps"] = list(steps)
        show(server_call("POST", "/api/v1/call-types", json=body), as_json, print_call_type)


def _range(t: dict[str, Any]) -> str:
    lo, hi = t["min_gpu_hours"], t["max_gpu_hours"]
    if lo and hi:
        return f"{lo:,.0f}-{hi:,.0f}"
    if lo:
        return f">= {lo:,.0f}"
    return f"<= {hi:,.0f}" if hi else "any"

"""What the access commands (``cli/people.py``, ``cli/grants.py``) share: calling the
server, and printing its answers as tables or JSON (``--json``). httpx is imported only
when a command runs (``rechenwerk --help`` stays instant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import print_json, print_table
from rechenwerk.errors import InvalidInput

JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
LIMIT_OPT = typer.Option(50, "--limit", help="Page size (1..500).")
OFFSET_OPT = typer.Option(0, "--offset", help="Items to skip.")


def server_call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def show(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        print_json(data)
    else:
        render(data)


def page(data: dict[str, Any], as_json: bool, columns: Sequence[str],
          row: Callable[[dict[str, Any]], Sequence[Any]], title: str) -> None:
    if as_json:
        print_json(data)
        return
    shown = len(data["items"])
    print_table(columns, [row(item) for item in data["items"]],
                title=f"{title} ({data['offset'] + 1 if shown else 0}-"
                      f"{data['offset'] + shown} of {data['total']})")


def kv(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    print_table(["field", "value"], pairs, title=title)


def hours(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def day(ts: str | None) -> str:
    """ISO timestamp -> 'YYYY-MM-DD HH:MM' (just the date at midnight)."""
    if not ts:
        return ""
    text = ts[:16].replace("T", " ")
    return text[:10] if text.endswith("00:00") else text


def print_project(p: dict[str, Any]) -> None:
    kv([("slug (Slurm account)", p["slug"]), ("title", p["title"]),
         ("organisation", f"{p['organization']} ({p['organization_kind']})"),
         ("PI", p["pi"]),
         ("field of science", p.get("field_of_science_label") or "(not given)"),
         ("created", day(p["created_at"])),
         *([("approval", p["approval"] + (f": {p['approval_note']}"
                                          if p.get("approval_note") else ""))]
           if p.get("approval", "approved") != "approved" else [])],
       title=f"project {p['slug']}")
    if p.get("members") is not None:
        print_table(["member", "name", "role", "since"],
                    [(m["username"], m["full_name"], m["role"], day(m["since"]))
                     for m in p["members"]])


def print_call(c: dict[str, Any]) -> None:
    t = c["call_type"]
    kv([("slug", c["slug"]), ("title", c["title"]), ("access mode", c["access_mode"]),
         ("call type", f"{t['key']} ({t['title']})"),
         ("eligible kinds", ", ".join(c["eligible_kinds"])), ("status", c["status"]),
         ("opens", day(c["opens_at"])), ("closes", day(c["closes_at"])),
         ("max GPU-hours per proposal", hours(c["max_gpu_hours"])),
         ("durations (months)", ", ".join(map(str, t["duration_months"])) or "not asked"),
         ("decision within", f"{t['decision_working_days']} working days"
          + (f" after each {t['cutoff_period']} cut-off" if t["cutoff_period"]
             else " of submission"))], title=f"call {c['slug']}")


def print_call_type(t: dict[str, Any]) -> None:
    kv([("key", t["key"]), ("title", t["title"]), ("description", t["description"]),
         ("min GPU-hours", hours(t["min_gpu_hours"])),
         ("max GPU-hours", hours(t["max_gpu_hours"])),
         ("durations (months)", ", ".join(map(str, t["duration_months"])) or "not asked"),
         ("eligible kinds", ", ".join(t["eligible_kinds"])), ("countries", t["countries"]),
         ("review steps", " -> ".join(t["review_steps"])
          + (f" (at least {t['min_reviews']} review(s))" if "scientific" in t["review_steps"]
             else "")),
         ("decision within", f"{t['decision_working_days']} working days"),
         ("submission", t["submission_mode"]
          + (f" ({t['cutoff_period']} cut-offs)" if t["cutoff_period"] else ""))],
       title=f"call type {t['key']}")


def print_proposal(p: dict[str, Any]) -> None:
    kv([("id", p["id"]), ("title", p["title"]), ("call", p["call"]),
         ("project", f"{p['project']} ({p['organization']})"), ("applicant", p["applicant"]),
         ("state", p["state"]), ("GPU type", p["gpu_type"]),
         ("requested GPU-hours", hours(p["requested_gpu_hours"])),
         *([("duration", f"{p['duration_months']} months")] if p.get("duration_months")
           else []),
         ("submitted", day(p["submitted_at"])),
         *([("decision due", p["due_on"] + (" (overdue)" if p.get("overdue") else ""))]
           if p.get("due_on") else []),
         ("decided", day(p["decided_at"])),
         ("decision comment", p["decision_comment"]),
         *([("withdrawn", f"{day(p['withdrawn_at'])} by {p.get('withdrawn_by') or '?'}")]
           if p.get("withdrawn_at") else []),
         ("reviewers", ", ".join(p["reviewers"]))], title=f"proposal {p['id']}")
    print_estimate(p)


CHECK_TEXT = {"ok": "within the planner's ±30 %",
              "over": "request more than 30 % above the estimate",
              "under": "request under half the estimate"}


def print_estimate(p: dict[str, Any]) -> None:
    e = p.get("estimate")
    if not e:
        return
    ratio = p.get("requested_vs_estimate")
    kv([("model", f"{e['params']:.3g} parameters, {e['tokens']:.3g} tokens"),
         ("run", f"{e['gpus']:,} x {e['gpu']}"),
         ("estimated GPU-hours", hours(e["gpu_hours"])),
         ("wall-clock days", f"{e['wall_clock_days']:,.1f}"),
         ("energy (MWh)", f"{e['energy_mwh']:,.2f}"),
         ("CO2 (t CO2e)", f"{e['co2_t']:,.2f}"),
         ("memory", e["memory_message"] or ("fits" if e["memory_feasible"]
                                            else "does not fit")),
         *[("warning", w) for w in e["warnings"]],
         ("requested / estimate", "" if ratio is None else
          f"{ratio:.2f} ({CHECK_TEXT.get(e['request_check'], e['request_check'])})")],
        title=f"training-compute estimate (attached {day(e['attached_at'])})")


def load_estimate(path: Path) -> dict[str, Any]:
    """The estimator inputs from a YAML/JSON file (see examples/estimate-70b.yaml); the
    server validates the fields."""
    import json

    import yaml

    if not path.is_file():
        raise InvalidInput(f"estimate file {path} does not exist", field="estimate",
                           hint="Give a YAML or JSON file with params, tokens, gpu, gpus "
                                "(see examples/estimate-70b.yaml).")
    text = path.read_text()
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInput(f"{path} is not valid YAML/JSON{where}: "
                           f"{getattr(exc, 'problem', None) or exc}", field="estimate") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} must be a mapping of estimator inputs (params, gpu, "
                           "gpus ...)", field="estimate",
                           hint="See examples/estimate-70b.yaml and docs/planning.md.")
    return doc


def print_award(a: dict[str, Any]) -> None:
    kv([("id", a["id"]), ("project", a["project"]), ("proposal", a["proposal_id"]),
         ("GPU type", a["gpu_type"]), ("GPU-hours", hours(a["gpu_hours"])),
         ("starts", day(a["starts_at"])), ("expires", day(a["expires_at"])),
         ("carry-over limit (GPU-hours)", hours(a["carry_over_limit_gpu_hours"])),
         ("version", a.get("version", 1))],
        title=f"award {a['id']}")
    print_table(["period", "starts", "ends", "GPU-hours"],
                [(i + 1, day(p["starts_at"]), day(p["ends_at"]), hours(p["gpu_hours"]))
                 for i, p in enumerate(a["periods"])])


def print_account(a: dict[str, Any]) -> None:
    kv([("id", a["id"]), ("project", a["project"]),
         ("credit limit (EUR)", f"{a['credit_limit_eur']:,.2f}"), ("active", a["is_active"])],
        title=f"pay-per-use account {a['id']}")
    print_table(["GPU type", "EUR per GPU-hour"],
                [(g, f"{p:.2f}") for g, p in a["prices"].items()])


def money(text: str) -> str:
    """An exact EUR string of the API (``25000.00``) with thousands separators."""
    whole, _, cents = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents or '00'}"


def print_statement(st: dict[str, Any]) -> None:
    print_table(
        ["job", "name", "user", "GPU type", "GPUs", "ended", "hours", "GPU-hours",
         "EUR/GPU-h", "amount (EUR)"],
        [(i["job_id"], i["job_name"], i["user"], i["gpu_type"], i["gpus"],
          i["ended_at"][:16].replace("T", " "), i["hours"], i["gpu_hours"],
          i["eur_per_gpu_hour"], money(i["amount_eur"])) for i in st["items"]],
        title=f"statement of account {st['account_id']} ({st['project']}), {st['month']}")
    kv([("opening balance (EUR)", money(st["opening_balance_eur"])),
        (f"charged: {st['runs']} runs, {st['total_gpu_hours']} GPU-hours (EUR)",
         money(st["total_eur"])),
        ("closing balance (EUR)", money(st["closing_balance_eur"])),
        ("credit limit (EUR)", money(st["credit_limit_eur"]))])


def parse_prices(items: list[str]) -> dict[str, float]:
    from rechenwerk.errors import InvalidInput

    prices: dict[str, float] = {}
    for item in items:
        gpu, sep, value = item.partition("=")
        try:
            prices[gpu.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InvalidInput(f"cannot read price {item!r}", field="price",
                               hint="Write GPU_TYPE=EUR_PER_GPU_HOUR, e.g. --price H100=2.5")
    return prices



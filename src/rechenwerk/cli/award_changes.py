"""``award request|changes|change-show|decide-change|change-withdraw|history``: change
requests of awards (extension, supplement, early end) and the award's versions; and
``award reports|report-submit|report-review|report-get``: the status and final reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.access_output import (
    JSON_OPT,
    LIMIT_OPT,
    OFFSET_OPT,
    day,
    hours,
    kv,
    page,
    server_call,
    show,
)
from rechenwerk.cli.output import console, handle_errors, print_table
from rechenwerk.errors import InvalidInput

KINDS = {"extension": "extension", "supplement": "supplement", "early-end": "early_end",
         "early_end": "early_end", "end": "early_end"}
DECISIONS = {"approve": "approved", "approved": "approved", "reject": "rejected",
             "rejected": "rejected"}


def print_change(c: dict[str, Any]) -> None:
    asked = (f"+{hours(c['extra_gpu_hours'])} GPU-hours" if c["extra_gpu_hours"]
             else f"until {day(c['requested_until'])}")
    granted = (f"+{hours(c['granted_gpu_hours'])} GPU-hours" if c["granted_gpu_hours"]
               else f"until {day(c['granted_until'])}" if c["granted_until"] else "")
    kv([("id", c["id"]), ("award", c["award_id"]), ("project", c["project"]),
        ("kind", c["kind"].replace("_", " ")), ("state", c["state"]), ("asked", asked),
        ("reason", c["reason"]),
        ("requested", f"{day(c['requested_at'])} by {c['requested_by']}"),
        *([("decided", f"{day(c['decided_at'])} by {c['decided_by']}"),
           ("note", c["decision_note"])] if c["decided_at"] else []),
        *([("granted", granted), ("award version", c["version"])]
          if c["state"] == "approved" else [])],
       title=f"award change {c['id']}")


def _pick(value: str, choices: dict[str, str], field: str) -> str:
    if value not in choices:
        raise InvalidInput(f"{field} {value!r} is not valid", field=field,
                           hint="Use one of: " + ", ".join(sorted(set(choices))) + ".")
    return choices[value]


def register(award: typer.Typer) -> None:
    @award.command("request")
    @handle_errors
    def award_request(award_id: int = typer.Argument(...),
                      kind: str = typer.Argument(..., help="extension | supplement | "
                                                 "early-end"),
                      reason: str = typer.Option(..., "--reason", help="Why (for the "
                                                 "operator who decides)."),
                      until: str = typer.Option(None, "--until", help="The new end, ISO date "
                                                "(extension; early end, default now)."),
                      gpu_hours: float = typer.Option(None, "--gpu-hours",
                                                      help="Extra GPU-hours (supplement)."),
                      as_json: bool = JSON_OPT) -> None:
        """Ask for a change of an award of your project (PI); an operator decides."""
        c = server_call("POST", f"/api/v1/awards/{award_id}/changes", json={
            "kind": _pick(kind, KINDS, "kind"), "reason": reason, "until": until,
            "gpu_hours": gpu_hours})
        show(c, as_json, print_change)

    @award.command("changes")
    @handle_errors
    def award_changes(award_id: int = typer.Option(None, "--award"),
                      state: str = typer.Option(None, "--state", help="requested | approved "
                                                "| rejected | withdrawn"),
                      limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                      as_json: bool = JSON_OPT) -> None:
        """List change requests (operators: all; others: their projects')."""
        data = server_call("GET", "/api/v1/award-changes", params={
            "award": award_id, "state": state, "limit": limit, "offset": offset})
        page(data, as_json, ["id", "award", "project", "kind", "state", "asked", "requested"],
             lambda c: (c["id"], c["award_id"], c["project"], c["kind"].replace("_", " "),
                        c["state"], f"+{hours(c['extra_gpu_hours'])}" if c["extra_gpu_hours"]
                        else day(c["requested_until"]), day(c["requested_at"])),
             "award changes")

    @award.command("change-show")
    @handle_errors
    def award_change_show(change_id: int = typer.Argument(...),
                          as_json: bool = JSON_OPT) -> None:
        """Show a change request and its decision."""
        show(server_call("GET", f"/api/v1/award-changes/{change_id}"), as_json, print_change)

    @award.command("decide-change")
    @handle_errors
    def award_decide_change(change_id: int = typer.Argument(...),
                            decision: str = typer.Argument(..., help="approve | reject"),
                            note: str = typer.Option(..., "--note", help="For the PI."),
                            until: str = typer.Option(None, "--until",
                                                      help="Grant another end."),
                            gpu_hours: float = typer.Option(None, "--gpu-hours",
                                                            help="Grant fewer GPU-hours."),
                            as_json: bool = JSON_OPT) -> None:
        """Approve or reject a change request (operators)."""
        c = server_call("POST", f"/api/v1/award-changes/{change_id}/decision", json={
            "decision": _pick(decision, DECISIONS, "decision"), "note": note,
            "until": until, "gpu_hours": gpu_hours})
        show(c, as_json, print_change)

    @award.command("change-withdraw")
    @handle_errors
    def award_change_withdraw(change_id: int = typer.Argument(...),
                              as_json: bool = JSON_OPT) -> None:
        """Take an open change request back (PI)."""
        show(server_call("POST", f"/api/v1/award-changes/{change_id}/withdraw"), as_json,
             print_change)

    @award.command("history")
    @handle_errors
    def award_history(award_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """The award as awarded and after each approved change."""
        data = server_call("GET", f"/api/v1/awards/{award_id}/versions")
        if as_json:
            console.print_json(data=data)
            return
        print_table(["version", "change", "GPU-hours", "ends", "periods", "since"],
                    [(v["version"], v["change_id"] or "awarded", hours(v["gpu_hours"]),
                      day(v["expires_at"]), len(v["periods"]), day(v["created_at"]))
                     for v in data])


def _task_name(t: dict[str, Any]) -> str:
    return ("final report" if t["kind"] == "final"
            else f"status report, period {t['period_index'] + 1}")


def print_task(t: dict[str, Any]) -> None:
    kv([("id", t["id"]), ("award", t["award_id"]), ("project", t["project"]),
        ("report", _task_name(t)),
        ("due", t["due_on"] + (" (overdue)" if t["overdue"] else "")), ("state", t["state"]),
        ("submitted", day(t["submitted_at"])), ("summary", t["summary"]),
        ("publications", "; ".join(f"{p['doi']} {p['title']}" for p in t["publications"])),
        ("document", f"{t['document_name']} ({t['document_bytes']:,} bytes)"
         if t["document_name"] else ""),
        ("review note", t["review_note"])], title=f"report task {t['id']}")


def register_reports(award: typer.Typer) -> None:
    @award.command("reports")
    @handle_errors
    def award_reports(award_id: int = typer.Option(None, "--award"),
                      state: str = typer.Option(None, "--state",
                                                help="open | submitted | accepted"),
                      overdue: bool = typer.Option(False, "--overdue",
                                                   help="Only open ones past their due date."),
                      limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                      as_json: bool = JSON_OPT) -> None:
        """Status and final reports owed (operators: all; others: their projects')."""
        data = server_call("GET", "/api/v1/report-tasks", params={
            "award": award_id, "state": state, "overdue": "true" if overdue else None,
            "limit": limit, "offset": offset})
        page(data, as_json, ["id", "award", "project", "report", "due", "state"],
             lambda t: (t["id"], t["award_id"], t["project"], _task_name(t),
                        t["due_on"] + (" overdue" if t["overdue"] else ""), t["state"]),
             "award reports")

    @award.command("report-submit")
    @handle_errors
    def award_report_submit(
        task_id: int = typer.Argument(...),
        summary: str = typer.Option(..., "--summary", help="Results and use of the "
                                    "GPU-hours."),
        publications: list[str] = typer.Option(None, "--publication", help='"DOI title"; '
                                               "repeatable."),
        document: Path = typer.Option(None, "--file", help="The report as PDF."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Submit a report of your award (PI), with its PDF."""
        pubs = []
        for i, line in enumerate(publications or []):
            doi, _, title = line.strip().partition(" ")
            if not title.strip():
                raise InvalidInput(f"publication {i + 1}: give the DOI, a space and the "
                                   "title", field="publications",
                                   hint='--publication "10.1234/abc.5678 The title"')
            pubs.append({"doi": doi, "title": title.strip()})
        if document is not None:
            try:
                data = document.read_bytes()
            except OSError as exc:
                raise InvalidInput(f"--file {document}: {exc.strerror or exc}",
                                   field="document") from None
            server_call("PUT", f"/api/v1/report-tasks/{task_id}/document", content=data,
                        content_type="application/pdf", params={"name": document.name})
        t = server_call("POST", f"/api/v1/report-tasks/{task_id}/submit",
                        json={"summary": summary, "publications": pubs})
        show(t, as_json, print_task)

    @award.command("report-review")
    @handle_errors
    def award_report_review(task_id: int = typer.Argument(...),
                            decision: str = typer.Argument(..., help="accept | return"),
                            note: str = typer.Option("", "--note",
                                                     help="Required to return it."),
                            as_json: bool = JSON_OPT) -> None:
        """Accept a submitted report or return it for changes (operators)."""
        choice = _pick(decision, {"accept": "accepted", "accepted": "accepted",
                                  "return": "returned", "returned": "returned"}, "decision")
        t = server_call("POST", f"/api/v1/report-tasks/{task_id}/review",
                        json={"decision": choice, "note": note})
        show(t, as_json, print_task)

    @award.command("report-get")
    @handle_errors
    def award_report_get(task_id: int = typer.Argument(...),
                         out: Path = typer.Option(..., "--out", help="Where to write the PDF.")
                         ) -> None:
        """Download a report's PDF."""
        data = server_call("GET", f"/api/v1/report-tasks/{task_id}/document", raw=True)
        out.write_bytes(data)
        console.print(f"wrote {out} ({len(data):,} bytes)")

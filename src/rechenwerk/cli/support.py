"""``rechenwerk support open|list|show|reply|assign|close|reopen``: support requests
through the REST API (``/api/v1/support/requests``). Members open requests for their
projects; operators assign, answer and close them (docs/support.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

BASE = "/api/v1/support/requests"
MAX_TEXT_BYTES = 64 * 1024  # the server takes 20,000 characters; read a little more
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def message_text(text: str | None, file: str | None, *, field: str, required: bool = True) -> str:
    """The text of ``--body``/``--comment``, or of ``--file`` (``-`` reads stdin)."""
    if text is not None and file is not None:
        raise InvalidInput(f"give --{field} or --file, not both", field=field)
    if file is None:
        if text is None and required:
            raise InvalidInput(
                f"--{field} (or --file) is required",
                field=field,
                hint="Write it inline or in a file: --file message.txt.",
            )
        return text or ""
    try:
        data = (
            sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
            if file == "-"
            else Path(file).read_bytes()[: MAX_TEXT_BYTES + 1]
        )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}", field="file") from None


def _show(r: dict[str, Any]) -> None:
    console.print(f"support request {r['id']}: {r['subject']}", highlight=False)
    console.print(
        f"  project {r['project']}, {r['kind']}, {r['state']}, requested by "
        f"{r['requester']}, assigned to {r['assignee'] or 'nobody'}",
        highlight=False,
    )
    console.print(
        f"  opened {r['created_at'][:16].replace('T', ' ')} UTC"
        + (
            f", first answer {r['first_answered_at'][:16].replace('T', ' ')} UTC"
            if r["first_answered_at"]
            else ""
        )
        + (f", closed {r['closed_at'][:16].replace('T', ' ')} UTC" if r["closed_at"] else ""),
        highlight=False,
    )
    for m in r.get("messages") or ():
        who = f"{m['author']} (operator)" if m["from_operator"] else m["author"]
        console.print(f"\n--- {who}, {m['created_at'][:16].replace('T', ' ')} UTC", highlight=False)
        console.print(m["body"], highlight=False, markup=False)


def _done(r: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(r)
    else:
        console.print(f"support request {r['id']} {what}; state {r['state']}", highlight=False)


def register(app: typer.Typer) -> None:
    sup = typer.Typer(
        help="Support requests: ask the centre's operators for help with a project.",
        no_args_is_help=True,
    )
    app.add_typer(sup, name="support")

    @sup.command("open")
    @handle_errors
    def open_(
        project: str = typer.Option(..., "--project", "-p", help="Your project's slug."),
        kind: str = typer.Option(..., "--kind", "-k", help="onboarding, porting, data or other"),
        subject: str = typer.Option(..., "--subject", "-s", help="One line."),
        body: str | None = typer.Option(None, "--body", "-b", help="What you need."),
        file: str | None = typer.Option(
            None, "--file", "-f", help="Read the body from FILE ('-': stdin)."
        ),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Open a support request for a project you are a member of."""
        text = message_text(body, file, field="body")
        r = _call(
            "POST", BASE, json={"project": project, "kind": kind, "subject": subject, "body": text}
        )
        _done(r, as_json, "opened")

    @sup.command("list")
    @handle_errors
    def list_(
        state: str | None = typer.Option(
            None, "--state", help="open, assigned, answered, closed, or active (all but closed)"
        ),
        kind: str | None = typer.Option(None, "--kind", "-k"),
        project: str | None = typer.Option(None, "--project", "-p"),
        assignee: str | None = typer.Option(
            None, "--assignee", help="an operator's username, or none"
        ),
        limit: int = typer.Option(50, "--limit", min=1, max=500),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Requests you opened or of projects you are PI of (operators: all)."""
        data = _call(
            "GET",
            BASE,
            params={
                "state": state,
                "kind": kind,
                "project": project,
                "assignee": assignee,
                "limit": limit,
            },
        )
        if as_json:
            print_json(data)
            return
        print_table(
            ["ID", "OPENED", "PROJECT", "KIND", "STATE", "REQUESTER", "ASSIGNEE", "SUBJECT"],
            [
                [
                    r["id"],
                    r["created_at"][:16].replace("T", " "),
                    r["project"],
                    r["kind"],
                    r["state"],
                    r["requester"],
                    r["assignee"] or "",
                    r["subject"],
                ]
                for r in data["items"]
            ],
            title=f"support requests ({data['total']})",
        )
        if not data["items"]:
            console.print("[dim]none; open one with `rechenwerk support open`[/]")

    @sup.command("show")
    @handle_errors
    def show(
        request_id: int = typer.Argument(..., help="The request's number."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """A request with its conversation."""
        r = _call("GET", f"{BASE}/{request_id}")
        if as_json:
            print_json(r)
        else:
            _show(r)

    @sup.command("reply")
    @handle_errors
    def reply(
        request_id: int = typer.Argument(...),
        body: str | None = typer.Option(None, "--body", "-b"),
        file: str | None = typer.Option(
            None, "--file", "-f", help="Read the reply from FILE ('-': stdin)."
        ),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Reply; an operator's reply answers the request, yours reopens a closed one."""
        text = message_text(body, file, field="body")
        r = _call("POST", f"{BASE}/{request_id}/replies", json={"body": text})
        _done(r, as_json, "replied to")

    @sup.command("assign")
    @handle_errors
    def assign(
        request_id: int = typer.Argument(...),
        to: str | None = typer.Option(None, "--to", help="An operator (default: you)."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Assign a request to an operator (operators)."""
        r = _call("POST", f"{BASE}/{request_id}/assign", json={"assignee": to})
        _done(r, as_json, f"assigned to {r['assignee']}")

    @sup.command("close")
    @handle_errors
    def close(
        request_id: int = typer.Argument(...),
        comment: str | None = typer.Option(
            None, "--comment", "-c", help="Optional; becomes the last message."
        ),
        file: str | None = typer.Option(
            None, "--file", "-f", help="Read the comment from FILE ('-': stdin)."
        ),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Close a request (it can be reopened, or reopens with a reply)."""
        text = message_text(comment, file, field="comment", required=False)
        r = _call("POST", f"{BASE}/{request_id}/close", json={"comment": text})
        _done(r, as_json, "closed")

    @sup.command("reopen")
    @handle_errors
    def reopen(request_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Reopen a closed request."""
        r = _call("POST", f"{BASE}/{request_id}/reopen")
        _done(r, as_json, "reopened")

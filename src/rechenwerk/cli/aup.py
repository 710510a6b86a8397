"""The acceptable-use policy: ``rechenwerk aup show|accept`` (through the API, as the
logged-in user) and ``rechenwerk admin aup publish|list`` (operators, on the database
directly like the other ``admin`` commands; the REST API's ``POST /api/v1/aup`` does
the same for operators without database access)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.access_output import JSON_OPT, server_call, show
from rechenwerk.cli.admin import admin_app, db_session
from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

aup_app = typer.Typer(help="The centre's acceptable-use policy.", no_args_is_help=True)
admin_aup_app = typer.Typer(help="Publish the acceptable-use policy (direct database "
                            "access).", no_args_is_help=True)
admin_app.add_typer(admin_aup_app, name="aup")


def _print_aup(a: dict[str, Any]) -> None:
    console.print(f"Acceptable-use policy, version {a['version']} (published "
                  f"{a['published_at'][:10]} by {a['published_by']})\n", highlight=False)
    console.print(a["text"], highlight=False, markup=False, soft_wrap=True)
    state = (f"\nyou accepted it on {a['accepted_at'][:10]}" if a["accepted_at"]
             else "\nnot accepted yet: run `rechenwerk aup accept`")
    console.print(state, highlight=False)


@aup_app.command("show")
@handle_errors
def aup_show(as_json: bool = JSON_OPT) -> None:
    """Show the centre's current acceptable-use policy and whether you accepted it."""
    show(server_call("GET", "/api/v1/aup"), as_json, _print_aup)


@aup_app.command("accept")
@handle_errors
def aup_accept(
    yes: bool = typer.Option(False, "--yes", "-y",
                             help="Accept without asking (you have read the text)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show the current acceptable-use policy and accept it."""
    current = server_call("GET", "/api/v1/aup")
    if current["accepted_at"]:
        show(current, as_json, lambda a: console.print(
            f"you accepted version {a['version']} on {a['accepted_at'][:10]} already",
            highlight=False))
        return
    if not yes:
        _print_aup(current)
        if not typer.confirm(f"Accept version {current['version']}?"):
            raise InvalidInput("not accepted", hint="Run `rechenwerk aup accept` again "
                               "when you agree to the policy.")
    done = server_call("POST", "/api/v1/aup/accept", json={"version": current["version"]})
    show(done, as_json, lambda a: console.print(
        f"accepted the acceptable-use policy, version {a['version']}", highlight=False))


@admin_aup_app.command("publish")
@handle_errors
def admin_aup_publish(
    file: Path = typer.Option(..., "--file", help="The policy's text (UTF-8)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Publish FILE as the next AUP version: every user must accept it (again)."""
    from rechenwerk.access.aup import publish_aup
    from rechenwerk.clock import utcnow

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}", field="--file") from None
    with db_session() as session:
        aup = publish_aup(session, None, text, now=utcnow())
        out = {"version": aup.version, "published_at": aup.published_at.isoformat(),
               "characters": len(aup.text)}
    if as_json:
        print_json(out)
    else:
        console.print(f"published the acceptable-use policy, version {out['version']} "
                      f"({out['characters']} characters); every user must accept it",
                      highlight=False)


@admin_aup_app.command("list")
@handle_errors
def admin_aup_list(as_json: bool = JSON_OPT) -> None:
    """Published versions and how many users accepted each."""
    from sqlalchemy import func, select

    from rechenwerk.access.models import AupAcceptance, AupVersion

    with db_session() as session:
        found = session.execute(
            select(AupVersion.version, AupVersion.published_at, AupVersion.published_by,
                   func.count(AupAcceptance.id))
            .outerjoin(AupAcceptance, AupAcceptance.version == AupVersion.version)
            .group_by(AupVersion.version, AupVersion.published_at, AupVersion.published_by)
            .order_by(AupVersion.version.desc())).all()
    rows: list[dict[str, Any]] = [
        {"version": v, "published_at": at.isoformat(), "published_by": by,
         "accepted_by": int(n)} for v, at, by, n in found]
    if as_json:
        print_json(rows)
        return
    print_table(["version", "published", "by", "accepted by"],
                [(r["version"], r["published_at"][:19].replace("T", " "),
                  r["published_by"], r["accepted_by"]) for r in rows],
                title="acceptable-use policy versions")


def register(app: typer.Typer) -> None:
    app.add_typer(aup_app, name="aup")

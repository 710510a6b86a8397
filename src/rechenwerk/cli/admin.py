"""``rechenwerk admin``: operator commands.

``db upgrade``, ``demo``, ``user create`` and ``token create`` act on the database named
by ``RECHENWERK_DATABASE_URL`` directly (they bootstrap a centre before any token exists);
``audit`` goes through the API like every other query. Other domains may add commands to
:data:`admin_app`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")

admin_app = typer.Typer(help="Operator commands: database, demo data, users, tokens, audit.",
                        no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Users (direct database access).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (direct database access).", no_args_is_help=True)
admin_app.add_typer(db_app, name="db")
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(token_app, name="token")


@contextmanager
def db_session() -> Iterator[Session]:
    """One transaction on the configured database; a missing schema becomes a clear error."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from rechenwerk.config import get_settings
    from rechenwerk.errors import ServiceUnavailable
    from rechenwerk.store.session import make_engine, make_session_factory, session_scope

    url = get_settings().effective_database_url
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    except (OperationalError, ProgrammingError) as exc:
        raise ServiceUnavailable(
            f"database {engine.url.render_as_string(hide_password=True)} is not usable: "
            f"{str(exc.orig).strip().splitlines()[0]}",
            hint="Create or migrate it with `rechenwerk admin db upgrade`.",
        ) from exc
    finally:
        engine.dispose()


def _now() -> Any:
    from rechenwerk.clock import utcnow

    return utcnow()


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: str = typer.Option("head", "--revision")) -> None:
    """Migrate the database to the newest schema (Alembic)."""
    from rechenwerk.config import get_settings
    from rechenwerk.store.migrate import upgrade

    url = get_settings().effective_database_url
    upgrade(url, revision)
    console.print(f"database at {url.split('@')[-1]} is at revision {revision}",
                  highlight=False)


@db_app.command("downgrade")
@handle_errors
def db_downgrade(
    revision: str = typer.Argument(..., help="Revision to go back to (see `admin db "
                                   "current`), e.g. the previous release's newest."),
) -> None:
    """Undo migrations down to REVISION (before installing an older release; back up
    first: data in tables and columns that newer migrations added is dropped)."""
    from rechenwerk.config import get_settings
    from rechenwerk.errors import InvalidInput
    from rechenwerk.store.migrate import current, downgrade, revisions

    known = [rev for rev, _ in revisions()]
    if revision not in known and revision != "base":
        raise InvalidInput(f"unknown revision {revision!r}", field="revision",
                           hint=f"One of: {', '.join(known)} (or base).")
    url = get_settings().effective_database_url
    downgrade(url, revision)
    at = ", ".join(current(url)) or "base (empty)"
    console.print(f"database at {url.split('@')[-1]} is at revision {at}", highlight=False)


@db_app.command("current")
@handle_errors
def db_current(as_json: bool = JSON_OPT) -> None:
    """The database's revision and every migration this release has (newest last)."""
    from rechenwerk.config import get_settings
    from rechenwerk.store.migrate import current, revisions

    url = get_settings().effective_database_url
    at = current(url)
    known = revisions()
    head = known[-1][0] if known else None
    if as_json:
        print_json({"current": at, "head": head,
                    "revisions": [{"revision": r, "description": d} for r, d in known]})
        return
    state = ("up to date" if at == [head] else
             "not migrated: run `rechenwerk admin db upgrade`" if not at else
             "behind: run `rechenwerk admin db upgrade`" if set(at) <= {r for r, _ in known}
             else "newer than this release (downgrade with the release that has it)")
    console.print(f"database at {url.split('@')[-1]}: revision "
                  f"{', '.join(at) or '(none)'}, {state}", highlight=False)
    print_table(["revision", "description", ""],
                [(r, d, "<- current" if r in at else "") for r, d in known],
                title="migrations of this release")


@admin_app.command("demo")
@handle_errors
def demo(
    if_empty: bool = typer.Option(False, "--if-empty",
                                  help="Do nothing (exit 0) when the database has data."),
    tokens_file: Path = typer.Option(None, "--tokens-file",
                                     help="Where to write the demo API tokens "
                                          "(default: <data dir>/demo-tokens.json)."),
    history: bool = typer.Option(True, "--history/--no-history",
                                 help="Also three weeks of finished jobs, charged, so "
                                      "balances, charts and reports show something."),
    as_json: bool = JSON_OPT,
) -> None:
    """Load demo organisations, users, projects, calls, proposals and awards."""
    from rechenwerk.access.demo import demo_password, is_empty, load_demo
    from rechenwerk.config import get_settings
    from rechenwerk.errors import Conflict
    from rechenwerk.jobs.demo_history import add_demo_history

    with db_session() as session:
        if not is_empty(session):
            if if_empty:
                console.print("database already holds data: demo not loaded")
                return
            raise Conflict("the database is not empty", hint="Use --if-empty to skip, or "
                           "point RECHENWERK_DATABASE_URL at an empty database.")
        result = load_demo(session, now=_now())
        past_jobs = add_demo_history(session, now=_now()) if history else 0
    path = tokens_file or get_settings().data_dir / "demo-tokens.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.tokens, indent=2) + "\n")
    path.chmod(0o600)
    if as_json:
        print_json({"tokens": result.tokens, "tokens_file": str(path),
                    "projects": result.projects, "calls": result.calls,
                    "past_jobs": past_jobs})
        return
    console.print(f"demo loaded: {result.organizations} organisations, {result.users} users, "
                  f"{len(result.projects)} projects, {len(result.calls)} calls, "
                  f"{result.proposals} proposals, {result.awards} awards, "
                  f"{result.support_requests} support requests, {past_jobs} finished jobs "
                  "of the last three weeks", highlight=False)
    # Plain lines, not a table: tokens must never be truncated.
    console.print(f"demo credentials (passwords for the demo only; tokens also in {path}):",
                  highlight=False)
    for username, secret in result.tokens.items():
        console.print(f"  {username:<10} {demo_password(username):<16} {secret}",
                      highlight=False, soft_wrap=True)
    console.print("log in with: rechenwerk login --token <token of operator>", highlight=False)


@user_app.command("create")
@handle_errors
def user_create(
    username: str = typer.Argument(...),
    email: str = typer.Option(..., "--email"),
    full_name: str = typer.Option("", "--name"),
    organization: str = typer.Option(None, "--org", help="Organisation name or id."),
    operator: bool = typer.Option(False, "--operator"),
    reviewer: bool = typer.Option(False, "--reviewer"),
    password: str = typer.Option(None, "--password",
                                 help="For the web portal (argon2-hashed)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Create a user directly in the database (bootstrap the first operator with this)."""
    from rechenwerk.access.schemas import UserOut
    from rechenwerk.access.users import create_user

    with db_session() as session:
        user = create_user(session, None, username=username, email=email, full_name=full_name,
                           organization=organization, is_operator=operator,
                           is_reviewer=reviewer, password=password, now=_now())
        out = UserOut.of(user).model_dump(mode="json")
    if as_json:
        print_json(out)
    else:
        console.print(f"created user {out['username']} (id {out['id']})", highlight=False)


@user_app.command("password")
@handle_errors
def user_password(
    username: str = typer.Argument(...),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 confirmation_prompt=True, help="At least 8 characters."),
) -> None:
    """Set a user's portal password (argon2-hashed)."""
    from rechenwerk.access.users import get_user, set_password

    with db_session() as session:
        set_password(session, None, get_user(session, username), password, now=_now())
    console.print(f"password of {username} set", highlight=False)


@user_app.command("list")
@handle_errors
def user_list(as_json: bool = JSON_OPT) -> None:
    """List all users (direct database access)."""
    from sqlalchemy import select

    from rechenwerk.access.models import User
    from rechenwerk.access.schemas import UserOut

    with db_session() as session:
        users = [UserOut.of(u).model_dump(mode="json")
                 for u in session.scalars(select(User).order_by(User.username))]
    if as_json:
        print_json(users)
        return
    print_table(["username", "name", "organisation", "operator", "reviewer", "active"],
                [(u["username"], u["full_name"], u["organization"], u["is_operator"],
                  u["is_reviewer"], u["is_active"]) for u in users], title="users")


@token_app.command("create")
@handle_errors
def token_create(
    username: str = typer.Argument(...),
    name: str = typer.Option("cli", "--name"),
    days: float = typer.Option(None, "--days", help="Expires after N days (default: never)."),
    scope: str = typer.Option("full", "--scope", help="full, or read: GET requests only."),
    as_json: bool = JSON_OPT,
) -> None:
    """Create an API token for a user; the secret is printed once."""
    from datetime import timedelta

    from rechenwerk.access.security import create_token
    from rechenwerk.access.users import get_user
    from rechenwerk.errors import InvalidInput

    if days is not None and days <= 0:
        raise InvalidInput(f"--days must be > 0, got {days}", field="days")
    now = _now()
    with db_session() as session:
        user = get_user(session, username)
        token, secret = create_token(session, user, name=name, now=now, scope=scope,
                                     expires_at=now + timedelta(days=days) if days else None)
        token_id = token.id
    if as_json:
        print_json({"id": token_id, "user": username, "name": name, "scope": scope,
                    "token": secret})
    else:
        console.print(f"token {token_id} for {username}: {secret}", highlight=False)


@admin_app.command("audit")
@handle_errors
def audit(
    entity: str = typer.Option(None, "--entity", help="project, proposal, award, account, ..."),
    entity_id: str = typer.Option(None, "--id"),
    actor: str = typer.Option(None, "--actor"),
    action: str = typer.Option(None, "--action", help="Prefix, e.g. proposal."),
    since: str = typer.Option(None, "--since", help="ISO date/time"),
    limit: int = typer.Option(50, "--limit"),
    offset: int = typer.Option(0, "--offset"),
    as_json: bool = JSON_OPT,
) -> None:
    """Who changed what and when (operators; newest first)."""
    from rechenwerk.cli.client import call

    data = call("GET", "/api/v1/audit", params={
        "entity": entity, "entity_id": entity_id, "actor": actor, "action": action,
        "since": since, "limit": limit, "offset": offset})
    if as_json:
        print_json(data)
        return
    print_table(["at", "actor", "action", "entity", "changes"],
                [(e["at"][:19].replace("T", " "), e["actor"], e["action"],
                  f"{e['entity']} {e['entity_id']}",
                  json.dumps(e["changes"], ensure_ascii=False)[:120])
                 for e in data["items"]],
                title=f"audit log ({len(data['items'])} of {data['total']})")


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")

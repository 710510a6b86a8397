"""People and projects on the server: ``login``, ``whoami``, ``org``, ``user``,
``project``, ``token``. Every command that prints data has ``--json``."""

from __future__ import annotations

from typing import Any

import typer

from rechenwerk.cli.access_output import (
    JSON_OPT,
    LIMIT_OPT,
    OFFSET_OPT,
    day,
    kv,
    page,
    print_project,
    server_call,
    show,
)
from rechenwerk.cli.output import console, handle_errors, print_table
from rechenwerk.errors import InvalidInput


def _pending_aup(http: Any) -> int | None:
    """The current AUP version when the user has not accepted it yet (None: accepted, or
    the centre has none, or a server without the AUP API)."""
    from rechenwerk.cli.client import call
    from rechenwerk.errors import NotFound

    try:
        current = call("GET", "/api/v1/aup", client=http)
    except NotFound:
        return None
    return None if current.get("accepted_at") else int(current["version"])


def register(app: typer.Typer) -> None:
    # ------------------------------------------------------------------ login, whoami

    @app.command("login")
    @handle_errors
    def login(
        url: str = typer.Option(None, "--url", help="Server URL (default: current setting)."),
        token: str = typer.Option(None, "--token", help="API token (prompted if omitted)."),
        username: str = typer.Option(
            None, "--username", "-u",
            help="Log in with your portal password instead: a new API token is created."),
        sso: bool = typer.Option(
            False, "--sso", help="Sign in at your institution's provider (OpenID Connect "
            "device flow: a URL and a code to enter in any browser); a new API token."),
        provider: str = typer.Option(
            None, "--provider", help="With --sso: the provider's name (needed when the "
            "server has several; `rechenwerk login --sso --provider x`)."),
        link: str = typer.Option(
            None, "--link", help="With --sso: link the provider account to this existing "
            "local account (its password is asked as the proof)."),
    ) -> None:
        """Save the server URL and API token, after checking them with the server."""
        from rechenwerk.cli.client import api_client, call, load_credentials, save_credentials

        base = (url or load_credentials().url).rstrip("/")
        if sum(bool(x) for x in (username, token, sso)) > 1:
            raise InvalidInput("give only one of --token, --username and --sso",
                               field="--sso" if sso else "--username")
        if (provider or link) and not sso:
            raise InvalidInput("--provider and --link go with --sso", field="--sso")
        if sso:
            from rechenwerk.cli.sso import device_sign_in

            proof = (typer.prompt(f"Password of the local account {link}", hide_input=True)
                     if link else None)
            secret = device_sign_in(base, provider, link_username=link, link_password=proof)
        elif username:
            import socket

            password = typer.prompt(f"Password for {username}", hide_input=True)
            with api_client(url=base, token=None) as http:
                created = call("POST", "/api/v1/auth/token", client=http, json={
                    "username": username, "password": password,
                    "name": f"cli@{socket.gethostname()}"})
            secret = str(created["token"])
        else:
            secret = token or typer.prompt("API token", hide_input=True)
        with api_client(url=base, token=secret) as http:
            me = call("GET", "/api/v1/me", client=http)
            pending = _pending_aup(http)
        path = save_credentials(base, secret)
        console.print(f"logged in to {base} as [bold]{me['username']}[/] "
                      f"(credentials in {path})", highlight=False)
        if pending is not None:
            console.print(f"before you use the centre, accept its acceptable-use policy "
                          f"(version {pending}): rechenwerk aup accept", highlight=False)

    @app.command("whoami")
    @handle_errors
    def whoami(as_json: bool = JSON_OPT) -> None:
        """Show the user behind the current token and their project roles."""
        me = server_call("GET", "/api/v1/me")

        def render(u: dict[str, Any]) -> None:
            roles = [r for r, on in (("operator", u["is_operator"]),
                                     ("reviewer", u["is_reviewer"])) if on]
            kv([("username", u["username"]), ("name", u["full_name"]),
                 ("e-mail", u["email"]),
                 ("organisation", f"{u['organization'] or '-'} ({u['organization_kind'] or '-'})"),
                 ("global roles", ", ".join(roles) or "-"),
                 ("projects", ", ".join(f"{m['project']} ({m['role']})"
                                        for m in u["memberships"]) or "-")])

        show(me, as_json, render)

    # ------------------------------------------------------------------ org

    org = typer.Typer(help="Organisations (universities, institutes, SMEs, startups, ...).",
                      no_args_is_help=True)
    app.add_typer(org, name="org")

    @org.command("list")
    @handle_errors
    def org_list(kind: str = typer.Option(None, "--kind"),
                 country: str = typer.Option(None, "--country"),
                 limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                 as_json: bool = JSON_OPT) -> None:
        """List organisations."""
        data = server_call("GET", "/api/v1/organizations", params={
            "kind": kind, "country": country, "limit": limit, "offset": offset})
        page(data, as_json, ["id", "name", "kind", "country"],
              lambda o: (o["id"], o["name"], o["kind"], o["country"]), "organisations")

    @org.command("show")
    @handle_errors
    def org_show(ref: str = typer.Argument(..., help="Name or id."),
                 as_json: bool = JSON_OPT) -> None:
        """Show one organisation."""
        o = server_call("GET", f"/api/v1/organizations/{ref}")
        show(o, as_json, lambda o: kv([(k, o[k]) for k in ("id", "name", "kind", "country")]))

    @org.command("create")
    @handle_errors
    def org_create(name: str = typer.Option(..., "--name"),
                   kind: str = typer.Option(..., "--kind", help="university, "
                                            "research_institute, sme, startup, enterprise, "
                                            "public_agency"),
                   country: str = typer.Option(..., "--country", help="ISO code, e.g. DE"),
                   as_json: bool = JSON_OPT) -> None:
        """Create an organisation (operators)."""
        o = server_call("POST", "/api/v1/organizations",
                  json={"name": name, "kind": kind, "country": country})
        show(o, as_json, lambda o: console.print(f"created organisation {o['id']}: "
                                                  f"{o['name']}", highlight=False))

    # ------------------------------------------------------------------ user

    user_app = typer.Typer(help="Users and global roles (operators).", no_args_is_help=True)
    app.add_typer(user_app, name="user")

    def _print_user(u: dict[str, Any]) -> None:
        kv([("id", u["id"]), ("username", u["username"]), ("name", u["full_name"]),
             ("e-mail", u["email"]), ("organisation", u["organization"] or "-"),
             ("operator", u["is_operator"]), ("reviewer", u["is_reviewer"]),
             ("active", u["is_active"])], title=f"user {u['username']}")

    @user_app.command("list")
    @handle_errors
    def user_list(organization: str = typer.Option(None, "--org"),
                  reviewers: bool = typer.Option(None, "--reviewers/--no-reviewers"),
                  limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                  as_json: bool = JSON_OPT) -> None:
        """List users (operators)."""
        data = server_call("GET", "/api/v1/users", params={
            "organization": organization, "is_reviewer": reviewers, "limit": limit,
            "offset": offset})
        page(data, as_json, ["username", "name", "organisation", "roles", "active"],
              lambda u: (u["username"], u["full_name"], u["organization"],
                         ", ".join(r for r, on in (("operator", u["is_operator"]),
                                                   ("reviewer", u["is_reviewer"])) if on),
                         u["is_active"]), "users")

    @user_app.command("show")
    @handle_errors
    def user_show(ref: str = typer.Argument(..., help="Username or id."),
                  as_json: bool = JSON_OPT) -> None:
        """Show a user (yourself, or anyone for operators)."""
        show(server_call("GET", f"/api/v1/users/{ref}"), as_json, _print_user)

    @user_app.command("create")
    @handle_errors
    def user_create(username: str = typer.Argument(...),
                    email: str = typer.Option(..., "--email"),
                    full_name: str = typer.Option("", "--name"),
                    organization: str = typer.Option(None, "--org"),
                    reviewer: bool = typer.Option(False, "--reviewer"),
                    operator: bool = typer.Option(False, "--operator"),
                    as_json: bool = JSON_OPT) -> None:
        """Create a user (operators)."""
        u = server_call("POST", "/api/v1/users", json={
            "username": username, "email": email, "full_name": full_name,
            "organization": organization, "is_reviewer": reviewer, "is_operator": operator})
        show(u, as_json, _print_user)

    @user_app.command("update")
    @handle_errors
    def user_update(ref: str = typer.Argument(...),
                    full_name: str = typer.Option(None, "--name"),
                    email: str = typer.Option(None, "--email"),
                    organization: str = typer.Option(None, "--org"),
                    reviewer: bool = typer.Option(None, "--reviewer/--no-reviewer"),
                    operator: bool = typer.Option(None, "--operator/--no-operator"),
                    active: bool = typer.Option(None, "--active/--inactive"),
                    as_json: bool = JSON_OPT) -> None:
        """Change a user's profile, global roles or activity (operators)."""
        u = server_call("PATCH", f"/api/v1/users/{ref}", json={
            "full_name": full_name, "email": email, "organization": organization,
            "is_reviewer": reviewer, "is_operator": operator, "is_active": active})
        show(u, as_json, _print_user)

    # ------------------------------------------------------------------ project

    project = typer.Typer(help="Projects (each is a Slurm account) and their members.",
                          no_args_is_help=True)
    app.add_typer(project, name="project")

    @project.command("create")
    @handle_errors
    def project_create(slug: str = typer.Argument(..., help="Short name; the Slurm account."),
                       title: str = typer.Option(..., "--title"),
                       description: str = typer.Option("", "--description"),
                       pi: str = typer.Option(None, "--pi", help="Operators: the PI."),
                       field: str = typer.Option(
                           None, "--field", help="Field of science, an OECD FORD code such "
                           "as 1.2 (see `rechenwerk project fields`)."),
                       as_json: bool = JSON_OPT) -> None:
        """Create a project; you become its PI."""
        p = server_call("POST", "/api/v1/projects",
                  json={"slug": slug, "title": title, "description": description, "pi": pi,
                        "field_of_science": field})
        show(p, as_json, print_project)

    @project.command("approve")
    @handle_errors
    def project_approve(ref: str = typer.Argument(..., help="Slug or id."),
                        reject: bool = typer.Option(False, "--reject",
                                                    help="Reject it instead (say why)."),
                        note: str = typer.Option("", "--note", help="For the PI."),
                        as_json: bool = JSON_OPT) -> None:
        """Approve (or --reject) a project waiting for approval (operators)."""
        p = server_call("POST", f"/api/v1/projects/{ref}/approval", json={
            "decision": "rejected" if reject else "approved", "note": note})
        show(p, as_json, print_project)

    @project.command("edit")
    @handle_errors
    def project_edit(ref: str = typer.Argument(..., help="Slug or id."),
                     title: str = typer.Option(None, "--title"),
                     description: str = typer.Option(None, "--description"),
                     field: str = typer.Option(
                         None, "--field", help="Field of science, an OECD FORD code such as "
                         "1.2 (see `rechenwerk project fields`)."),
                     clear_field: bool = typer.Option(False, "--clear-field",
                                                      help="Remove the field of science."),
                     as_json: bool = JSON_OPT) -> None:
        """Change a project's title, description or field of science (PI or operators)."""
        if field is not None and clear_field:
            raise InvalidInput("give --field or --clear-field, not both", field="field")
        body: dict[str, Any] = {k: v for k, v in (("title", title),
                                                  ("description", description))
                                if v is not None}
        if field is not None or clear_field:
            body["field_of_science"] = None if clear_field else field
        if not body:
            raise InvalidInput("nothing to change", field="project",
                               hint="Give --title, --description, --field or --clear-field.")
        show(server_call("PATCH", f"/api/v1/projects/{ref}", json=body), as_json,
             print_project)

    @project.command("fields")
    @handle_errors
    def project_fields(as_json: bool = JSON_OPT) -> None:
        """The fields of science a project may name (OECD FORD, Frascati Manual 2015)."""
        data = server_call("GET", "/api/v1/fields-of-science")
        show(data, as_json, lambda rows: print_table(
            ["code", "field of science"],
            [(f["code"], f["name"] if "." in f["code"] else f["name"].upper())
             for f in rows]))

    @project.command("list")
    @handle_errors
    def project_list(organization: str = typer.Option(None, "--org"),
                     member: str = typer.Option(None, "--member"),
                     approval: str = typer.Option(None, "--approval",
                                                  help="approved | pending | rejected"),
                     limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """List your projects (operators: all)."""
        data = server_call("GET", "/api/v1/projects", params={
            "organization": organization, "member": member, "approval": approval,
            "limit": limit, "offset": offset})
        page(data, as_json, ["slug", "title", "organisation", "PI", "approval"],
              lambda p: (p["slug"], p["title"], p["organization"], p["pi"],
                         p.get("approval", "approved")), "projects")

    @project.command("show")
    @handle_errors
    def project_show(ref: str = typer.Argument(..., help="Slug or id."),
                     as_json: bool = JSON_OPT) -> None:
        """Show a project with its members."""
        show(server_call("GET", f"/api/v1/projects/{ref}"), as_json, print_project)

    @project.command("add-member")
    @handle_errors
    def project_add_member(ref: str = typer.Argument(..., help="Project slug."),
                           username: str = typer.Argument(...),
                           role: str = typer.Option("member", "--role", help="member|viewer"),
                           as_json: bool = JSON_OPT) -> None:
        """Add a member (or change a member's role). PI or operators."""
        m = server_call("POST", f"/api/v1/projects/{ref}/members",
                  json={"username": username, "role": role})
        show(m, as_json, lambda m: console.print(
            f"{m['username']} is now {m['role']} of {ref}", highlight=False))

    @project.command("remove-member")
    @handle_errors
    def project_remove_member(ref: str = typer.Argument(..., help="Project slug."),
                              username: str = typer.Argument(...)) -> None:
        """Remove a member. PI or operators."""
        server_call("DELETE", f"/api/v1/projects/{ref}/members/{username}")
        console.print(f"removed {username} from {ref}", highlight=False)

    # ------------------------------------------------------------------ token

    tok = typer.Typer(help="Your API tokens.", no_args_is_help=True)
    app.add_typer(tok, name="token")

    @tok.command("list")
    @handle_errors
    def token_list(as_json: bool = JSON_OPT) -> None:
        """List your tokens (secrets are never shown again)."""
        data = server_call("GET", "/api/v1/tokens")
        show(data, as_json, lambda rows: print_table(
            ["id", "name", "prefix", "scope", "created", "expires", "revoked", "last used"],
            [(t["id"], t["name"], t["prefix"] + "...", t["scope"], day(t["created_at"]),
              day(t["expires_at"]), day(t["revoked_at"]), day(t["last_used_at"]))
             for t in rows]))

    @tok.command("create")
    @handle_errors
    def token_create(name: str = typer.Option("cli", "--name"),
                     days: float = typer.Option(
                         None, "--days", help="Expires after N days (at most 366; "
                         "default: never)."),
                     scope: str = typer.Option(
                         "full", "--scope", help="full, or read: GET requests only."),
                     as_json: bool = JSON_OPT) -> None:
        """Create a token for yourself; the secret is printed once."""
        if scope not in ("full", "read"):
            raise InvalidInput(f"--scope must be full or read, got {scope!r}", field="--scope")
        t = server_call("POST", "/api/v1/tokens",
                        json={"name": name, "expires_in_days": days, "scope": scope})
        show(t, as_json, lambda t: console.print(
            f"token {t['id']} ({t['name']}): {t['token']}\nstore it now; it is not shown "
            "again", highlight=False))

    @tok.command("revoke")
    @handle_errors
    def token_revoke(token_id: int = typer.Argument(...)) -> None:
        """Revoke a token."""
        server_call("DELETE", f"/api/v1/tokens/{token_id}")
        console.print(f"token {token_id} revoked", highlight=False)

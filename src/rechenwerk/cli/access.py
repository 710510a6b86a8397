"""Access commands that talk to the server: ``login``, ``whoami``, ``org``, ``project``,
``call``, ``proposal``, ``award``, ``account``, ``token``.

Every command that prints data has ``--json``; otherwise it prints a Rich table. httpx is
imported only when a command runs (``rechenwerk --help`` stays instant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of a table.")
LIMIT_OPT = typer.Option(50, "--limit", help="Page size (1..500).")
OFFSET_OPT = typer.Option(0, "--offset", help="Items to skip.")


def _call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def _show(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        print_json(data)
    else:
        render(data)


def _page(data: dict[str, Any], as_json: bool, columns: Sequence[str],
          row: Callable[[dict[str, Any]], Sequence[Any]], title: str) -> None:
    if as_json:
        print_json(data)
        return
    shown = len(data["items"])
    print_table(columns, [row(item) for item in data["items"]],
                title=f"{title} ({data['offset'] + 1 if shown else 0}-"
                      f"{data['offset'] + shown} of {data['total']})")


def _kv(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    print_table(["field", "value"], pairs, title=title)


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _day(ts: str | None) -> str:
    """ISO timestamp -> 'YYYY-MM-DD HH:MM' (just the date at midnight)."""
    if not ts:
        return ""
    text = ts[:16].replace("T", " ")
    return text[:10] if text.endswith("00:00") else text


def _print_project(p: dict[str, Any]) -> None:
    _kv([("slug (Slurm account)", p["slug"]), ("title", p["title"]),
         ("organisation", f"{p['organization']} ({p['organization_kind']})"),
         ("PI", p["pi"]), ("created", _day(p["created_at"]))], title=f"project {p['slug']}")
    if p.get("members") is not None:
        print_table(["member", "name", "role", "since"],
                    [(m["username"], m["full_name"], m["role"], _day(m["since"]))
                     for m in p["members"]])


def _print_call(c: dict[str, Any]) -> None:
    _kv([("slug", c["slug"]), ("title", c["title"]), ("access mode", c["access_mode"]),
         ("eligible kinds", ", ".join(c["eligible_kinds"])), ("status", c["status"]),
         ("opens", _day(c["opens_at"])), ("closes", _day(c["closes_at"])),
         ("max GPU-hours per proposal", _hours(c["max_gpu_hours"]))], title=f"call {c['slug']}")


def _print_proposal(p: dict[str, Any]) -> None:
    _kv([("id", p["id"]), ("title", p["title"]), ("call", p["call"]),
         ("project", f"{p['project']} ({p['organization']})"), ("applicant", p["applicant"]),
         ("state", p["state"]), ("GPU type", p["gpu_type"]),
         ("requested GPU-hours", _hours(p["requested_gpu_hours"])),
         ("submitted", _day(p["submitted_at"])), ("decided", _day(p["decided_at"])),
         ("decision comment", p["decision_comment"]),
         *([("withdrawn", f"{_day(p['withdrawn_at'])} by {p.get('withdrawn_by') or '?'}")]
           if p.get("withdrawn_at") else []),
         ("reviewers", ", ".join(p["reviewers"]))], title=f"proposal {p['id']}")
    _print_estimate(p)


CHECK_TEXT = {"ok": "within the planner's ±30 %",
              "over": "request more than 30 % above the estimate",
              "under": "request under half the estimate"}


def _print_estimate(p: dict[str, Any]) -> None:
    e = p.get("estimate")
    if not e:
        return
    ratio = p.get("requested_vs_estimate")
    _kv([("model", f"{e['params']:.3g} parameters, {e['tokens']:.3g} tokens"),
         ("run", f"{e['gpus']:,} x {e['gpu']}"),
         ("estimated GPU-hours", _hours(e["gpu_hours"])),
         ("wall-clock days", f"{e['wall_clock_days']:,.1f}"),
         ("energy (MWh)", f"{e['energy_mwh']:,.2f}"),
         ("CO2 (t CO2e)", f"{e['co2_t']:,.2f}"),
         ("memory", e["memory_message"] or ("fits" if e["memory_feasible"]
                                            else "does not fit")),
         *[("warning", w) for w in e["warnings"]],
         ("requested / estimate", "" if ratio is None else
          f"{ratio:.2f} ({CHECK_TEXT.get(e['request_check'], e['request_check'])})")],
        title=f"training-compute estimate (attached {_day(e['attached_at'])})")


def _load_estimate(path: Path) -> dict[str, Any]:
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


def _print_award(a: dict[str, Any]) -> None:
    _kv([("id", a["id"]), ("project", a["project"]), ("proposal", a["proposal_id"]),
         ("GPU type", a["gpu_type"]), ("GPU-hours", _hours(a["gpu_hours"])),
         ("starts", _day(a["starts_at"])), ("expires", _day(a["expires_at"])),
         ("carry-over limit (GPU-hours)", _hours(a["carry_over_limit_gpu_hours"]))],
        title=f"award {a['id']}")
    print_table(["period", "starts", "ends", "GPU-hours"],
                [(i + 1, _day(p["starts_at"]), _day(p["ends_at"]), _hours(p["gpu_hours"]))
                 for i, p in enumerate(a["periods"])])


def _print_account(a: dict[str, Any]) -> None:
    _kv([("id", a["id"]), ("project", a["project"]),
         ("credit limit (EUR)", f"{a['credit_limit_eur']:,.2f}"), ("active", a["is_active"])],
        title=f"pay-per-use account {a['id']}")
    print_table(["GPU type", "EUR per GPU-hour"],
                [(g, f"{p:.2f}") for g, p in a["prices"].items()])


def _parse_prices(items: list[str]) -> dict[str, float]:
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
    ) -> None:
        """Save the server URL and API token, after checking them with the server."""
        from rechenwerk.cli.client import api_client, call, load_credentials, save_credentials
        from rechenwerk.errors import InvalidInput

        base = (url or load_credentials().url).rstrip("/")
        if username and token:
            raise InvalidInput("give either --token or --username, not both", field="--username")
        if username:
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
        path = save_credentials(base, secret)
        console.print(f"logged in to {base} as [bold]{me['username']}[/] "
                      f"(credentials in {path})", highlight=False)

    @app.command("whoami")
    @handle_errors
    def whoami(as_json: bool = JSON_OPT) -> None:
        """Show the user behind the current token and their project roles."""
        me = _call("GET", "/api/v1/me")

        def render(u: dict[str, Any]) -> None:
            roles = [r for r, on in (("operator", u["is_operator"]),
                                     ("reviewer", u["is_reviewer"])) if on]
            _kv([("username", u["username"]), ("name", u["full_name"]),
                 ("e-mail", u["email"]),
                 ("organisation", f"{u['organization'] or '-'} ({u['organization_kind'] or '-'})"),
                 ("global roles", ", ".join(roles) or "-"),
                 ("projects", ", ".join(f"{m['project']} ({m['role']})"
                                        for m in u["memberships"]) or "-")])

        _show(me, as_json, render)

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
        data = _call("GET", "/api/v1/organizations", params={
            "kind": kind, "country": country, "limit": limit, "offset": offset})
        _page(data, as_json, ["id", "name", "kind", "country"],
              lambda o: (o["id"], o["name"], o["kind"], o["country"]), "organisations")

    @org.command("show")
    @handle_errors
    def org_show(ref: str = typer.Argument(..., help="Name or id."),
                 as_json: bool = JSON_OPT) -> None:
        """Show one organisation."""
        o = _call("GET", f"/api/v1/organizations/{ref}")
        _show(o, as_json, lambda o: _kv([(k, o[k]) for k in ("id", "name", "kind", "country")]))

    @org.command("create")
    @handle_errors
    def org_create(name: str = typer.Option(..., "--name"),
                   kind: str = typer.Option(..., "--kind", help="university, "
                                            "research_institute, sme, startup, enterprise, "
                                            "public_agency"),
                   country: str = typer.Option(..., "--country", help="ISO code, e.g. DE"),
                   as_json: bool = JSON_OPT) -> None:
        """Create an organisation (operators)."""
        o = _call("POST", "/api/v1/organizations",
                  json={"name": name, "kind": kind, "country": country})
        _show(o, as_json, lambda o: console.print(f"created organisation {o['id']}: "
                                                  f"{o['name']}", highlight=False))

    # ------------------------------------------------------------------ user

    user_app = typer.Typer(help="Users and global roles (operators).", no_args_is_help=True)
    app.add_typer(user_app, name="user")

    def _print_user(u: dict[str, Any]) -> None:
        _kv([("id", u["id"]), ("username", u["username"]), ("name", u["full_name"]),
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
        data = _call("GET", "/api/v1/users", params={
            "organization": organization, "is_reviewer": reviewers, "limit": limit,
            "offset": offset})
        _page(data, as_json, ["username", "name", "organisation", "roles", "active"],
              lambda u: (u["username"], u["full_name"], u["organization"],
                         ", ".join(r for r, on in (("operator", u["is_operator"]),
                                                   ("reviewer", u["is_reviewer"])) if on),
                         u["is_active"]), "users")

    @user_app.command("show")
    @handle_errors
    def user_show(ref: str = typer.Argument(..., help="Username or id."),
                  as_json: bool = JSON_OPT) -> None:
        """Show a user (yourself, or anyone for operators)."""
        _show(_call("GET", f"/api/v1/users/{ref}"), as_json, _print_user)

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
        u = _call("POST", "/api/v1/users", json={
            "username": username, "email": email, "full_name": full_name,
            "organization": organization, "is_reviewer": reviewer, "is_operator": operator})
        _show(u, as_json, _print_user)

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
        u = _call("PATCH", f"/api/v1/users/{ref}", json={
            "full_name": full_name, "email": email, "organization": organization,
            "is_reviewer": reviewer, "is_operator": operator, "is_active": active})
        _show(u, as_json, _print_user)

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
                       as_json: bool = JSON_OPT) -> None:
        """Create a project; you become its PI."""
        p = _call("POST", "/api/v1/projects",
                  json={"slug": slug, "title": title, "description": description, "pi": pi})
        _show(p, as_json, _print_project)

    @project.command("list")
    @handle_errors
    def project_list(organization: str = typer.Option(None, "--org"),
                     member: str = typer.Option(None, "--member"),
                     limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """List your projects (operators: all)."""
        data = _call("GET", "/api/v1/projects", params={
            "organization": organization, "member": member, "limit": limit, "offset": offset})
        _page(data, as_json, ["slug", "title", "organisation", "PI"],
              lambda p: (p["slug"], p["title"], p["organization"], p["pi"]), "projects")

    @project.command("show")
    @handle_errors
    def project_show(ref: str = typer.Argument(..., help="Slug or id."),
                     as_json: bool = JSON_OPT) -> None:
        """Show a project with its members."""
        _show(_call("GET", f"/api/v1/projects/{ref}"), as_json, _print_project)

    @project.command("add-member")
    @handle_errors
    def project_add_member(ref: str = typer.Argument(..., help="Project slug."),
                           username: str = typer.Argument(...),
                           role: str = typer.Option("member", "--role", help="member|viewer"),
                           as_json: bool = JSON_OPT) -> None:
        """Add a member (or change a member's role). PI or operators."""
        m = _call("POST", f"/api/v1/projects/{ref}/members",
                  json={"username": username, "role": role})
        _show(m, as_json, lambda m: console.print(
            f"{m['username']} is now {m['role']} of {ref}", highlight=False))

    @project.command("remove-member")
    @handle_errors
    def project_remove_member(ref: str = typer.Argument(..., help="Project slug."),
                              username: str = typer.Argument(...)) -> None:
        """Remove a member. PI or operators."""
        _call("DELETE", f"/api/v1/projects/{ref}/members/{username}")
        console.print(f"removed {username} from {ref}", highlight=False)

    # ------------------------------------------------------------------ call

    call_app = typer.Typer(help="Calls for proposals.", no_args_is_help=True)
    app.add_typer(call_app, name="call")

    @call_app.command("list")
    @handle_errors
    def call_list(status: str = typer.Option(None, "--status", help="open|upcoming|closed"),
                  mode: str = typer.Option(None, "--mode", help="research|innovation|"
                                           "fast_lane|pay_per_use"),
                  limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                  as_json: bool = JSON_OPT) -> None:
        """List calls."""
        data = _call("GET", "/api/v1/calls", params={
            "status": status, "access_mode": mode, "limit": limit, "offset": offset})
        _page(data, as_json, ["slug", "title", "mode", "eligible", "status", "closes"],
              lambda c: (c["slug"], c["title"], c["access_mode"], ", ".join(c["eligible_kinds"]),
                         c["status"], _day(c["closes_at"])), "calls")

    @call_app.command("show")
    @handle_errors
    def call_show(ref: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a call."""
        _show(_call("GET", f"/api/v1/calls/{ref}"), as_json, _print_call)

    @call_app.command("create")
    @handle_errors
    def call_create(slug: str = typer.Argument(...), title: str = typer.Option(..., "--title"),
                    mode: str = typer.Option(..., "--mode", help="research|innovation|"
                                             "fast_lane|pay_per_use"),
                    closes: str = typer.Option(..., "--closes", help="ISO date/time (UTC)"),
                    opens: str = typer.Option(None, "--opens", help="default: now"),
                    eligible: list[str] = typer.Option(None, "--eligible",
                                                       help="Org kind; repeatable."),
                    max_gpu_hours: float = typer.Option(None, "--max-gpu-hours"),
                    description: str = typer.Option("", "--description"),
                    as_json: bool = JSON_OPT) -> None:
        """Open a call (operators)."""
        c = _call("POST", "/api/v1/calls", json={
            "slug": slug, "title": title, "access_mode": mode, "closes_at": closes,
            "opens_at": opens, "eligible_kinds": eligible or None,
            "max_gpu_hours": max_gpu_hours, "description": description})
        _show(c, as_json, _print_call)

    @call_app.command("close")
    @handle_errors
    def call_close(ref: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Close a call now (operators)."""
        _show(_call("POST", f"/api/v1/calls/{ref}/close"), as_json, _print_call)

    # ------------------------------------------------------------------ proposal

    prop = typer.Typer(help="Proposals: draft, edit, submit, withdraw, review, decide.",
                       no_args_is_help=True)
    app.add_typer(prop, name="proposal")

    @prop.command("create")
    @handle_errors
    def proposal_create(call: str = typer.Option(..., "--call"),
                        project: str = typer.Option(..., "--project"),
                        title: str = typer.Option(..., "--title"),
                        gpu_type: str = typer.Option(..., "--gpu-type"),
                        gpu_hours: float = typer.Option(..., "--gpu-hours",
                                                        help="Requested GPU-hours."),
                        abstract: str = typer.Option("", "--abstract"),
                        justification: str = typer.Option("", "--justification"),
                        estimate: Path = typer.Option(
                            None, "--estimate", help="Attach a training-compute estimate: "
                            "YAML/JSON with the inputs of `plan train` (params, tokens, "
                            "gpu, gpus ...), e.g. examples/estimate-70b.yaml."),
                        as_json: bool = JSON_OPT) -> None:
        """Draft a proposal for your project (PI)."""
        body: dict[str, Any] = {
            "call": call, "project": project, "title": title, "gpu_type": gpu_type,
            "requested_gpu_hours": gpu_hours, "abstract": abstract,
            "justification": justification}
        if estimate is not None:
            body["estimate"] = _load_estimate(estimate)
        p = _call("POST", "/api/v1/proposals", json=body)
        _show(p, as_json, _print_proposal)

    @prop.command("submit")
    @handle_errors
    def proposal_submit(proposal_id: int = typer.Argument(...),
                        as_json: bool = JSON_OPT) -> None:
        """Submit a draft (PI)."""
        _show(_call("POST", f"/api/v1/proposals/{proposal_id}/submit"), as_json,
              _print_proposal)

    @prop.command("edit")
    @handle_errors
    def proposal_edit(proposal_id: int = typer.Argument(...),
                      title: str = typer.Option(None, "--title"),
                      abstract: str = typer.Option(None, "--abstract"),
                      justification: str = typer.Option(None, "--justification"),
                      gpu_type: str = typer.Option(None, "--gpu-type"),
                      gpu_hours: float = typer.Option(None, "--gpu-hours",
                                                      help="Requested GPU-hours."),
                      estimate: Path = typer.Option(
                          None, "--estimate", help="Attach (replace) the training-compute "
                          "estimate from a YAML/JSON file of `plan train` inputs."),
                      no_estimate: bool = typer.Option(False, "--no-estimate",
                                                       help="Remove the attached estimate."),
                      as_json: bool = JSON_OPT) -> None:
        """Change a draft: only the options given (PI). Submitted proposals cannot be
        edited: withdraw them and create a new one."""
        changes: dict[str, Any] = {
            k: v for k, v in (("title", title), ("abstract", abstract),
                              ("justification", justification), ("gpu_type", gpu_type),
                              ("requested_gpu_hours", gpu_hours)) if v is not None}
        if estimate is not None and no_estimate:
            raise InvalidInput("give --estimate FILE or --no-estimate, not both",
                               field="estimate")
        if estimate is not None:
            changes["estimate"] = _load_estimate(estimate)
        elif no_estimate:
            changes["estimate"] = None  # null removes it (PATCH)
        if not changes:
            raise InvalidInput("nothing to change", field="proposal",
                               hint="Give at least one of --title, --abstract, "
                                    "--justification, --gpu-type, --gpu-hours, --estimate, "
                                    "--no-estimate.")
        _show(_call("PATCH", f"/api/v1/proposals/{proposal_id}", json=changes), as_json,
              _print_proposal)

    @prop.command("withdraw")
    @handle_errors
    def proposal_withdraw(proposal_id: int = typer.Argument(...),
                          reason: str = typer.Option("", "--reason",
                                                     help="Recorded in the audit log."),
                          as_json: bool = JSON_OPT) -> None:
        """Withdraw a proposal before it is decided (PI). Final: open reviews are
        cancelled."""
        _show(_call("POST", f"/api/v1/proposals/{proposal_id}/withdraw",
                    json={"reason": reason}), as_json, _print_proposal)

    @prop.command("assign-reviewer")
    @handle_errors
    def proposal_assign(proposal_id: int = typer.Argument(...),
                        reviewer: str = typer.Argument(..., help="Reviewer's username."),
                        as_json: bool = JSON_OPT) -> None:
        """Assign a reviewer (operators)."""
        r = _call("POST", f"/api/v1/proposals/{proposal_id}/reviewers",
                  json={"reviewer": reviewer})
        _show(r, as_json, lambda r: console.print(
            f"{r['reviewer']} reviews proposal {proposal_id}", highlight=False))

    @prop.command("review")
    @handle_errors
    def proposal_review(proposal_id: int = typer.Argument(...),
                        technical: int = typer.Option(..., "--technical", help="1..5"),
                        scientific: int = typer.Option(..., "--scientific", help="1..5"),
                        comment: str = typer.Option("", "--comment"),
                        as_json: bool = JSON_OPT) -> None:
        """Submit your review of an assigned proposal (reviewers)."""
        r = _call("POST", f"/api/v1/proposals/{proposal_id}/reviews", json={
            "technical_score": technical, "scientific_score": scientific, "comment": comment})
        _show(r, as_json, lambda r: console.print(
            f"review of proposal {proposal_id} recorded (technical {r['technical_score']}, "
            f"scientific {r['scientific_score']})", highlight=False))

    @prop.command("reviews")
    @handle_errors
    def proposal_reviews(proposal_id: int = typer.Argument(...),
                         as_json: bool = JSON_OPT) -> None:
        """Show the reviews you may see."""
        data = _call("GET", f"/api/v1/proposals/{proposal_id}/reviews")
        _show(data, as_json, lambda rows: print_table(
            ["reviewer", "technical", "scientific", "comment", "submitted"],
            [(r["reviewer"] or "(anonymous)", r["technical_score"], r["scientific_score"],
              r["comment"], _day(r["submitted_at"])) for r in rows]))

    @prop.command("decide")
    @handle_errors
    def proposal_decide(proposal_id: int = typer.Argument(...),
                        decision: str = typer.Argument(..., help="accepted|rejected"),
                        comment: str = typer.Option("", "--comment"),
                        as_json: bool = JSON_OPT) -> None:
        """Accept or reject (operators)."""
        aliases = {"accept": "accepted", "reject": "rejected"}
        _show(_call("POST", f"/api/v1/proposals/{proposal_id}/decision", json={
            "decision": aliases.get(decision, decision), "comment": comment}), as_json,
            _print_proposal)

    @prop.command("list")
    @handle_errors
    def proposal_list(call: str = typer.Option(None, "--call"),
                      project: str = typer.Option(None, "--project"),
                      state: str = typer.Option(None, "--state"),
                      limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                      as_json: bool = JSON_OPT) -> None:
        """List proposals of your projects or assigned to you."""
        data = _call("GET", "/api/v1/proposals", params={
            "call": call, "project": project, "state": state, "limit": limit,
            "offset": offset})
        _page(data, as_json, ["id", "title", "call", "project", "state", "GPU type",
                              "GPU-hours"],
              lambda p: (p["id"], p["title"], p["call"], p["project"], p["state"],
                         p["gpu_type"], _hours(p["requested_gpu_hours"])), "proposals")

    @prop.command("show")
    @handle_errors
    def proposal_show(proposal_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a proposal."""
        _show(_call("GET", f"/api/v1/proposals/{proposal_id}"), as_json, _print_proposal)

    # ------------------------------------------------------------------ award

    award = typer.Typer(help="Awards of GPU-hours, split into periods.", no_args_is_help=True)
    app.add_typer(award, name="award")

    @award.command("create")
    @handle_errors
    def award_create(project: str = typer.Option(..., "--project"),
                     gpu_hours: float = typer.Option(..., "--gpu-hours"),
                     start: str = typer.Option(..., "--start", help="ISO date (UTC)"),
                     proposal: int = typer.Option(None, "--proposal"),
                     gpu_type: str = typer.Option(None, "--gpu-type",
                                                  help="default: the proposal's"),
                     periods: int = typer.Option(1, "--periods", help="Number of periods."),
                     period_months: int = typer.Option(3, "--period-months"),
                     carry_over: float = typer.Option(0.0, "--carry-over",
                                                      help="Carry-over limit, GPU-hours."),
                     expires: str = typer.Option(None, "--expires",
                                                 help="default: end of last period"),
                     as_json: bool = JSON_OPT) -> None:
        """Award GPU-hours to a project (operators), e.g. 5000 in two quarterly periods:
        --gpu-hours 5000 --periods 2 --period-months 3."""
        a = _call("POST", "/api/v1/awards", json={
            "project": project, "proposal": proposal, "gpu_type": gpu_type,
            "gpu_hours": gpu_hours, "starts_at": start, "expires_at": expires,
            "period_count": periods, "period_months": period_months,
            "carry_over_limit_gpu_hours": carry_over})
        _show(a, as_json, _print_award)

    @award.command("list")
    @handle_errors
    def award_list(project: str = typer.Option(None, "--project"),
                   gpu_type: str = typer.Option(None, "--gpu-type"),
                   limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                   as_json: bool = JSON_OPT) -> None:
        """List awards of your projects."""
        data = _call("GET", "/api/v1/awards", params={
            "project": project, "gpu_type": gpu_type, "limit": limit, "offset": offset})
        _page(data, as_json, ["id", "project", "GPU type", "GPU-hours", "periods", "starts",
                              "expires"],
              lambda a: (a["id"], a["project"], a["gpu_type"], _hours(a["gpu_hours"]),
                         len(a["periods"]), _day(a["starts_at"]), _day(a["expires_at"])),
              "awards")

    @award.command("show")
    @handle_errors
    def award_show(award_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show an award with its periods."""
        _show(_call("GET", f"/api/v1/awards/{award_id}"), as_json, _print_award)

    # ------------------------------------------------------------------ account

    account = typer.Typer(help="Pay-per-use accounts (price per GPU-hour, credit limit).",
                          no_args_is_help=True)
    app.add_typer(account, name="account")

    @account.command("create")
    @handle_errors
    def account_create(project: str = typer.Option(..., "--project"),
                       credit_limit: float = typer.Option(..., "--credit-limit",
                                                          help="EUR"),
                       price: list[str] = typer.Option(..., "--price",
                                                       help="GPU_TYPE=EUR per GPU-hour; "
                                                            "repeatable"),
                       as_json: bool = JSON_OPT) -> None:
        """Open a pay-per-use account for a project (operators)."""
        a = _call("POST", "/api/v1/accounts", json={
            "project": project, "credit_limit_eur": credit_limit,
            "prices": _parse_prices(price)})
        _show(a, as_json, _print_account)

    @account.command("update")
    @handle_errors
    def account_update(account_id: int = typer.Argument(...),
                       credit_limit: float = typer.Option(None, "--credit-limit"),
                       price: list[str] = typer.Option(None, "--price"),
                       active: bool = typer.Option(None, "--active/--inactive"),
                       as_json: bool = JSON_OPT) -> None:
        """Change credit limit, prices or activity (operators)."""
        a = _call("PATCH", f"/api/v1/accounts/{account_id}", json={
            "credit_limit_eur": credit_limit,
            "prices": _parse_prices(price) if price else None, "is_active": active})
        _show(a, as_json, _print_account)

    @account.command("list")
    @handle_errors
    def account_list(project: str = typer.Option(None, "--project"),
                     limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """List pay-per-use accounts of your projects."""
        data = _call("GET", "/api/v1/accounts",
                     params={"project": project, "limit": limit, "offset": offset})
        _page(data, as_json, ["id", "project", "credit limit (EUR)", "prices (EUR/GPU-h)",
                              "active"],
              lambda a: (a["id"], a["project"], f"{a['credit_limit_eur']:,.2f}",
                         ", ".join(f"{g} {p:.2f}" for g, p in a["prices"].items()),
                         a["is_active"]), "accounts")

    @account.command("show")
    @handle_errors
    def account_show(account_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a pay-per-use account."""
        _show(_call("GET", f"/api/v1/accounts/{account_id}"), as_json, _print_account)

    # ------------------------------------------------------------------ token

    tok = typer.Typer(help="Your API tokens.", no_args_is_help=True)
    app.add_typer(tok, name="token")

    @tok.command("list")
    @handle_errors
    def token_list(as_json: bool = JSON_OPT) -> None:
        """List your tokens (secrets are never shown again)."""
        data = _call("GET", "/api/v1/tokens")
        _show(data, as_json, lambda rows: print_table(
            ["id", "name", "prefix", "created", "expires", "revoked", "last used"],
            [(t["id"], t["name"], t["prefix"] + "...", _day(t["created_at"]),
              _day(t["expires_at"]), _day(t["revoked_at"]), _day(t["last_used_at"]))
             for t in rows]))

    @tok.command("create")
    @handle_errors
    def token_create(name: str = typer.Option("cli", "--name"),
                     days: float = typer.Option(None, "--days", help="Expires after N days."),
                     as_json: bool = JSON_OPT) -> None:
        """Create a token for yourself; the secret is printed once."""
        t = _call("POST", "/api/v1/tokens", json={"name": name, "expires_in_days": days})
        _show(t, as_json, lambda t: console.print(
            f"token {t['id']} ({t['name']}): {t['token']}\nstore it now; it is not shown "
            "again", highlight=False))

    @tok.command("revoke")
    @handle_errors
    def token_revoke(token_id: int = typer.Argument(...)) -> None:
        """Revoke a token."""
        _call("DELETE", f"/api/v1/tokens/{token_id}")
        console.print(f"token {token_id} revoked", highlight=False)

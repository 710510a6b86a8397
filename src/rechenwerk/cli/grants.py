"""Granting GPU-hours on the server: ``call``, ``proposal``, ``award``, ``account``.
Every command that prints data has ``--json``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from rechenwerk.cli import award_changes
from rechenwerk.cli.access_output import (
    JSON_OPT,
    LIMIT_OPT,
    OFFSET_OPT,
    day,
    hours,
    kv,
    load_estimate,
    money,
    page,
    parse_prices,
    print_account,
    print_award,
    print_call,
    print_proposal,
    print_statement,
    server_call,
    show,
)
from rechenwerk.cli.output import console, handle_errors, print_table
from rechenwerk.errors import InvalidInput


def register(app: typer.Typer) -> None:
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
        data = server_call("GET", "/api/v1/calls", params={
            "status": status, "access_mode": mode, "limit": limit, "offset": offset})
        page(data, as_json, ["slug", "title", "mode", "type", "eligible", "status", "closes"],
              lambda c: (c["slug"], c["title"], c["access_mode"], c["call_type"]["key"],
                         ", ".join(c["eligible_kinds"]), c["status"], day(c["closes_at"])),
              "calls")

    @call_app.command("show")
    @handle_errors
    def call_show(ref: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a call."""
        show(server_call("GET", f"/api/v1/calls/{ref}"), as_json, print_call)

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
                    call_type: str = typer.Option(None, "--type", help="Call type (see "
                                                  "`call-type list`); default: the mode's."),
                    budget: float = typer.Option(None, "--budget-gpu-hours", help="GPU-hours "
                                                 "the call awards in all (the ranking)."),
                    as_json: bool = JSON_OPT) -> None:
        """Open a call (operators)."""
        c = server_call("POST", "/api/v1/calls", json={
            "slug": slug, "title": title, "access_mode": mode, "closes_at": closes,
            "opens_at": opens, "eligible_kinds": eligible or None,
            "max_gpu_hours": max_gpu_hours, "description": description,
            "call_type": call_type,
            **({"budget_gpu_hours": budget} if budget is not None else {})})
        show(c, as_json, print_call)

    @call_app.command("ranking")
    @handle_errors
    def call_ranking(ref: str = typer.Argument(..., help="Call slug or id."),
                     confirm: bool = typer.Option(False, "--confirm", help="Confirm it: "
                                                  "completes the ranking step."),
                     as_json: bool = JSON_OPT) -> None:
        """The proposals at the ranking step against the call's budget (operators)."""
        data = server_call("POST" if confirm else "GET",
                           f"/api/v1/calls/{ref}/ranking" + ("/confirm" if confirm else ""))

        def out(d: dict[str, Any]) -> None:
            budget = d["budget_gpu_hours"]
            console.print(f"call {d['call']}: budget "
                          + (f"{budget:,.0f} GPU-hours" if budget is not None else "none")
                          + (" (confirmed)" if d["confirmed"] else ""), highlight=False)
            print_table(["#", "proposal", "project", "mean score", "requested",
                         "cumulative", "recommended"],
                        [(r["position"], f"{r['proposal_id']} {r['title']}", r["project"],
                          f"{r['mean_score']:.2f}", f"{r['requested_gpu_hours']:,.0f}",
                          f"{r['cumulative_gpu_hours']:,.0f}",
                          f"{r['recommended_gpu_hours']:,.0f}") for r in d["rows"]])
        show(data, as_json, out)

    @call_app.command("close")
    @handle_errors
    def call_close(ref: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Close a call now (operators)."""
        show(server_call("POST", f"/api/v1/calls/{ref}/close"), as_json, print_call)

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
                        months: int = typer.Option(None, "--months", help="Duration in "
                                                   "months, where the call type asks."),
                        estimate: Path = typer.Option(
                            None, "--estimate", help="Attach a training-compute estimate: "
                            "YAML/JSON with the inputs of `plan train` (params, tokens, "
                            "gpu, gpus ...), e.g. examples/estimate-70b.yaml."),
                        as_json: bool = JSON_OPT) -> None:
        """Draft a proposal for your project (PI)."""
        body: dict[str, Any] = {
            "call": call, "project": project, "title": title, "gpu_type": gpu_type,
            "requested_gpu_hours": gpu_hours, "abstract": abstract,
            "justification": justification, "duration_months": months}
        if estimate is not None:
            body["estimate"] = load_estimate(estimate)
        p = server_call("POST", "/api/v1/proposals", json=body)
        show(p, as_json, print_proposal)

    @prop.command("submit")
    @handle_errors
    def proposal_submit(proposal_id: int = typer.Argument(...),
                        as_json: bool = JSON_OPT) -> None:
        """Submit a draft (PI)."""
        show(server_call("POST", f"/api/v1/proposals/{proposal_id}/submit"), as_json,
              print_proposal)

    @prop.command("edit")
    @handle_errors
    def proposal_edit(proposal_id: int = typer.Argument(...),
                      title: str = typer.Option(None, "--title"),
                      abstract: str = typer.Option(None, "--abstract"),
                      justification: str = typer.Option(None, "--justification"),
                      gpu_type: str = typer.Option(None, "--gpu-type"),
                      gpu_hours: float = typer.Option(None, "--gpu-hours",
                                                      help="Requested GPU-hours."),
                      months: int = typer.Option(None, "--months", help="Duration in months."),
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
                              ("requested_gpu_hours", gpu_hours),
                              ("duration_months", months)) if v is not None}
        if estimate is not None and no_estimate:
            raise InvalidInput("give --estimate FILE or --no-estimate, not both",
                               field="estimate")
        if estimate is not None:
            changes["estimate"] = load_estimate(estimate)
        elif no_estimate:
            changes["estimate"] = None  # null removes it (PATCH)
        if not changes:
            raise InvalidInput("nothing to change", field="proposal",
                               hint="Give at least one of --title, --abstract, "
                                    "--justification, --gpu-type, --gpu-hours, --months, "
                                    "--estimate, --no-estimate.")
        show(server_call("PATCH", f"/api/v1/proposals/{proposal_id}", json=changes), as_json,
              print_proposal)

    @prop.command("withdraw")
    @handle_errors
    def proposal_withdraw(proposal_id: int = typer.Argument(...),
                          reason: str = typer.Option("", "--reason",
                                                     help="Recorded in the audit log."),
                          as_json: bool = JSON_OPT) -> None:
        """Withdraw a proposal before it is decided (PI). Final: open reviews are
        cancelled."""
        show(server_call("POST", f"/api/v1/proposals/{proposal_id}/withdraw",
                    json={"reason": reason}), as_json, print_proposal)

    @prop.command("assign-reviewer")
    @handle_errors
    def proposal_assign(proposal_id: int = typer.Argument(...),
                        reviewer: str = typer.Argument(..., help="Reviewer's username."),
                        due: str = typer.Option(None, "--due", help="Answer by (YYYY-MM-DD; "
                                                "default 5 working days)."),
                        as_json: bool = JSON_OPT) -> None:
        """Invite a reviewer (operators); they accept or decline by the due date."""
        r = server_call("POST", f"/api/v1/proposals/{proposal_id}/reviewers",
                  json={"reviewer": reviewer, **({"due_on": due} if due else {})})
        show(r, as_json, lambda r: console.print(
            f"{r['reviewer']} invited to review proposal {proposal_id} (answer by "
            f"{r['due_on']})", highlight=False))

    @prop.command("accept-review")
    @handle_errors
    def proposal_accept_review(proposal_id: int = typer.Argument(...),
                               as_json: bool = JSON_OPT) -> None:
        """Accept the invitation to review a proposal (invited reviewers)."""
        r = server_call("POST", f"/api/v1/proposals/{proposal_id}/invitation",
                        json={"accept": True})
        show(r, as_json, lambda r: console.print(
            f"you review proposal {proposal_id}", highlight=False))

    @prop.command("decline-review")
    @handle_errors
    def proposal_decline_review(proposal_id: int = typer.Argument(...),
                                reason: str = typer.Option(..., "--reason",
                                                           help="Why you decline."),
                                as_json: bool = JSON_OPT) -> None:
        """Decline the invitation to review a proposal, with a reason (invited reviewers)."""
        r = server_call("POST", f"/api/v1/proposals/{proposal_id}/invitation",
                        json={"accept": False, "reason": reason})
        show(r, as_json, lambda r: console.print(
            f"declined reviewing proposal {proposal_id}", highlight=False))

    @prop.command("review")
    @handle_errors
    def proposal_review(proposal_id: int = typer.Argument(...),
                        technical: int = typer.Option(..., "--technical", help="1..5"),
                        scientific: int = typer.Option(..., "--scientific", help="1..5"),
                        comment: str = typer.Option("", "--comment"),
                        as_json: bool = JSON_OPT) -> None:
        """Submit your review of an assigned proposal (reviewers)."""
        r = server_call("POST", f"/api/v1/proposals/{proposal_id}/reviews", json={
            "technical_score": technical, "scientific_score": scientific, "comment": comment})
        show(r, as_json, lambda r: console.print(
            f"review of proposal {proposal_id} recorded (technical {r['technical_score']}, "
            f"scientific {r['scientific_score']})", highlight=False))

    @prop.command("reviews")
    @handle_errors
    def proposal_reviews(proposal_id: int = typer.Argument(...),
                         as_json: bool = JSON_OPT) -> None:
        """Show the reviews you may see."""
        data = server_call("GET", f"/api/v1/proposals/{proposal_id}/reviews")
        show(data, as_json, lambda rows: print_table(
            ["reviewer", "technical", "scientific", "comment", "submitted"],
            [(r["reviewer"] or "(anonymous)", r["technical_score"], r["scientific_score"],
              r["comment"], day(r["submitted_at"])) for r in rows]))

    def print_pipeline(d: dict[str, Any]) -> None:
        console.print(f"proposal {d['proposal_id']} ({d['call_type']}, {d['state']}): "
                      + (f"at the {d['step']} step" if d["step"] else "not in review"),
                      highlight=False)
        print_table(["step", "done", "detail"],
                    [(st["step"], "yes" if st["done"] else "no", st["detail"])
                     for st in d["steps"]])
        if d.get("reply_due_on") and not d.get("replied_at"):
            console.print(f"the applicant may reply to the reviews until {d['reply_due_on']}",
                          highlight=False)
        if d.get("replied_at"):
            console.print(f"the applicant replied on {day(d['replied_at'])}: "
                          f"{d['reply_text']}", highlight=False)
        if d["assessments"]:
            print_table(["assessed", "step", "outcome", "by", "note"],
                        [(day(a["at"]), a["step"], a["outcome"], a["by"] or "", a["note"])
                         for a in d["assessments"]])

    @prop.command("pipeline")
    @handle_errors
    def proposal_pipeline(proposal_id: int = typer.Argument(...),
                          as_json: bool = JSON_OPT) -> None:
        """The review steps of a proposal: which are done, the one it is at."""
        show(server_call("GET", f"/api/v1/proposals/{proposal_id}/pipeline"), as_json,
             print_pipeline)

    @prop.command("reply")
    @handle_errors
    def proposal_reply(proposal_id: int = typer.Argument(...),
                       text: str = typer.Option(..., "--text", help="Your one reply to "
                                                "the reviews."),
                       as_json: bool = JSON_OPT) -> None:
        """Reply once to the reviews of your proposal (PI; right to reply)."""
        show(server_call("POST", f"/api/v1/proposals/{proposal_id}/reply",
                         json={"text": text}), as_json, print_pipeline)

    @prop.command("assess")
    @handle_errors
    def proposal_assess(proposal_id: int = typer.Argument(...),
                        step: str = typer.Argument(..., help="eligibility|technical"),
                        outcome: str = typer.Argument(..., help="pass|fail"),
                        note: str = typer.Option("", "--note",
                                                 help="Why (required with fail)."),
                        as_json: bool = JSON_OPT) -> None:
        """Record the eligibility check or the technical assessment (operators)."""
        show(server_call("POST", f"/api/v1/proposals/{proposal_id}/assessments", json={
            "step": step, "outcome": outcome, "note": note}), as_json, print_pipeline)

    @prop.command("decide")
    @handle_errors
    def proposal_decide(proposal_id: int = typer.Argument(...),
                        decision: str = typer.Argument(..., help="accepted|rejected"),
                        comment: str = typer.Option("", "--comment"),
                        granted: float = typer.Option(None, "--granted-gpu-hours",
                                                      help="Accepting: GPU-hours granted "
                                                      "(default the request; less is a "
                                                      "partial award)."),
                        as_json: bool = JSON_OPT) -> None:
        """Accept or reject (operators); the decision letter is stored and shown."""
        aliases = {"accept": "accepted", "reject": "rejected"}
        show(server_call("POST", f"/api/v1/proposals/{proposal_id}/decision", json={
            "decision": aliases.get(decision, decision), "comment": comment,
            **({"granted_gpu_hours": granted} if granted is not None else {})}), as_json,
            print_proposal)

    @prop.command("letter")
    @handle_errors
    def proposal_letter(proposal_id: int = typer.Argument(...)) -> None:
        """The decision letter of a decided proposal."""
        p = server_call("GET", f"/api/v1/proposals/{proposal_id}")
        if not p.get("decision_letter"):
            raise InvalidInput(f"proposal {proposal_id} has no decision letter "
                               f"({p['state']})", field="proposal")
        console.print(p["decision_letter"], highlight=False, markup=False)

    @prop.command("list")
    @handle_errors
    def proposal_list(call: str = typer.Option(None, "--call"),
                      project: str = typer.Option(None, "--project"),
                      state: str = typer.Option(None, "--state"),
                      overdue: bool = typer.Option(False, "--overdue", help="Only those "
                                                   "past their decision deadline."),
                      limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                      as_json: bool = JSON_OPT) -> None:
        """List proposals of your projects or assigned to you."""
        data = server_call("GET", "/api/v1/proposals", params={
            "call": call, "project": project, "state": state, "limit": limit,
            "offset": offset, "overdue": "true" if overdue else None})
        page(data, as_json, ["id", "title", "call", "project", "state", "GPU type",
                              "GPU-hours", "due"],
              lambda p: (p["id"], p["title"], p["call"], p["project"], p["state"],
                         p["gpu_type"], hours(p["requested_gpu_hours"]),
                         (p["due_on"] or "-") + (" overdue" if p["overdue"] else "")),
              "proposals")

    @prop.command("show")
    @handle_errors
    def proposal_show(proposal_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a proposal."""
        show(server_call("GET", f"/api/v1/proposals/{proposal_id}"), as_json, print_proposal)

    # ------------------------------------------------------------------ award

    award = typer.Typer(help="Awards of GPU-hours, split into periods; change requests.",
                        no_args_is_help=True)
    app.add_typer(award, name="award")
    award_changes.register(award)
    award_changes.register_reports(award)

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
                     cluster: str = typer.Option(
                         None, "--cluster",
                         help="Valid on this cluster only (default: every cluster)."),
                     as_json: bool = JSON_OPT) -> None:
        """Award GPU-hours to a project (operators), e.g. 5000 in two quarterly periods:
        --gpu-hours 5000 --periods 2 --period-months 3."""
        a = server_call("POST", "/api/v1/awards", json={
            "project": project, "proposal": proposal, "gpu_type": gpu_type,
            "gpu_hours": gpu_hours, "starts_at": start, "expires_at": expires,
            "period_count": periods, "period_months": period_months,
            "carry_over_limit_gpu_hours": carry_over,
            **({"cluster": cluster} if cluster else {})})
        show(a, as_json, print_award)

    @award.command("list")
    @handle_errors
    def award_list(project: str = typer.Option(None, "--project"),
                   gpu_type: str = typer.Option(None, "--gpu-type"),
                   limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                   as_json: bool = JSON_OPT) -> None:
        """List awards of your projects."""
        data = server_call("GET", "/api/v1/awards", params={
            "project": project, "gpu_type": gpu_type, "limit": limit, "offset": offset})
        page(data, as_json, ["id", "project", "GPU type", "GPU-hours", "periods", "starts",
                              "expires"],
              lambda a: (a["id"], a["project"], a["gpu_type"], hours(a["gpu_hours"]),
                         len(a["periods"]), day(a["starts_at"]), day(a["expires_at"])),
              "awards")

    @award.command("show")
    @handle_errors
    def award_show(award_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show an award with its periods."""
        show(server_call("GET", f"/api/v1/awards/{award_id}"), as_json, print_award)

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
        a = server_call("POST", "/api/v1/accounts", json={
            "project": project, "credit_limit_eur": credit_limit,
            "prices": parse_prices(price)})
        show(a, as_json, print_account)

    @account.command("update")
    @handle_errors
    def account_update(account_id: int = typer.Argument(...),
                       credit_limit: float = typer.Option(None, "--credit-limit"),
                       price: list[str] = typer.Option(None, "--price"),
                       active: bool = typer.Option(None, "--active/--inactive"),
                       as_json: bool = JSON_OPT) -> None:
        """Change credit limit, prices or activity (operators)."""
        a = server_call("PATCH", f"/api/v1/accounts/{account_id}", json={
            "credit_limit_eur": credit_limit,
            "prices": parse_prices(price) if price else None, "is_active": active})
        show(a, as_json, print_account)

    @account.command("list")
    @handle_errors
    def account_list(project: str = typer.Option(None, "--project"),
                     limit: int = LIMIT_OPT, offset: int = OFFSET_OPT,
                     as_json: bool = JSON_OPT) -> None:
        """List pay-per-use accounts of your projects."""
        data = server_call("GET", "/api/v1/accounts",
                     params={"project": project, "limit": limit, "offset": offset})
        page(data, as_json, ["id", "project", "credit limit (EUR)", "prices (EUR/GPU-h)",
                              "active"],
              lambda a: (a["id"], a["project"], f"{a['credit_limit_eur']:,.2f}",
                         ", ".join(f"{g} {p:.2f}" for g, p in a["prices"].items()),
                         a["is_active"]), "accounts")

    @account.command("balance")
    @handle_errors
    def account_balance(ref: str = typer.Argument(..., help="account id or project slug"),
                        as_json: bool = JSON_OPT) -> None:
        """Live EUR balance: credit limit, settled, committed, remaining."""
        b = server_call("GET", f"/api/v1/accounts/{quote(ref, safe='')}/balance")
        show(b, as_json, lambda b: kv([
            ("account", f"{b['account_id']} ({b['project']})"),
            ("active", b["is_active"]),
            ("credit limit (EUR)", money(b["credit_limit_eur"])),
            ("settled (EUR)", money(b["settled_eur"])),
            ("committed (EUR)", money(b["committed_eur"])),
            ("remaining (EUR)", money(b["remaining_eur"])),
        ], title=f"balance at {b['at'][:19]}"))

    @account.command("statement")
    @handle_errors
    def account_statement(
        ref: str = typer.Argument(..., help="account id or project slug"),
        month: str = typer.Option(..., "--month", help="YYYY-MM (UTC), e.g. 2026-11"),
        as_csv: bool = typer.Option(False, "--csv", help="Print the statement as CSV."),
        pdf: Path = typer.Option(None, "--pdf", help="Write the statement as PDF here."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """The month's statement: every charged run, totals, opening/closing balance."""
        if sum((as_json, as_csv, pdf is not None)) > 1:
            raise InvalidInput("give one of --json, --csv, --pdf", field="format")
        path = f"/api/v1/accounts/{quote(ref, safe='')}/statement"
        if pdf is not None:
            data = server_call("GET", path, params={"month": month, "format": "pdf"},
                               raw=True)
            pdf.write_bytes(data)
            console.print(f"wrote {pdf} ({len(data):,} bytes)")
            return
        params = {"month": month, "format": "csv" if as_csv else "json"}
        data = server_call("GET", path, params=params)
        if as_csv:
            sys.stdout.write(data)
            return
        show(data, as_json, print_statement)

    @account.command("show")
    @handle_errors
    def account_show(account_id: int = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
        """Show a pay-per-use account."""
        show(server_call("GET", f"/api/v1/accounts/{account_id}"), as_json, print_account)


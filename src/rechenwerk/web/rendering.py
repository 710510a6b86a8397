"""Jinja2 rendering for the portal: one environment, formatting filters with units."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from rechenwerk.access.fields_of_science import label as fos_label
from rechenwerk.accounting import pay_per_use as ppu
from rechenwerk.scheduling.model import starts_in

DASH = "\u2013"  # shown for missing values
TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def fmt_hours(value: float | None, digits: int = 1) -> str:
    """GPU-hours with thousands separators: ``12,345.6``; an en dash for None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value:,.{digits}f}"


def fmt_dt(value: datetime | None, with_time: bool = True) -> str:
    if value is None:
        return DASH
    v = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return v.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def fmt_duration(seconds: float | None) -> str:
    """``3d 4h``, ``2h 05m``, ``45s``."""
    if seconds is None:
        return DASH
    s = round(seconds)
    if s < 0:
        return DASH
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_pct(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{100.0 * value:.{digits}f} %"


def query_with(request: Request, **changes: Any) -> str:
    """The current query string with some parameters replaced (None removes one)."""
    params = dict(request.query_params)
    for key, val in changes.items():
        if val is None or val == "":
            params.pop(key, None)
        else:
            params[key] = str(val)
    return "?" + urlencode(params) if params else "?"


_CODE_SPAN = re.compile(r"`([^`]+)`")


def code_spans(text: Any) -> Markup:
    """Plain text with `backticked` CLI commands as <code> elements (the rest escaped), so
    empty states print commands the way the docs do instead of literal backticks."""
    escaped = str(escape(text))
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", escaped))


def audit_value(value: Any) -> str:
    """One audit change for people: ``[old, new]`` as ``old → new``, a mapping as
    ``key: value, ...``, nothing as an em dash; never a Python repr."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {audit_value(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        if len(value) == 2 and not any(isinstance(v, dict | list) for v in value):
            return f"{audit_value(value[0])} → {audit_value(value[1])}"
        return ", ".join(audit_value(v) for v in value) or "—"
    return str(value)


# Audit actions in words for the audit page (the action's code is shown beside them).
AUDIT_ACTION_WORDS: dict[str, str] = {
    "account.create": "opened a pay-per-use account",
    "account.update": "changed a pay-per-use account",
    "aup.accept": "accepted the acceptable-use policy",
    "aup.publish": "published a new acceptable-use policy",
    "award.create": "awarded GPU-hours",
    "award_change.decide": "decided an award change request",
    "award_change.request": "asked to change an award",
    "award_change.withdraw": "withdrew an award change request",
    "call.close": "closed a call for proposals",
    "call.create": "opened a call for proposals",
    "call_type.create": "created a call type",
    "job.cancel": "cancelled a job",
    "login.failed": "failed to log in",
    "login.oidc": "signed in through the institution's provider",
    "membership.add": "added a project member",
    "membership.remove": "removed a project member",
    "membership.update": "changed a member's role",
    "membership.role": "changed a member's role from sign-in claims",
    "node.drain": "drained a node",
    "node.resume": "returned a node to service",
    "notification.requeue": "queued a failed notification again",
    "oidc.link": "linked an institution account",
    "organization.create": "added an organisation",
    "project.approval": "decided on a new project",
    "project.create": "created a project",
    "project.update": "changed a project",
    "report.document": "uploaded an award report's PDF",
    "report.review": "reviewed an award report",
    "report.submit": "submitted an award report",
    "proposal.create": "wrote a proposal",
    "proposal.update": "edited a proposal",
    "proposal.submitted": "submitted a proposal",
    "proposal.under_review": "started the review of a proposal",
    "proposal.accepted": "accepted a proposal",
    "proposal.rejected": "rejected a proposal",
    "proposal.withdrawn": "withdrew a proposal",
    "proposal.assign_reviewer": "assigned a reviewer",
    "proposal.review": "submitted a review",
    "proposal.review_accepted": "accepted an invitation to review",
    "proposal.reply": "replied to the reviews",
    "call.ranking_confirmed": "confirmed the ranking of a call",
    "proposal.review_declined": "declined an invitation to review",
    "proposal.assessment": "assessed a proposal (eligibility or technical)",
    "token.create": "created an API token",
    "token.revoke": "revoked an API token",
    "user.create": "added a user",
    "user.set_password": "set a password",
    "user.update": "changed a user's profile or roles",
    "support.open": "opened a support request",
    "support.assign": "assigned a support request",
    "support.answer": "answered a support request",
    "support.reply": "replied to a support request",
    "support.close": "closed a support request",
    "support.reopen": "reopened a support request",
}


def audit_action(action: str) -> str:
    """What an audit entry's ``action`` did, in words ("" when there are none yet)."""
    return AUDIT_ACTION_WORDS.get(action, "")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(["html", "xml"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hours"] = fmt_hours
    env.filters["dt"] = fmt_dt
    env.filters["date"] = lambda v: fmt_dt(v, with_time=False)
    env.filters["duration"] = fmt_duration
    env.filters["pct"] = fmt_pct
    env.filters["code_spans"] = code_spans
    env.filters["audit_value"] = audit_value
    env.filters["audit_action"] = audit_action
    env.filters["fos_label"] = fos_label  # "1.2 Computer and information sciences"
    # Money of pay-per-use accounts: integer cents and 1/10,000 EUR, never floats.
    env.filters["eur"] = ppu.eur
    env.filters["price_e4"] = ppu.price_text
    env.filters["eur_input"] = lambda v: ppu.eur(ppu.cents(v))  # an operator's float
    env.globals["job_max_cents"] = ppu.job_max_cents
    env.globals["query_with"] = query_with
    env.globals["Markup"] = Markup
    env.globals["starts_in"] = starts_in  # "in 2 h 10 min", as the scheduler's reasons
    return env


def render_html(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` with the common context (user, nav, CSRF token, flash)."""
    from rechenwerk.web.context import base_context

    ctx = base_context(request)
    ctx.update(context or {})
    return HTMLResponse(render_html(template, ctx), status_code=status_code)

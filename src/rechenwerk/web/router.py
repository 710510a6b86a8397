"""The portal: server-rendered pages (Jinja2 + htmx) over the same services as the API.

Registered in ``rechenwerk/app.py`` (``ROUTER_MODULES``); the page modules live in
``pages/``.
"""

from __future__ import annotations

from fastapi import APIRouter

from rechenwerk.web.pages import (
    accounts,
    aup,
    auth,
    award_changes,
    award_reports,
    call_ranking,
    cluster,
    directory,
    funder_report,
    job_logs,
    jobs,
    notebooks,
    oidc,
    ops,
    projects,
    proposals,
    reports,
    reservations,
    reviews,
    settings,
    static,
    support,
    tokens,
    yearly_report,
)

router = APIRouter(include_in_schema=False)
# directory before projects: /projects/new is not a project slug
for _module in (static, auth, oidc, directory, projects, job_logs, jobs, proposals, reviews,
                cluster, ops, funder_report, yearly_report, reports, settings, aup, tokens,
                reservations, support, accounts, award_changes, award_reports, call_ranking,
                notebooks):
    router.include_router(_module.router)

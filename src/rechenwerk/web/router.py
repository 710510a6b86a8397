"""The portal: server-rendered pages (Jinja2 + htmx) over the same services as the API.

Registered in ``api/app.py`` (``ROUTER_MODULES``); the page modules live in ``pages/``.
Its lifespan starts the notifier thread with the server (``settings.scheduler_enabled``,
the switch for all background loops).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter

from rechenwerk.web.pages import (
    auth,
    cluster,
    jobs,
    ops,
    projects,
    proposals,
    reports,
    reviews,
    settings,
    static,
)


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    notifier = None
    cfg = getattr(app.state, "settings", None)
    if cfg is not None and cfg.scheduler_enabled:
        from rechenwerk.notifications.worker import start_notifier

        notifier = start_notifier(app.state, cfg)
    try:
        yield
    finally:
        if notifier is not None:
            notifier.stop()


router = APIRouter(include_in_schema=False, lifespan=_lifespan)
for _module in (static, auth, projects, jobs, proposals, reviews, cluster, ops, reports,
                settings):
    router.include_router(_module.router)

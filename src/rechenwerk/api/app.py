"""The FastAPI application. Routers are thin adapters over the domain services."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rechenwerk import __version__
from rechenwerk.api.problems import install_problem_handlers
from rechenwerk.config import Settings, get_settings

# Modules exposing ``router`` (an APIRouter); one line per domain, each domain owns its module.
# Routes are matched in this order, one by one, so the hottest (job submission and
# queries) come first; tests/api/test_route_order.py checks that no route shadows another.
ROUTER_MODULES: list[str] = [
    "rechenwerk.jobs.router",
    "rechenwerk.planning.router",
    "rechenwerk.access.router",
    "rechenwerk.reports.router",
    "rechenwerk.web.router",
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the scheduler loop with the server (jobs engineer); off when
    ``settings.scheduler_enabled`` is false (tests, API-only replicas)."""
    loop = None
    settings = app.state.settings
    if settings.scheduler_enabled:
        from rechenwerk.jobs.loop import start_scheduler

        loop = start_scheduler(app.state, settings)
    try:
        yield
    finally:
        if loop is not None:
            loop.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Rechenwerk",
        version=__version__,
        description="REST API of a shared AI compute centre: access, jobs, accounting, planning.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)

    @app.get("/api/v1/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
    return app

"""The composition root: everything long-lived is built here, once, and handed down.

``create_app(settings)`` builds the :class:`Runtime` (settings, session factory, clock,
execution backend) and the FastAPI application over it; the application's lifespan starts
the background workers (the scheduler loop and the notifier) and stops them. Routers and
pages reach the runtime through ``rechenwerk.api.deps``; workers get what they need from
their constructor and never import a face.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk import __version__
from rechenwerk.access.report_task_router import DOCUMENT_PATH
from rechenwerk.api.bounds import RequestBoundsMiddleware, check_parameters
from rechenwerk.clock import Clock, WallClock
from rechenwerk.config import Settings, get_settings
from rechenwerk.execution.base import ExecutionBackend, NodeInventory
from rechenwerk.jobs.queue_order import QueueOrderBoard
from rechenwerk.jobs.wakeup import install_wake_hook
from rechenwerk.log_format import RequestIdMiddleware
from rechenwerk.observability.backend import instrumented
from rechenwerk.observability.collector import StateCollector
from rechenwerk.observability.http import HttpMetricsMiddleware, MetricsServer
from rechenwerk.observability.http import router as metrics_router
from rechenwerk.sessions.service import SESSION_MAX_BODY, SESSION_PROXY_PATH
from rechenwerk.web.pages.award_reports import PORTAL_DOCUMENT_PATH

if TYPE_CHECKING:
    from rechenwerk.execution.clusters import ClusterRegistry
    from rechenwerk.jobs.loop import SchedulerLoop
    from rechenwerk.notifications.worker import Notifier

log = logging.getLogger("rechenwerk")

# Modules exposing ``router`` (an APIRouter); one line per domain, each domain owns its module.
# Routes are matched in this order, one by one, so the hottest (job submission and
# queries) come first; tests/api/test_route_order.py checks that no route shadows another.
ROUTER_MODULES: list[str] = [
    "rechenwerk.jobs.router",
    "rechenwerk.planning.router",
    "rechenwerk.access.router",
    "rechenwerk.access.award_change_router",  # award changes and versions (issue 15)
    "rechenwerk.access.report_task_router",  # award reports (issue 15)
    "rechenwerk.access.oidc.router",  # federated sign-in: providers, device flow
    "rechenwerk.reports.router",
    "rechenwerk.support.router",  # support requests (issue 19)
    "rechenwerk.sessions.router",  # interactive sessions (issue 20)
    "rechenwerk.web.jupyter_proxy",  # /jupyter/<job>/...: a session's JupyterLab, owner only
    "rechenwerk.web.yearly_api",  # /api/v1/reports/yearly: renders HTML and PDF documents
    "rechenwerk.web.router",
]


class Runtime:
    """The server's long-lived parts. The backend is built on first use, so an API-only
    process (``scheduler_enabled`` off) that never asks for it needs no cluster. The
    backend is wrapped to count its errors; ``metrics`` reads the state gauges
    ``/metrics`` shows (docs/operations.md, "Metrics")."""

    def __init__(self, settings: Settings, *,
                 session_factory: sessionmaker[Session] | None = None,
                 clock: Clock | None = None,
                 backend: ExecutionBackend | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or WallClock()
        # The engine this runtime made (None when the caller brought a session factory).
        self.engine: Engine | None = None
        if session_factory is None:
            from rechenwerk.store.session import make_engine, make_session_factory

            self.engine = make_engine(settings.effective_database_url)
            session_factory = make_session_factory(self.engine)
        self.session_factory = session_factory
        install_wake_hook(session_factory, self.wake_scheduler)
        self._backend = instrumented(backend) if backend is not None else None
        self._backend_lock = threading.Lock()
        self._clusters: ClusterRegistry | None = None
        self.scheduler: SchedulerLoop | None = None
        # the scheduler loop's last order, for the queue views (jobs/queue_order.py)
        self.queue_orders = QueueOrderBoard()
        self.notifier: Notifier | None = None
        self.metrics = StateCollector(session_factory, self.inventory, self.clock)
        self.metrics_server: MetricsServer | None = None

    @property
    def clusters(self) -> ClusterRegistry:
        """The centre's clusters (execution/clusters.py), each backend built on first
        use; a backend given to the runtime is the first cluster's."""
        if self._clusters is None:
            with self._backend_lock:
                if self._clusters is None:
                    from rechenwerk.execution.clusters import ClusterRegistry, load_clusters
                    from rechenwerk.execution.factory import make_backend

                    specs = load_clusters(self.settings)
                    given = ({specs[0].name: self._backend} if self._backend is not None
                             else {})
                    settings = self.settings
                    self._clusters = ClusterRegistry(
                        specs, make=lambda s: instrumented(make_backend(s.settings(settings))),
                        backends=given)
        return self._clusters

    @property
    def backend(self) -> ExecutionBackend:
        """The first cluster's backend (the only one unless several are declared)."""
        if self._backend is None:
            clusters = self.clusters
            with self._backend_lock:
                if self._backend is None:
                    self._backend = clusters.backend(clusters.default)
        return self._backend

    def inventory(self) -> Sequence[NodeInventory]:
        """The backend's nodes (name, GPUs, GPU type, block)."""
        return self.backend.inventory()

    def centre_gpus(self) -> int:
        """Total GPUs of the centre's inventory (at least 1, so ratios stay defined)."""
        return sum(int(n.gpus) for n in self.inventory()) or 1

    def wake_scheduler(self) -> None:
        loop = self.scheduler
        if loop is not None:
            loop.wake()

    # --- background workers -----------------------------------------------------------
    def start_workers(self) -> None:
        """Start the scheduler loop and the notifier (``settings.scheduler_enabled``)."""
        from rechenwerk.jobs.loop import SchedulerLoop
        from rechenwerk.notifications.senders import LogSender, make_sender
        from rechenwerk.notifications.worker import Notifier

        loop = SchedulerLoop(self.session_factory, self.backend, settings=self.settings,
                             clock=self.clock, queue_orders=self.queue_orders,
                             clusters=self.clusters)
        loop.start()
        self.scheduler = loop
        sender = make_sender(self.settings)
        if isinstance(sender, LogSender):
            log.info("notifications are logged only (set RECHENWERK_SMTP_HOST to send e-mail)")
        self.notifier = Notifier(self.session_factory, sender, clock=self.clock,
                                 report_reminder_days=self.settings.report_reminder_days)
        self.notifier.start()

    def start_metrics_server(self) -> None:
        """``/metrics`` on ``settings.metrics_port`` (when set; see observability/http.py)."""
        if self.settings.metrics_port and self.metrics_server is None:
            server = MetricsServer(self, self.settings.metrics_host, self.settings.metrics_port)
            if server.start():
                self.metrics_server = server

    def stop_metrics_server(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None

    def stop_workers(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: Runtime = app.state.runtime
    runtime.start_metrics_server()
    if runtime.settings.scheduler_enabled:
        runtime.start_workers()
    try:
        yield
    finally:
        runtime.stop_workers()
        runtime.stop_metrics_server()


def create_app(settings: Settings | None = None, *,
               session_factory: sessionmaker[Session] | None = None,
               clock: Clock | None = None,
               backend: ExecutionBackend | None = None) -> FastAPI:
    """The application over one :class:`Runtime`; tests pass their own database, clock
    or backend."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Rechenwerk",
        version=__version__,
        description="REST API of a shared AI compute centre: access, jobs, accounting, planning.",
        lifespan=_lifespan,
        docs_url=None, redoc_url=None,  # served with local assets (api/docs_pages.py)
        # NUL characters and out-of-range integers in path and query parameters
        dependencies=[Depends(check_parameters)],
    )
    # bodies above 1 MiB (413; a report's PDF up to report_max_bytes) and NUL characters
    # in JSON and form strings (422)
    app.add_middleware(RequestBoundsMiddleware, large_bodies=[
        (DOCUMENT_PATH, settings.report_max_bytes),
        (PORTAL_DOCUMENT_PATH, settings.report_max_bytes + 64 * 1024),  # + form fields
        (SESSION_PROXY_PATH, SESSION_MAX_BODY)])  # notebooks and uploads in JupyterLab
    # request latency by route template (rechenwerk_http_request_duration_seconds)
    app.add_middleware(HttpMetricsMiddleware)
    # outermost: every request's log lines and its response carry one X-Request-ID
    app.add_middleware(RequestIdMiddleware)
    app.state.runtime = Runtime(settings, session_factory=session_factory, clock=clock,
                                backend=backend)
    from rechenwerk.api.problems import install_problem_handlers

    install_problem_handlers(app)

    @app.get("/api/v1/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    from rechenwerk.api.docs_pages import install_docs
    from rechenwerk.api.health import router as health_router

    install_docs(app)

    app.include_router(health_router)  # /healthz, /readyz

    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
    if not settings.metrics_port:  # else on a port of its own (Runtime.start_metrics_server)
        app.include_router(metrics_router)
    return app

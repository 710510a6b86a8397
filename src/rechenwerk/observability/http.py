"""``/metrics`` over HTTP: the request-latency middleware, the access-controlled route,
and the optional port of its own.

Who may scrape: a request with ``Authorization: Bearer <RECHENWERK_METRICS_TOKEN>`` (what
Prometheus sends with ``authorization: credentials_file``) or with an operator's API
token. Anyone else gets a 401 (no or unknown token) or 403 (a token of a non-operator)
problem response: the metrics name projects, which only operators see all of.

With ``RECHENWERK_METRICS_PORT`` the route is served on that port (on
``RECHENWERK_METRICS_HOST``, loopback by default) by a small server in a thread of the
server process, with the same access control, and not on the main port. With several
workers the first one to bind the port serves it (multiprocess mode makes every worker's
answer the same).
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rechenwerk.api.deps import DbSession, current_user, runtime_of, settings_of
from rechenwerk.errors import PermissionDenied
from rechenwerk.observability.instruments import observe_request, scrape_registry

if TYPE_CHECKING:
    from rechenwerk.app import Runtime

log = logging.getLogger("rechenwerk.metrics")

router = APIRouter(include_in_schema=False)


class HttpMetricsMiddleware:
    """Times every HTTP request into ``rechenwerk_http_request_duration_seconds`` by
    method, route template (read from the scope after routing) and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets when the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            observe_request(str(scope.get("method", "")),
                            route if isinstance(route, str) else None, status,
                            time.perf_counter() - t0)


def _is_metrics_token(request: Request) -> bool:
    token = settings_of(request).metrics_token
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(
        secret.strip().encode(), token.encode())


async def authorize_scrape(request: Request, session: DbSession) -> None:
    """The metrics token, or an operator's API token (401/403 otherwise)."""
    if _is_metrics_token(request):
        return
    user = await current_user(request, session)  # 401: no, unknown or expired token
    if not user.is_operator:
        raise PermissionDenied(
            "only operators and the metrics scraper may read metrics",
            hint="Scrape with RECHENWERK_METRICS_TOKEN (Prometheus: authorization: "
            "credentials_file) or an operator's API token (docs/operations.md).")


@router.get("/metrics")
async def metrics(request: Request, session: DbSession) -> Response:
    await authorize_scrape(request, session)
    # the state in the request's own transaction (one per request, as everywhere)
    registry = scrape_registry(runtime_of(request).metrics.bound(session))
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def metrics_app(runtime: Runtime) -> FastAPI:
    """The app of the metrics port: ``/metrics`` only, over the server's runtime."""
    from rechenwerk.api.problems import install_problem_handlers

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(router)
    return app


class MetricsServer:
    """``/metrics`` on a port of its own, served by uvicorn in a daemon thread."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> bool:
        """Bind and serve; False when the port is taken (e.g. by another worker)."""
        import uvicorn

        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            log.info("metrics port %s:%d not bound here (%s); another worker may serve it",
                     self.host, self.port, exc)
            return False
        sock.listen(64)
        # log_config=None: leave the server's logging as it is.
        config = uvicorn.Config(metrics_app(self.runtime), lifespan="off", access_log=False,
                                log_config=None, log_level=None)
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="rechenwerk-metrics", daemon=True)
        self._thread.start()
        log.info("metrics served on http://%s:%d/metrics", self.host, self.port)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server = None

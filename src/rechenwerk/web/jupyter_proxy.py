"""The portal's reverse proxy into a running session's JupyterLab: ``/jupyter/<job>/...``
(HTTP and WebSocket) on the portal's own origin, so no port of a compute node is exposed
to the browser.

Every request is the session owner's or it is "no such session" (404; WebSocket: closed
before the handshake), whoever asks: operators too, and nothing tells whether the session
exists. The owner is the portal login of the request's cookie; the portal's cookies are
stripped before the request goes on, and JupyterLab's token (``session.json``, never shown
to anyone) is added. Paths must stay inside the session's prefix (no ``.``/``..``
segments, backslashes or NULs); WebSockets and unsafe requests (POST, PUT, ...) must come
from the portal's own origin (no cross-site request forgery or WebSocket hijacking:
JupyterLab's own XSRF check does not see the token the proxy adds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import httpx
from fastapi import APIRouter, WebSocket
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from rechenwerk.api.deps import runtime_of, settings_of
from rechenwerk.api.problems import problem
from rechenwerk.errors import NotFound
from rechenwerk.jobs.states import TERMINAL_STATES, JobState
from rechenwerk.sessions.jupyter_job import base_url
from rechenwerk.sessions.service import Endpoint, endpoint_of, own_session
from rechenwerk.web.session import COOKIE_NAME, FLASH_COOKIE, resolve_session

router = APIRouter(include_in_schema=False)
_log = logging.getLogger(__name__)

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Not passed on in either direction (RFC 9110 hop-by-hop, and what the proxy sets itself).
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "trailers", "transfer-encoding", "upgrade", "host",
                  "content-length"})
# Never sent to JupyterLab: the portal's login, and what its origin checks would refuse.
_REQUEST_DROP = _HOP | {"authorization", "cookie", "origin", "referer", "x-csrf-token"}
_PORTAL_COOKIES = frozenset({COOKIE_NAME, FLASH_COOKIE})
MAX_WS_MESSAGE = 64 * 1024 * 1024  # kernel messages with large outputs
UPSTREAM_TIMEOUT = httpx.Timeout(30.0, read=300.0)
WS_OPEN_TIMEOUT_S = 180.0


@dataclass(frozen=True, slots=True)
class _Target:
    endpoint: Endpoint | None
    state: str  # the job's state, for a "starting"/"ended" answer when not reachable


def _inside(raw_path: str, prefix: str) -> bool:
    """The path is the session's own: under its prefix, no dot segments, no tricks."""
    if not raw_path.startswith(prefix):
        return False
    decoded = unquote(raw_path[len(prefix):])
    if "\\" in decoded or "\x00" in decoded:
        return False
    return not any(part in (".", "..") for part in decoded.split("/"))


def _resolve(request: Request, job_id: int) -> _Target:
    """Who asks and where their session listens (in the thread pool: the database is
    synchronous). NotFound for anybody but the owner."""
    settings = settings_of(request)
    with runtime_of(request).session_factory() as db:
        user = resolve_session(request, db).user
        if user is None or not user.is_active:
            raise NotFound(f"no session {job_id}", field="session")
        job = own_session(db, user, job_id)
        target = _Target(endpoint_of(job, settings, lambda: runtime_of(request).backend),
                         job.state)
        db.commit()  # the portal session's last-seen time
    return target


def _cookies(header: str) -> str:
    kept = [c.strip() for c in header.split(";")
            if c.strip() and c.split("=", 1)[0].strip() not in _PORTAL_COOKIES]
    return "; ".join(kept)


def _upstream_headers(headers: Any, token: str) -> dict[str, str]:
    # a WebSocket's own handshake headers are the proxy's client's to set anew
    out = {k: v for k, v in headers.items()
           if k.lower() not in _REQUEST_DROP and not k.lower().startswith("sec-websocket-")}
    jupyter_cookies = _cookies(headers.get("cookie", ""))
    if jupyter_cookies:
        out["cookie"] = jupyter_cookies
    out["authorization"] = f"token {token}"
    return out


def _not_reachable(request: Request, job_id: int, state: str) -> Response:
    """The session exists (the owner asked) but JupyterLab cannot be reached now."""
    wants_page = "text/html" in request.headers.get("accept", "")
    if wants_page and request.method == "GET":
        return RedirectResponse(f"/sessions/{job_id}", status_code=303)
    ended = JobState(state) in TERMINAL_STATES
    return problem(
        410 if ended else 503, "session_ended" if ended else "session_not_ready",
        "Session ended" if ended else "Session not ready",
        f"session {job_id} has ended ({state})" if ended
        else f"session {job_id} is {state}: JupyterLab is not reachable yet",
        hint="Start a new session." if ended else "Wait until the session page says it "
        "is ready, then retry.", instance=str(request.url.path))


def _response_headers(upstream: httpx.Response, origin: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in upstream.headers.multi_items():
        k = key.lower()
        if k in _HOP:
            continue
        if k == "set-cookie" and value.split("=", 1)[0].strip() in _PORTAL_COOKIES:
            continue  # a session (any code the user ran) never sets the portal's login
        if k == "location" and value.startswith(origin):
            value = value[len(origin):] or "/"
        out.append((k, value))
    return out


@router.api_route("/jupyter/{job_id}/{path:path}", methods=METHODS)
async def proxy_http(request: Request, job_id: int, path: str) -> Response:
    prefix = base_url(job_id)
    raw = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    not_found = problem(404, "not_found", "Not found", f"no session {job_id}",
                        instance=request.url.path)
    if not _inside(raw, prefix):
        return not_found
    try:
        target = await run_in_threadpool(_resolve, request, job_id)
    except NotFound:
        return not_found
    if request.method not in SAFE_METHODS and not _same_site_request(request):
        # JupyterLab's own XSRF check does not apply to the token the proxy adds: a
        # request another origin made the browser send is refused here
        return problem(403, "cross_origin", "Cross-origin request refused",
                       f"a {request.method} from another origin into session {job_id}",
                       hint="Use JupyterLab from the portal's own address.",
                       instance=request.url.path)
    endpoint = target.endpoint
    if endpoint is None:
        return _not_reachable(request, job_id, target.state)
    body = await request.body()
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = f"{endpoint.origin}{raw}" + (f"?{query}" if query else "")
    transport = (httpx.AsyncHTTPTransport(uds=endpoint.uds) if endpoint.uds is not None
                 else None)
    client = httpx.AsyncClient(transport=transport, timeout=UPSTREAM_TIMEOUT,
                               follow_redirects=False)
    try:
        upstream = await client.send(
            client.build_request(request.method, url, content=body,
                                 headers=_upstream_headers(request.headers, endpoint.token)),
            stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        endpoint.close()
        _log.info("session %s: JupyterLab did not answer: %s", job_id, exc)
        return _not_reachable(request, job_id, JobState.STARTING.value)

    async def finish() -> None:
        await upstream.aclose()
        await client.aclose()
        endpoint.close()

    response = StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                 background=BackgroundTask(finish))
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                            for k, v in _response_headers(upstream, endpoint.origin)]
    return response


def _same_site_request(request: Request) -> bool:
    """An unsafe request came from the portal's own pages: its Origin (or, without one,
    its Referer) is this host. Clients that send neither are no browser (no CSRF)."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin") or request.headers.get("referer")
    return origin is None or urlsplit(origin).netloc == host


def _same_origin(ws: WebSocket) -> bool:
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    return bool(origin and host and urlsplit(origin).netloc == host)


async def _open_upstream(endpoint: Endpoint, raw: str, query: str, headers: dict[str, str],
                         subprotocols: list[str]) -> ClientConnection:
    target = f"{raw}?{query}" if query else raw
    common: dict[str, Any] = {
        "additional_headers": headers, "max_size": MAX_WS_MESSAGE, "compression": None,
        # JupyterLab answers a kernel's handshake once the kernel replied to kernel_info:
        # a new kernel on a loaded node takes a while, and a handshake cut short loses
        # what the notebook sent meanwhile
        "open_timeout": WS_OPEN_TIMEOUT_S, "subprotocols": subprotocols or None,
    }
    if endpoint.uds is not None:
        return await unix_connect(endpoint.uds, f"ws://localhost{target}", **common)
    return await connect(f"ws://{endpoint.host}:{endpoint.port}{target}", **common)


async def _pump_to_upstream(ws: WebSocket, upstream: ClientConnection) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        await upstream.send(data if data is not None else message.get("text", ""))


async def _pump_to_client(ws: WebSocket, upstream: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for data in upstream:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_text(data)


@router.websocket("/jupyter/{job_id}/{path:path}")
async def proxy_websocket(ws: WebSocket, job_id: int, path: str) -> None:
    raw = ws.scope.get("raw_path", b"").decode("latin-1") or ws.url.path
    if not _same_origin(ws) or not _inside(raw, base_url(job_id)):
        await ws.close(code=1008)
        return
    try:
        # the portal's session code reads only cookies, app and state: a WebSocket has them
        target = await run_in_threadpool(_resolve, cast(Request, ws), job_id)
    except NotFound:
        await ws.close(code=1008)
        return
    endpoint = target.endpoint
    if endpoint is None:
        await ws.close(code=1013)  # try again later
        return
    query = ws.scope.get("query_string", b"").decode("latin-1")
    try:
        upstream = await _open_upstream(
            endpoint, raw, query, _upstream_headers(ws.headers, endpoint.token),
            list(ws.scope.get("subprotocols") or []))
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        endpoint.close()
        _log.warning("session %s: JupyterLab refused the WebSocket: %r", job_id, exc)
        await ws.close(code=1011)
        return
    try:
        await ws.accept(subprotocol=upstream.subprotocol)
        tasks = [asyncio.ensure_future(_pump_to_upstream(ws, upstream)),
                 asyncio.ensure_future(_pump_to_client(ws, upstream))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            with contextlib.suppress(ConnectionClosed, RuntimeError):
                task.result()
    finally:
        await upstream.close()
        endpoint.close()
        with contextlib.suppress(RuntimeError):
            await ws.close()

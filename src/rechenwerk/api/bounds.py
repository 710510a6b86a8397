"""Bounds every request obeys before any endpoint runs (docs/security.md, "Limits").

- :class:`RequestBoundsMiddleware` (pure ASGI, installed once by ``app.py``): a request
  body larger than ``MAX_BODY_BYTES`` is a 413 problem response, refused from its
  ``Content-Length`` or, while streaming, as soon as the limit is passed (never read into
  memory beyond the limit). A JSON or form body with a NUL character in a string (key or
  value) is a 422 naming the field: PostgreSQL cannot store NUL in text.
- :func:`check_parameters` (an app-wide dependency): a NUL character in a path or query
  parameter is a 422 naming it; an integer path parameter (an id) outside the id columns'
  range (``MAX_ID``: INTEGER, 32 bits on PostgreSQL) is a 404 (no such id can exist), an
  integer query parameter (``offset``, ...) outside 64 bits a 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any, get_args
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rechenwerk.access.validation import MAX_DB_INT, MAX_ID, MIN_DB_INT, MIN_ID
from rechenwerk.errors import InvalidInput, NotFound

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: any JSON or form body
NUL = "\x00"
_LAX_INT = TypeAdapter(int)  # how FastAPI reads an integer path or query parameter


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


class RequestBoundsMiddleware:
    """413 for a body above ``max_body_bytes``; 422 for a NUL in a JSON or form string."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES,
                 large_bodies: Sequence[tuple[str, int]] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # (path regex, limit): uploads that may be larger (a report's PDF)
        self.large_bodies = [(re.compile(p), n) for p, n in large_bodies]

    def _limit(self, scope: Scope) -> int:
        path = str(scope.get("path", ""))
        return next((n for p, n in self.large_bodies if p.match(path)), self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        declared = headers.get("content-length", "")
        limit = self._limit(scope)
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        if scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS") and not declared:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        field = _nul_field(body, headers.get("content-type", ""))
        if field is not None:
            await _respond(scope, receive, send, 422, InvalidInput(
                f"{field}: contains a NUL character (\\u0000), which cannot be stored",
                field=field, hint="Remove the NUL characters from the field and send again."))
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send,
                         max_bytes: int) -> None:
        from rechenwerk.api.problems import problem

        limit = _mib(max_bytes)
        response = problem(
            413, "payload_too_large", "Request body too large",
            f"the request body is larger than the limit of {limit} "
            f"({max_bytes} bytes)",
            hint=f"Send at most {limit}; large job scripts belong in files in the job's "
                 "workdir, not in the request.",
            instance=str(scope.get("path", "")))
        response.headers["connection"] = "close"
        await response(scope, receive, send)


async def _respond(scope: Scope, receive: Receive, send: Send, status: int,
                   err: InvalidInput) -> None:
    from rechenwerk.api.problems import problem

    response = problem(status, err.code, err.title, err.message, hint=err.hint,
                       errors=[{"field": err.field, "message": err.message}],
                       instance=str(scope.get("path", "")))
    await response(scope, receive, send)


def _nul_field(body: bytes, content_type: str) -> str | None:
    """The path of the first string holding a NUL in a JSON or form body, else None
    (bodies that do not parse are left to the endpoint's own validation)."""
    if not body:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        for key, value in pairs:
            if NUL in key or NUL in value:
                return key.replace(NUL, "\\u0000")
        return None
    if kind == "application/json" or kind.endswith("+json"):
        if b"\\u0000" not in body and b"\x00" not in body:
            return None  # fast path: no NUL can be in there
        try:
            document = json.loads(body)
        except ValueError:
            return None
        for path in _nul_paths(document, ()):
            return ".".join(str(p) for p in path) or "(body)"
    return None


def _nul_paths(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield (*path, key.replace(NUL, "\\u0000"))
            yield from _nul_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_paths(item, (*path, i))


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    return any(a is int for a in get_args(annotation))


async def check_parameters(request: HTTPConnection) -> None:
    """No NUL in any path or query parameter; integer path parameters (ids) within the id
    columns' range, integer query parameters within 64 bits. HTTP requests and WebSockets
    (a session's kernels, ``web/jupyter_proxy.py``) alike."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise InvalidInput(f"{name}: contains a NUL character (\\u0000)", field=name,
                               hint="Remove the NUL character from the path.")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            shown = name.replace(NUL, "\\u0000")
            raise InvalidInput(f"{shown}: contains a NUL character (\\u0000)", field=shown,
                               hint="Remove the NUL character from the query.")
    route = request.scope.get("route")
    if route is None:
        return
    path_ints, query_ints = _int_params(route)
    for alias in path_ints:
        raw = request.path_params.get(alias)
        if _out_of_range(raw, MIN_ID, MAX_ID):
            raise NotFound(f"no item with {alias} {raw}: ids are at most {MAX_ID}",
                           field=alias, hint="Check the id (e.g. with the list command).")
    for alias in query_ints:
        for raw in request.query_params.getlist(alias):
            if _out_of_range(raw, MIN_DB_INT, MAX_DB_INT):
                raise InvalidInput(
                    f"{alias}: {raw} is outside the range {MIN_DB_INT}..{MAX_DB_INT}",
                    field=alias, hint=f"Give {alias} at most {MAX_DB_INT}.")


_CACHE_ATTR = "_rechenwerk_int_params"  # on the route object (routes are not hashable)


def _int_params(route: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The aliases of the route's integer path and query parameters (its dependencies'
    included), computed once per route."""
    known: tuple[tuple[str, ...], tuple[str, ...]] | None = getattr(route, _CACHE_ATTR, None)
    if known is None:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            known = ((), ())
        else:
            path: dict[str, None] = {}
            query: dict[str, None] = {}
            todo = [dependant]
            while todo:
                current = todo.pop()
                path.update((p.alias, None) for p in current.path_params
                            if _is_int(p.field_info.annotation))
                query.update((p.alias, None) for p in current.query_params
                             if _is_int(p.field_info.annotation))
                todo.extend(current.dependencies)
            known = (tuple(path), tuple(query))
        setattr(route, _CACHE_ATTR, known)
    return known


def _out_of_range(raw: object, low: int, high: int) -> bool:
    """Whether ``raw`` is a whole number the endpoint would accept but outside
    ``low..high`` (which the database cannot hold). The text is read as the endpoint reads
    it (pydantic's lax ``int``: ASCII digits, surrounding whitespace, ``_`` between digits,
    a ``.0`` fraction), so nothing that parses to a huge number slips past, and text that
    is no number at all (``²``, ``1e3``) is left to the endpoint's own 422."""
    if not isinstance(raw, str):
        return False
    try:
        value = _LAX_INT.validate_python(raw)
    except ValidationError as exc:
        # more digits than pydantic parses: certainly out of range
        return any(e["type"] == "int_parsing_size" for e in exc.errors())
    return not low <= value <= high

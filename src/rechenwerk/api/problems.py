"""RFC 9457 problem responses: the one place where errors become HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rechenwerk.errors import RechenwerkError

PROBLEM_TYPE_BASE = "https://rechenwerk.dev/problems/"
PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    hint: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if hint:
        body["hint"] = hint
    if errors:
        body["errors"] = errors
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _loc_path(loc: tuple[Any, ...] | list[Any]) -> str:
    # Drop FastAPI's "body"/"query" prefix so paths read like the input document.
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "(request)"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RechenwerkError)
    async def _domain_error(request: Request, exc: RechenwerkError) -> JSONResponse:
        errors = [{"field": i.path, "message": i.message} for i in exc.issues]
        if exc.field and not errors:
            errors = [{"field": exc.field, "message": exc.message}]
        return problem(
            exc.http_status,
            exc.code,
            exc.title,
            exc.message,
            hint=exc.hint,
            errors=errors or None,
            instance=str(request.url.path),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _loc_path(e.get("loc", ())), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "(request)", "message": "invalid"}
        return problem(
            422,
            "invalid_input",
            "Invalid input",
            f"{first['field']}: {first['message']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            hint="Correct the listed fields and send the request again.",
            errors=errors,
            instance=str(request.url.path),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthenticated", 403: "permission_denied", 404: "not_found",
                405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(
            exc.status_code,
            code,
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            instance=str(request.url.path),
        )

"""Structured logs: one JSON object per line (``rechenwerk server --log-format json``).

Every record carries the time, level, logger and message, and, where known, the
request's id (``X-Request-ID``: the client's if it sent a sane one, else a new one, and
echoed in the response), the authenticated user, the job and the scheduler cycle.
Uvicorn's access log comes out in the same format, with method, path, status and client.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Per request, a mutable record: the middleware creates it, authentication adds the user.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "rechenwerk_request", default=None)
# The scheduler cycle the loop is in (set by jobs/loop.py).
cycle_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "rechenwerk_cycle", default=None)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Attributes every LogRecord has; anything else was passed as ``extra=``.
# (uvicorn's color_message repeats the message with terminal colours)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName",
                                                    "color_message"}


def note_user(username: str) -> None:
    """Record the authenticated user for the logs of the current request."""
    record = _request.get()
    if record is not None:
        record["user"] = username


class RequestIdMiddleware:
    """Give each HTTP request an id, for its log lines and the ``X-Request-ID`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        token = _request.set({"request_id": request_id})

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5:
            client, method, path, version, status = record.args
            out.update(message=f"{method} {path} {status}", method=method, path=path,
                       status=int(str(status)), client=client, http_version=version)
        else:
            out["message"] = record.getMessage()
        context = _request.get()
        if context:
            out.update(context)
        cycle = cycle_var.get()
        if cycle is not None:
            out["cycle"] = cycle
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def uvicorn_log_config(log_format: str, level: str) -> dict[str, Any]:
    """``log_config`` for uvicorn: our loggers and uvicorn's in one format."""
    formatter: dict[str, Any] = (
        {"()": "rechenwerk.log_format.JsonFormatter"} if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"})
    access: dict[str, Any] = (
        formatter if log_format == "json"
        else {"()": "uvicorn.logging.AccessFormatter",
              "fmt": '%(asctime)s %(client_addr)s "%(request_line)s" %(status_code)s'})
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter, "access": access},
        "handlers": {"default": {**handler, "formatter": "default"},
                     "access": {**handler, "formatter": "access"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "rechenwerk": {"handlers": ["default"], "level": level.upper(),
                           "propagate": False},
        },
    }

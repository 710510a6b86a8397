"""One error hierarchy for the whole platform.

Every error carries a stable machine code, a human message (what went wrong), an
optional field path (where) and a hint (how to fix it). It is mapped once to HTTP
problem responses (``api/problems.py``) and once to CLI exit codes (``cli/output.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldIssue:
    """One problem with one input field, e.g. ``("periods", 1, "gpu_hours")``."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def path(self) -> str:
        return ".".join(str(p) for p in self.loc)


@dataclass(eq=False)
class RechenwerkError(Exception):
    """Base of every error the platform raises on purpose."""

    message: str
    hint: str | None = None
    field: str | None = None
    issues: list[FieldIssue] = dataclasses.field(default_factory=list)

    code = "error"
    http_status = 500
    exit_code = 1
    title = "Internal error"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        hint = f" Hint: {self.hint}" if self.hint else ""
        return f"{self.message}{where}{hint}"


class InvalidInput(RechenwerkError):
    code = "invalid_input"
    http_status = 422
    exit_code = 2
    title = "Invalid input"


class NotFound(RechenwerkError):
    code = "not_found"
    http_status = 404
    exit_code = 3
    title = "Not found"


class PermissionDenied(RechenwerkError):
    code = "permission_denied"
    http_status = 403
    exit_code = 4
    title = "Permission denied"


class Unauthenticated(RechenwerkError):
    code = "unauthenticated"
    http_status = 401
    exit_code = 4
    title = "Authentication required"


class TooManyAttempts(Unauthenticated):
    """Login refused for a while after repeated failures (brute-force protection)."""

    code = "too_many_attempts"
    http_status = 429
    title = "Too many failed attempts"


class Conflict(RechenwerkError):
    code = "conflict"
    http_status = 409
    exit_code = 5
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Invalid state transition"


class BudgetExceeded(RechenwerkError):
    code = "budget_exceeded"
    http_status = 402
    exit_code = 6
    title = "GPU-hour budget exceeded"


class BackendError(RechenwerkError):
    code = "backend_error"
    http_status = 502
    exit_code = 7
    title = "Execution backend error"


class BackendUnavailable(BackendError):
    code = "backend_unavailable"
    http_status = 503
    title = "Execution backend unavailable"


class ServiceUnavailable(RechenwerkError):
    code = "service_unavailable"
    http_status = 503
    exit_code = 8
    title = "Service unavailable"

"""One error hierarchy for the whole platform, and one way to turn field issues into it.

Every error carries a stable machine code, a human message (what went wrong), an
optional field path (where) and a hint (how to fix it). It is mapped once to HTTP
problem responses (``api/problems.py``) and once to CLI exit codes (``cli/output.py``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol


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


class AupNotAccepted(PermissionDenied):
    """The user has not yet accepted the centre's current acceptable-use policy."""

    code = "aup_not_accepted"
    title = "Acceptable-use policy not accepted"


class ReadOnlyToken(PermissionDenied):
    """A read-only API token was used for a request that changes something."""

    code = "read_only_token"
    title = "Read-only token"


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


# --------------------------------------------------------------------------- field issues
#
# The one way to turn a list of field issues (or a pydantic ValidationError) into
# InvalidInput: the message names the first issue, ``field`` is its path, ``issues`` lists
# them all (the API's ``errors``, the CLI's indented lines).


class _First(enum.Enum):
    ISSUE = "the first issue's path"


FIRST_ISSUE: Final = _First.ISSUE


class ValidationErrorLike(Protocol):
    """What is read of a pydantic ``ValidationError`` (this module imports no pydantic)."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...


def issues_from_validation(
    exc: ValidationErrorLike,
    *,
    describe: Callable[[Mapping[str, Any]], str] | None = None,
    root: tuple[str | int, ...] = (),
) -> list[FieldIssue]:
    """One :class:`FieldIssue` per pydantic error: its ``loc`` (``root`` when empty) and its
    ``msg`` (or ``describe(error)``)."""
    return [FieldIssue(tuple(e.get("loc", ())) or root,
                       describe(e) if describe is not None else str(e.get("msg", "invalid")))
            for e in exc.errors()]


def invalid_input(
    issues: Sequence[FieldIssue],
    *,
    prefix: str = "",
    message: str | None = None,
    count_more: bool = False,
    field: str | Literal[_First.ISSUE] | None = FIRST_ISSUE,
    hint: str | None = None,
) -> InvalidInput:
    """InvalidInput for ``issues`` (at least one): the message is
    ``<prefix><first path>: <first message>`` (plus `` (and N more)`` with ``count_more``)
    unless ``message`` is given; ``field`` defaults to the first issue's path."""
    first = issues[0]
    if message is None:
        more = f" (and {len(issues) - 1} more)" if count_more and len(issues) > 1 else ""
        message = f"{prefix}{first.path}: {first.message}{more}"
    return InvalidInput(message, field=first.path if field is FIRST_ISSUE else field,
                        issues=list(issues), hint=hint)


def raise_issues(issues: Iterable[FieldIssue], *, hint: str | None = None) -> None:
    """Raise :func:`invalid_input` for ``issues`` if there are any; return otherwise."""
    found = list(issues)
    if found:
        raise invalid_input(found, hint=hint)


def raise_collected(found: Sequence[InvalidInput]) -> None:
    """Raise the problems a check collected, all at once: one alone as it is (its message,
    field and hint), several as one InvalidInput with an issue per problem (its message
    and hint); return when there are none."""
    if len(found) == 1:
        raise found[0]
    if found:
        raise invalid_input([FieldIssue(tuple((e.field or "(input)").split(".")),
                                        e.message + (f". {e.hint}" if e.hint else ""))
                             for e in found], count_more=True)

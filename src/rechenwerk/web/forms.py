"""Form helpers: turn text fields into typed values (the adapter's job, as Pydantic does
for the JSON API) and the platform's errors into per-field messages, so a form that fails
keeps its input and shows each problem beside its field."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from rechenwerk.errors import (
    InvalidInput,
    RechenwerkError,
    invalid_input,
    issues_from_validation,
)

FORM_KEY = "_form"  # errors not tied to one field


class FormErrors(dict[str, str]):
    """field name -> message; ``FORM_KEY`` for errors about the whole form."""

    def add(self, name: str, message: str) -> None:
        """The first message per field stays; form-wide messages are all kept."""
        if name == FORM_KEY and name in self and message not in self[name]:
            self[name] = f"{self[name]} {message}"
        else:
            self.setdefault(name, message)

    def merge(self, other: FormErrors) -> None:
        for name, message in other.items():
            self.add(name, message)

    def raise_if_any(self) -> None:
        if self:
            first = next(iter(self.items()))
            raise InvalidInput(f"{first[0]}: {first[1]}", field=first[0])


def errors_from(exc: RechenwerkError | ValidationError, aliases: dict[str, str] | None = None,
                fields: set[str] | None = None) -> FormErrors:
    """Per-field messages from a platform error (its issues, else its field) or from a
    pydantic ValidationError of a request model. Errors about anything that is not one
    of the form's ``fields`` become the form-level message."""
    if isinstance(exc, ValidationError):
        exc = invalid_input(issues_from_validation(exc, root=(FORM_KEY,)))
    aliases = aliases or {}
    out = FormErrors()
    hint = f". {exc.hint}" if exc.hint else ""

    def key_for(path: str) -> str:
        # "depends_on.after_ok[2]" may be aliased as a whole or without its index
        key = aliases.get(path) or aliases.get(path.split("[", 1)[0], path)
        return key if fields is None or key in fields else FORM_KEY

    for issue in exc.issues:
        key = key_for(issue.path)
        plain = key != FORM_KEY or issue.path == FORM_KEY  # no path to name before it
        out.add(key, issue.message if plain else f"{issue.path}: {issue.message}")
    if exc.field and not exc.issues:
        out.add(key_for(exc.field), exc.message + hint)
    if not out:
        out.add(FORM_KEY, exc.message + hint)
    return out


def text(form: dict[str, str], name: str) -> str:
    return form.get(name, "").strip()


def number(
    form: dict[str, str], name: str, errors: FormErrors, *, label: str, required: bool = True,
    integer: bool = False, minimum: float | None = None,
) -> Any:
    raw = text(form, name).replace(",", "")
    if not raw:
        if required:
            errors.add(name, f"{label} is required")
        return None
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        errors.add(name, f"{label} must be {'a whole number' if integer else 'a number'}, "
                         f"got {raw!r}")
        return None
    if not math.isfinite(value):
        errors.add(name, f"{label} must be a finite number")
        return None
    if minimum is not None and value < minimum:
        errors.add(name, f"{label} must be at least {minimum:g}")
        return None
    return value


def moment(
    form: dict[str, str], name: str, errors: FormErrors, *, label: str, required: bool = True,
) -> datetime | None:
    """A date (``2026-03-01``) or date-time (``2026-03-01T12:00``), read as UTC."""
    raw = text(form, name)
    if not raw:
        if required:
            errors.add(name, f"{label} is required (YYYY-MM-DD)")
        return None
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        errors.add(name, f"{label} must be a date like 2026-03-01, got {raw!r}")
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def checkbox(form: dict[str, str], name: str) -> bool:
    return form.get(name, "") in ("on", "true", "1", "yes")

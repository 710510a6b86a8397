"""Checks of single input values shared by the access domains (slugs, choices, positive
numbers, references by id or name). Each raises :class:`InvalidInput` naming the field."""

from __future__ import annotations

import re
from collections.abc import Collection

from rechenwerk.errors import InvalidInput

SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


# Ids are INTEGER columns: 32 bits on PostgreSQL (64 on SQLite). A number outside that
# range names no row, and PostgreSQL refuses it in a query ("integer out of range").
MAX_ID = 2**31 - 1
MIN_ID = -(2**31)
# Other whole numbers that reach SQL (OFFSET) may use 64 bits (BIGINT, SQLite INTEGER).
MAX_DB_INT = 2**63 - 1
MIN_DB_INT = -(2**63)


def ref_is_id(ref: str | int) -> int | None:
    """The id a reference names (an int, or a string of ASCII digits up to ``MAX_ID``);
    None for a name/slug (and for digits past ``MAX_ID``, which then match no name)."""
    if isinstance(ref, int):
        return ref
    if not (ref.isascii() and ref.isdigit()) or len(ref) > len(str(MAX_ID)):
        return None
    value = int(ref)
    return value if value <= MAX_ID else None


def check_choice(value: str, choices: Collection[str], field: str) -> str:
    if value not in choices:
        raise InvalidInput(
            f"{field} {value!r} is not valid",
            field=field,
            hint="Use one of: " + ", ".join(sorted(choices)) + ".",
        )
    return value


def check_slug(value: str, field: str = "slug") -> str:
    if not SLUG_RE.match(value):
        raise InvalidInput(
            f"{field} {value!r} is not valid",
            field=field,
            hint="Use 2-63 lower-case letters, digits, '-' or '_', starting with a letter.",
        )
    return value


def check_positive(value: float, field: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is > 0 (or >= 0) and finite."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value or value == float("inf"):
        raise InvalidInput(
            f"{field} must be {'>= 0' if allow_zero else '> 0'}, got {value}",
            field=field,
        )
    return float(value)


MAX_SEARCH = 200


def search_pattern(q: str, field: str = "q") -> str | None:
    """A case-insensitive ``LIKE`` pattern for a search box (use with ``escape="\\\\"``):
    the term's own wildcards escaped, so a search for "50%" means those characters, not
    "50 and anything". ``None`` for an empty term; too long a term is refused, never cut."""
    term = q.strip()
    if not term:
        return None
    if len(term) > MAX_SEARCH:
        raise InvalidInput(
            f"the search term is {len(term)} characters long; at most {MAX_SEARCH} are "
            "allowed",
            field=field,
        )
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"

"""One page of a list: what every ``list_*`` service function returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from rechenwerk.errors import InvalidInput

T = TypeVar("T")

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def paginate(session: Session, stmt: Select[T], limit: int, offset: int) -> Page[T]:
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidInput(f"limit must be 1..{MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise InvalidInput(f"offset must be >= 0, got {offset}", field="offset")
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(session.scalars(stmt.limit(limit).offset(offset)).unique())
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)

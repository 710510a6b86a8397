"""The audit log: who changed what and when, and the operators' listing of it.

Every service function that changes a project, membership, proposal, award or account
calls :func:`record` in the same transaction as the change, so the log and the data can
never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.models import AuditEntry, User
from rechenwerk.access.paging import Page, paginate
from rechenwerk.clock import ensure_utc


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def record(
    session: Session,
    actor: User | None,
    action: str,
    entity: str,
    entity_id: int | str,
    changes: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Add one audit entry (flushed with the caller's transaction, never committed here).

    ``actor`` None means the system itself (e.g. the scheduler loop or ``admin demo``).
    ``changes`` maps a field to its new value or to ``[old, new]``.
    """
    entry = AuditEntry(
        at=at or datetime.now(UTC),
        actor_user_id=actor.id if actor is not None else None,
        actor=actor.username if actor is not None else "system",
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        changes=_jsonable(dict(changes or {})),
    )
    session.add(entry)
    return entry


def list_audit(
    session: Session, actor: User, *, entity: str | None = None, entity_id: str | None = None,
    user: str | None = None, action: str | None = None, since: datetime | None = None,
    limit: int = 50, offset: int = 0,
) -> Page[AuditEntry]:
    """The log, newest first (operators)."""
    # Imported here: access.security records to this log, so it imports this module.
    from rechenwerk.access.security import require_operator

    require_operator(actor)
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if entity:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if user:
        stmt = stmt.where(AuditEntry.actor == user)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action))
    if since:
        stmt = stmt.where(AuditEntry.at >= ensure_utc(since))
    return paginate(session, stmt, limit, offset)

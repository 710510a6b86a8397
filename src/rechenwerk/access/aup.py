"""The centre's acceptable-use policy (AUP): operators publish versioned texts; every
user must accept the current version before using the centre (submitting jobs,
proposals, creating API tokens) and again whenever a new version is published.

The rule lives here; each face enforces it in one place: the API in its user dependency
(``api/deps.py``: every request that changes something, except accepting the AUP and
revoking a token), the portal in its user dependency (``web/deps.py``: every page
redirects to ``/aup``). Until an AUP is published nothing is gated (the embedded
default). Publishing and accepting are audited and raise the auth generation, so every
server process's token cache sees the change at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.auth_generation import bump_auth_generation
from rechenwerk.access.models import AupAcceptance, AupVersion, User
from rechenwerk.errors import AupNotAccepted, Conflict, InvalidInput, NotFound

MAX_AUP_CHARS = 100_000
ACCEPT_HOW = ("Read it and accept it with `rechenwerk aup accept` or on the portal's "
              "page /aup.")


def current_aup(session: Session) -> AupVersion | None:
    """The newest published version, or None when the centre has none."""
    return session.scalars(
        select(AupVersion).order_by(AupVersion.version.desc()).limit(1)).first()


def require_current_aup(session: Session) -> AupVersion:
    aup = current_aup(session)
    if aup is None:
        raise NotFound("the centre has not published an acceptable-use policy",
                       hint="Nothing to accept: the centre can be used without one.")
    return aup


def list_aup_versions(session: Session) -> list[AupVersion]:
    return list(session.scalars(select(AupVersion).order_by(AupVersion.version.desc())))


def publish_aup(session: Session, actor: User | None, text: str, *,
                now: datetime) -> AupVersion:
    """Publish ``text`` as the next version; every user must accept it (again)."""
    from rechenwerk.access.security import require_operator  # security imports this module

    if actor is not None:
        require_operator(actor)
    body = text.strip()
    if not body:
        raise InvalidInput("the acceptable-use policy text is empty", field="text")
    if len(body) > MAX_AUP_CHARS:
        raise InvalidInput(f"the acceptable-use policy text is longer than "
                           f"{MAX_AUP_CHARS:,} characters", field="text")
    latest = session.scalar(select(func.max(AupVersion.version)))
    aup = AupVersion(version=int(latest or 0) + 1, text=body, published_at=now,
                     published_by=actor.username if actor is not None else "system")
    session.add(aup)
    session.flush()
    bump_auth_generation(session.connection())
    record(session, actor, "aup.publish", "aup", aup.version,
           {"version": aup.version, "characters": len(body)}, at=now)
    return aup


def accepted_at(session: Session, user_id: int, version: int) -> datetime | None:
    return session.scalar(select(AupAcceptance.accepted_at).where(
        AupAcceptance.user_id == user_id, AupAcceptance.version == version))


def pending_aup_version(session: Session, user_id: int) -> int | None:
    """The current AUP version when ``user_id`` has not accepted it, else None (also
    when no AUP is published). One query."""
    latest = select(func.max(AupVersion.version)).scalar_subquery()
    row = session.execute(
        select(latest, select(AupAcceptance.id).where(
            AupAcceptance.user_id == user_id,
            AupAcceptance.version == latest).scalar_subquery())).one()
    version, acceptance = row
    if version is None or acceptance is not None:
        return None
    return int(version)


def aup_refusal(version: int) -> AupNotAccepted:
    return AupNotAccepted(
        f"you have not accepted the centre's acceptable-use policy (version {version}): "
        "until then no jobs, proposals or API tokens", hint=ACCEPT_HOW)


def require_aup_accepted(session: Session, user: User) -> None:
    """AupNotAccepted (403) unless ``user`` accepted the current AUP (or there is none)."""
    version = pending_aup_version(session, user.id)
    if version is not None:
        raise aup_refusal(version)


def accept_aup(session: Session, user: User, version: int, *,
               now: datetime) -> AupAcceptance:
    """Record that ``user`` accepts ``version``, which must be the current one (so
    nobody accepts a text they were not shown). Accepting it again changes nothing."""
    aup = require_current_aup(session)
    if version != aup.version:
        raise Conflict(
            f"version {version} is not the current acceptable-use policy "
            f"(version {aup.version})",
            field="version", hint="Read the current version and accept that one.")
    mine = select(AupAcceptance).where(AupAcceptance.user_id == user.id,
                                       AupAcceptance.version == version)
    existing = session.scalars(mine).first()
    if existing is not None:
        return existing
    acceptance = AupAcceptance(user_id=user.id, version=version, accepted_at=now)
    try:
        with session.begin_nested():  # two clicks at once: the second finds the first
            session.add(acceptance)
    except IntegrityError:
        return session.scalars(mine).one()
    bump_auth_generation(session.connection())
    record(session, user, "aup.accept", "aup", version,
           {"user": user.username, "version": version}, at=now)
    return acceptance

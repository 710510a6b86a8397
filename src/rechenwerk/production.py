"""Production mode: what ``rechenwerk server`` refuses outside the embedded default.

The embedded default (SQLite, the local executor, demo data, the development secret) is
for trying Rechenwerk on one machine, reachable from it alone. With
``RECHENWERK_ENV=production``, or bound to an address beyond loopback (others can reach
it), the server refuses to start with what would let anyone in or lose data, and says
which setting to change:

- the development (public) secret key, or one too short: anyone could forge sessions;
- SQLite on a network bind: one file on one machine, no concurrent writers across hosts,
  no backup while running; use PostgreSQL;
- demo data: users whose passwords are public (``<name>-demo``) and the demo tokens.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.config import DEV_SECRET_KEY, MIN_SECRET_KEY_LENGTH, SECRET_KEY_HOW, Settings
from rechenwerk.errors import InvalidInput


def is_loopback(host: str) -> bool:
    """Only this machine can reach a server bound to ``host`` ("" and 0.0.0.0 are every
    interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it


def production_reason(settings: Settings, bind_host: str) -> str | None:
    """Why this start counts as production, or None for the embedded default."""
    if settings.env == "production":
        return "RECHENWERK_ENV=production"
    if not is_loopback(bind_host):
        return f"the server listens on {bind_host}, beyond this machine"
    return None


def check_production(settings: Settings, bind_host: str, session: Session | None) -> None:
    """Raise InvalidInput (one line, the setting to change) for the first refusal."""
    why = production_reason(settings, bind_host)
    if why is None:
        return
    key = settings.secret_key
    if key == DEV_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
        raise InvalidInput(
            f"production ({why}): RECHENWERK_SECRET_KEY is the development value or shorter "
            f"than {MIN_SECRET_KEY_LENGTH} characters", field="secret_key",
            hint=SECRET_KEY_HOW[0].upper() + SECRET_KEY_HOW[1:] + ".")
    if settings.effective_database_url.startswith("sqlite") and not is_loopback(bind_host):
        raise InvalidInput(
            f"production ({why}): SQLite is for one machine's own use, not for a server "
            "others reach", field="database_url",
            hint="Set RECHENWERK_DATABASE_URL to PostgreSQL, e.g. "
                 "postgresql+psycopg://rechenwerk:PASSWORD@db-host/rechenwerk "
                 "(docs/operations.md), or bind to 127.0.0.1.")
    if session is not None:
        demo = demo_users_with_public_passwords(session)
        if demo:
            raise InvalidInput(
                f"production ({why}): demo data is loaded: {', '.join(demo)} can log in with "
                "the public demo passwords", field="database_url",
                hint="Point RECHENWERK_DATABASE_URL at the centre's own database (the demo "
                     "belongs in a separate one), or set new passwords with `rechenwerk "
                     "admin user password` and revoke the demo tokens.")


def demo_users_with_public_passwords(session: Session) -> list[str]:
    from rechenwerk.access.demo import USERS, demo_password
    from rechenwerk.access.models import User
    from rechenwerk.access.security import verify_password

    names = [u[0] for u in USERS]
    rows = session.execute(select(User.username, User.password_hash).where(
        User.username.in_(names), User.is_active.is_(True))).all()
    return sorted(name for name, hashed in rows
                  if hashed and verify_password(hashed, demo_password(name)))

"""Tables of federated sign-in: who an OpenID Provider's ``sub`` is here, and the sign-ins
that are under way."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rechenwerk.access.models import User
from rechenwerk.store.base import Base, UTCDateTime


class OidcIdentity(Base):
    """A person at a provider (issuer + sub: never reassigned, unlike e-mail addresses)
    linked to one Rechenwerk user."""

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(32))  # settings name, for the audit log
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    # The global rights this identity's claims granted (so that they are taken back when
    # the claim disappears, while rights given by hand stay): {"operator": bool, ...}.
    granted: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class OidcPending(Base):
    """A sign-in under way: a browser's authorization request (kind "web", looked up by
    its state) or a CLI's device authorization (kind "device", by the handle the CLI
    polls with). Deleted when used, so a state or handle works once."""

    __tablename__ = "oidc_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256
    kind: Mapped[str] = mapped_column(String(8))
    provider: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(128), default="")
    code_verifier: Mapped[str] = mapped_column(String(128), default="")
    device_code: Mapped[str] = mapped_column(Text, default="")
    next_url: Mapped[str] = mapped_column(String(500), default="/")
    # Linking an existing account: the user who proved it (signed in when starting).
    link_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

"""Support tables: one row per request and one per message of its conversation.

``first_answered_at`` and ``closed_at`` are kept on the request (not derived from the
messages and the audit log) so the report's response times are one scan of one table.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rechenwerk.access.models import Project, User
from rechenwerk.store.base import Base, UTCDateTime


class SupportKind(enum.StrEnum):
    ONBOARDING = "onboarding"
    PORTING = "porting"  # porting and scaling help
    DATA = "data"
    OTHER = "other"


class SupportState(enum.StrEnum):
    OPEN = "open"  # waiting for an operator, nobody assigned
    ASSIGNED = "assigned"  # waiting for the assigned operator
    ANSWERED = "answered"  # an operator answered: waiting for the requester
    CLOSED = "closed"


KIND_LABELS: dict[str, str] = {
    "onboarding": "Onboarding",
    "porting": "Porting and scaling",
    "data": "Data",
    "other": "Other",
}


class SupportRequest(Base):
    __tablename__ = "support_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('onboarding', 'porting', 'data', 'other')", name="kind"),
        CheckConstraint("state IN ('open', 'assigned', 'answered', 'closed')", name="state"),
        Index("ix_support_requests_state_created", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    requester_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the latest close

    project: Mapped[Project] = relationship(lazy="joined")
    requester: Mapped[User] = relationship(lazy="joined", foreign_keys=[requester_user_id])
    assignee: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[assignee_user_id])


class SupportMessage(Base):
    """One message of a request's conversation; the first is the request's body."""

    __tablename__ = "support_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("support_requests.id", ondelete="CASCADE"), index=True
    )
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(64))  # username at the time
    # Written as the centre (an operator who is not the requester): counts as an answer.
    from_operator: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

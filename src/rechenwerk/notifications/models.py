"""Outbox and per-user preferences.

Every notification is first written to ``notification_outbox`` in the same transaction as
whatever caused it (or by an idempotent scan); a worker sends queued rows and retries
failures with exponential back-off. ``dedup_key`` is unique, so a scan that runs twice, or
two server processes, never queue the same notification twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rechenwerk.store.base import Base, UTCDateTime


class OutboxMessage(Base):
    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    to_address: Mapped[str] = mapped_column(String(254))
    event: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # True once the retries are used up; an operator may re-queue it.
    gave_up: Mapped[bool] = mapped_column(Boolean, default=False)


class NotificationPreference(Base):
    """What a user wants to hear about beyond the defaults (decisions, expiring awards and
    low balances are always sent to the PI/applicant; job events are opt-in)."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    job_finished: Mapped[bool] = mapped_column(Boolean, default=False)
    job_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Warn the PI when a period's available GPU-hours fall below this share of its award.
    low_balance_percent: Mapped[int] = mapped_column(Integer, default=10)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

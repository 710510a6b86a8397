"""Access domain tables: who may use the centre, for what, and with how many GPU-hours.

Organisations apply through calls; proposals are reviewed; accepted proposals lead to
awards of GPU-hours split into periods; projects (the Slurm account) hold members in
roles. Quantities are typed numbers (float GPU-hours, EUR) — never strings.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rechenwerk.store.base import Base, UTCDateTime


class OrgKind(enum.StrEnum):
    UNIVERSITY = "university"
    RESEARCH_INSTITUTE = "research_institute"
    SME = "sme"
    STARTUP = "startup"
    ENTERPRISE = "enterprise"
    PUBLIC_AGENCY = "public_agency"


class ProjectRole(enum.StrEnum):
    PI = "pi"
    MEMBER = "member"
    VIEWER = "viewer"


class AccessMode(enum.StrEnum):
    RESEARCH = "research"
    INNOVATION = "innovation"  # SMEs and startups
    FAST_LANE = "fast_lane"  # small, quick grants
    PAY_PER_USE = "pay_per_use"


class ProposalState(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # by the PI or an operator before the decision; terminal


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2, e.g. "DE"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), index=True
    )
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    is_reviewer: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    organization: Mapped[Organization | None] = relationship(lazy="joined")


class ApiToken(Base):
    """An API token; only the SHA-256 of the secret is stored (shown once at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise it
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "full" or "read" (safe methods only; api/deps.py enforces it).
    scope: Mapped[str] = mapped_column(String(8), default="full", server_default="full")

    user: Mapped[User] = relationship(lazy="joined")


class PortalSessionRecord(Base):
    """A portal login (``access/portal_sessions.py``): the cookie carries only a random id
    of 256 bits, stored here as its SHA-256; this row decides whether the id is valid."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Per-session secret behind the session's CSRF token (HMAC with the server's key).
    csrf_secret: Mapped[str] = mapped_column(String(64))
    # Short hash of the password hash at login: a password changed by any path ends it.
    password_fp: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # also the Slurm account
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    pi_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # OECD FORD code, e.g. "1.2" (access/fields_of_science.py); None = not given
    field_of_science: Mapped[str | None] = mapped_column(String(8))
    # approved | pending | rejected: where the centre approves new projects
    # (``project_approval``), a PI's project waits for an operator before it works.
    approval: Mapped[str] = mapped_column(String(16), default="approved", index=True)
    approval_note: Mapped[str] = mapped_column(Text, default="")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    organization: Mapped[Organization] = relationship(lazy="joined")
    pi: Mapped[User] = relationship(lazy="joined", foreign_keys=[pi_user_id])

    @property
    def is_approved(self) -> bool:
        return self.approval == "approved"


class ProjectMembership(Base):
    __tablename__ = "project_memberships"
    __table_args__ = (CheckConstraint("role IN ('pi', 'member', 'viewer')", name="role"),)

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who made it: None by hand (API, CLI, portal); "oidc:<provider>" granted by a
    # sign-in's claims, and removed by the sign-in whose claims no longer grant it.
    source: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship(lazy="joined")


class CallType(Base):
    """A kind of call as data (``access.call_type_rules.CallTypeSpec`` in a row): its
    GPU-hour range, durations, eligibility, review steps, decision deadline and how
    proposals are collected. Calls name one; its rules apply to their proposals."""

    __tablename__ = "call_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    min_gpu_hours: Mapped[float | None] = mapped_column(Float)
    max_gpu_hours: Mapped[float | None] = mapped_column(Float)
    duration_months: Mapped[list[int]] = mapped_column(JSON)  # empty: not asked
    eligible_kinds: Mapped[list[str]] = mapped_column(JSON)
    countries: Mapped[str] = mapped_column(String(32))  # "any" or a country list's key
    review_steps: Mapped[list[str]] = mapped_column(JSON)
    decision_working_days: Mapped[int] = mapped_column(Integer)
    submission_mode: Mapped[str] = mapped_column(String(16))  # window, cutoffs, rolling
    cutoff_period: Mapped[str | None] = mapped_column(String(16))  # monthly, quarterly
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # submitted reviews the scientific step needs (types with that step)
    min_reviews: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    access_mode: Mapped[str] = mapped_column(String(32))
    eligible_kinds: Mapped[list[str]] = mapped_column(JSON)  # organisation kinds
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # closed early by hand
    max_gpu_hours: Mapped[float | None] = mapped_column(Float)  # per proposal
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    call_type_id: Mapped[int] = mapped_column(ForeignKey("call_types.id"), index=True)
    # GPU-hours the call may award in all (the ranking's budget; null: no budget)
    budget_gpu_hours: Mapped[float | None] = mapped_column(Float)

    call_type: Mapped[CallType] = relationship(lazy="joined")


class Proposal(Base):
    __tablename__ = "proposals"
    __table_args__ = (CheckConstraint("requested_gpu_hours > 0", name="requested_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    applicant_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    abstract: Mapped[str] = mapped_column(Text, default="")
    justification: Mapped[str] = mapped_column(Text, default="")
    gpu_type: Mapped[str] = mapped_column(String(64))
    requested_gpu_hours: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), index=True)
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    duration_months: Mapped[int | None] = mapped_column(Integer)  # asked by the call type
    # The decision is due on this day (set on submission from the call type's deadline in
    # working days; null before submission and for proposals submitted before call types).
    due_on: Mapped[date | None] = mapped_column(Date, index=True)
    # The training-compute estimate the applicant attached (``access.estimates``): the
    # planner's inputs (schema of POST /api/v1/plan/train), its result as computed then
    # (``TrainingEstimate.to_dict()``; kept, so later planner changes do not rewrite what
    # the reviewers saw) and when. All three are set together or all are null.
    estimate_inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    estimate_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    estimate_attached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the applicant's one reply to the reviews (review step right_to_reply)
    reply_text: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the decision: GPU-hours granted (accepted; partial allowed) and the letter's text
    granted_gpu_hours: Mapped[float | None] = mapped_column(Float)
    # the confirmed ranking of the call (review step ranking): when, and its recommendation
    ranked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recommended_gpu_hours: Mapped[float | None] = mapped_column(Float)
    decision_letter: Mapped[str | None] = mapped_column(Text)

    call: Mapped[Call] = relationship(lazy="joined")
    project: Mapped[Project] = relationship(lazy="joined")
    applicant: Mapped[User] = relationship(lazy="joined", foreign_keys=[applicant_user_id])
    withdrawn_by: Mapped[User | None] = relationship(lazy="joined",
                                                     foreign_keys=[withdrawn_by_user_id])


class Review(Base):
    """A reviewer's assignment to a proposal and, once given, the review itself."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("proposal_id", "reviewer_user_id"),
        CheckConstraint("technical_score BETWEEN 1 AND 5", name="technical_range"),
        CheckConstraint("scientific_score BETWEEN 1 AND 5", name="scientific_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), index=True
    )
    reviewer_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    technical_score: Mapped[int | None] = mapped_column(Integer)
    scientific_score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The assignment is an invitation: the reviewer accepts or declines (with a reason)
    # by ``due_on``; only accepted reviewers submit. Migration 0024 marks reviews from
    # before invitations existed as accepted at their assignment.
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted: Mapped[bool | None] = mapped_column(Boolean)
    due_on: Mapped[date | None] = mapped_column(Date)
    decline_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    reviewer: Mapped[User] = relationship(lazy="joined")


class ProposalAssessment(Base):
    """An operator's check at one review step (eligibility, technical): pass or fail with
    a note. The latest of a step counts; ``by_user_id`` None: implied by migration 0024
    for proposals already under review (see docs/access.md "Review pipeline")."""

    __tablename__ = "proposal_assessments"
    __table_args__ = (
        CheckConstraint("outcome IN ('pass', 'fail')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(8))
    note: Mapped[str] = mapped_column(Text, default="")
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    by: Mapped[User | None] = relationship(lazy="joined")


class Award(Base):
    """GPU-hours granted to a project, split into periods (see :class:`AwardPeriod`).

    Unused hours of one period carry over into the next up to
    ``carry_over_limit_gpu_hours``; nothing is usable after ``expires_at``.
    """

    __tablename__ = "awards"
    __table_args__ = (
        CheckConstraint("gpu_hours > 0", name="gpu_hours_positive"),
        CheckConstraint("carry_over_limit_gpu_hours >= 0", name="carry_over_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # One award per proposal (unique: migration 0016); awards without one are many.
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), index=True,
                                                    unique=True)
    gpu_type: Mapped[str] = mapped_column(String(64))
    # valid on this cluster only; None: on every cluster offering its GPU type
    cluster: Mapped[str | None] = mapped_column(String(32))
    gpu_hours: Mapped[float] = mapped_column(Float)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    carry_over_limit_gpu_hours: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)  # see AwardVersion

    project: Mapped[Project] = relationship(lazy="joined")
    periods: Mapped[list[AwardPeriod]] = relationship(
        back_populates="award",
        order_by="AwardPeriod.starts_at",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class AwardPeriod(Base):
    __tablename__ = "award_periods"
    __table_args__ = (
        CheckConstraint("gpu_hours >= 0", name="gpu_hours_nonnegative"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gpu_hours: Mapped[float] = mapped_column(Float)

    award: Mapped[Award] = relationship(back_populates="periods")


class AwardChangeKind(enum.StrEnum):
    EXTENSION = "extension"  # a later end, the same GPU-hours
    SUPPLEMENT = "supplement"  # more GPU-hours, the same end
    EARLY_END = "early_end"  # end before expires_at; later periods' hours are released


class AwardChangeState(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class AwardChange(Base):
    """A PI's request to change an award, and the operator's decision on it. An approved
    change makes a new :class:`AwardVersion`."""

    __tablename__ = "award_changes"
    __table_args__ = (
        CheckConstraint("extra_gpu_hours IS NULL OR extra_gpu_hours > 0",
                        name="extra_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"),
                                          index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    # What was asked: the new end (extension, early end) or the extra GPU-hours.
    requested_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extra_gpu_hours: Mapped[float | None] = mapped_column(Float)
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What was decided (an operator may grant less than asked, or another date).
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    granted_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    granted_gpu_hours: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int | None] = mapped_column(Integer)  # the award version it made

    award: Mapped[Award] = relationship(lazy="joined")
    requested_by: Mapped[User] = relationship(lazy="joined",
                                              foreign_keys=[requested_by_user_id])
    decided_by: Mapped[User | None] = relationship(lazy="joined",
                                                   foreign_keys=[decided_by_user_id])


class AwardVersion(Base):
    """The award as it was after its creation (version 1) and after each approved change:
    GPU-hours, end and periods, so its history can be shown and audited."""

    __tablename__ = "award_versions"
    __table_args__ = (UniqueConstraint("award_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"),
                                          index=True)
    version: Mapped[int] = mapped_column(Integer)
    change_id: Mapped[int | None] = mapped_column(ForeignKey("award_changes.id"))
    gpu_hours: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # [[starts_at ISO, ends_at ISO, gpu_hours], ...]
    periods: Mapped[list[list[Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ReportTask(Base):
    """A report an award's PI owes the centre: a status report at the end of each award
    period but the last (for continuation) and a final report some months after the
    award ends (results, use of the machine, publications). Operators accept it or send
    it back for changes."""

    __tablename__ = "report_tasks"
    __table_args__ = (UniqueConstraint("award_id", "kind", "period_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"),
                                          index=True)
    kind: Mapped[str] = mapped_column(String(16))  # status | final
    period_index: Mapped[int] = mapped_column(Integer)  # status: the period; final: -1
    due_on: Mapped[date] = mapped_column(Date, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open|submitted|accepted
    summary: Mapped[str] = mapped_column(Text, default="")
    # [{"doi": "10.1234/x", "title": "..."}]
    publications: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    document_name: Mapped[str | None] = mapped_column(String(200))  # as uploaded, cleaned
    document_bytes: Mapped[int | None] = mapped_column(Integer)
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    award: Mapped[Award] = relationship(lazy="joined")


class PayPerUseAccount(Base):
    """A project's pay-per-use account: used GPU-hours are billed at a price per GPU type,
    up to a credit limit (EUR)."""

    __tablename__ = "pay_per_use_accounts"
    __table_args__ = (CheckConstraint("credit_limit_eur >= 0", name="credit_nonnegative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    credit_limit_eur: Mapped[float] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    project: Mapped[Project] = relationship(lazy="joined")
    prices: Mapped[list[PayPerUsePrice]] = relationship(
        back_populates="account",
        order_by="PayPerUsePrice.gpu_type",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    def price_for(self, gpu_type: str) -> float | None:
        """EUR per GPU-hour for ``gpu_type``, or None when the account has no price for it."""
        for p in self.prices:
            if p.gpu_type == gpu_type:
                return p.eur_per_gpu_hour
        return None


class PayPerUsePrice(Base):
    __tablename__ = "pay_per_use_prices"
    __table_args__ = (
        UniqueConstraint("account_id", "gpu_type"),
        CheckConstraint("eur_per_gpu_hour >= 0", name="price_nonnegative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("pay_per_use_accounts.id", ondelete="CASCADE"), index=True
    )
    gpu_type: Mapped[str] = mapped_column(String(64))
    eur_per_gpu_hour: Mapped[float] = mapped_column(Float)

    account: Mapped[PayPerUseAccount] = relationship(back_populates="prices")


class AuditEntry(Base):
    """Who changed what and when. ``changes`` maps field -> [old, new] (or a summary)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(64))  # username at the time, or "system"
    action: Mapped[str] = mapped_column(String(64))  # e.g. "project.create"
    entity: Mapped[str] = mapped_column(String(32), index=True)  # e.g. "project"
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginAttempt(Base):
    """Login throttle: one atomic counter per (kind, key), kind "user" (the username
    tried) or "address" (the client's address). ``count`` is the failed and in-flight
    password checks since ``window_start``; taken before each check, given back on a
    success (access/security.py)."""

    __tablename__ = "login_attempts"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # pruning
    count: Mapped[int] = mapped_column(Integer)


# --- acceptable-use policy and the auth generation (access/aup.py, access/security.py)


class AupVersion(Base):
    """A published text of the centre's acceptable-use policy; the highest version is
    the current one. Versions are never edited or deleted (acceptances refer to them)."""

    __tablename__ = "aup_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(64))  # username, or "system"


class AupAcceptance(Base):
    """One user's acceptance of one AUP version, and when."""

    __tablename__ = "aup_acceptances"
    __table_args__ = (UniqueConstraint("user_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    version: Mapped[int] = mapped_column(ForeignKey("aup_versions.version"))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuthGeneration(Base):
    """One row (id 1): a counter raised in the same transaction as every change that
    can end or narrow a credential (token revoked, user changed, AUP published or
    accepted). Each process's token cache compares it on every hit, so such a change
    made by any process takes effect in all of them at once."""

    __tablename__ = "auth_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)

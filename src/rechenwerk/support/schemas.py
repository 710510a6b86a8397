"""Request and response bodies of the support API. Lengths, kinds and the project are
checked by ``support.service`` (one rule for the API, the portal and the CLI), so a
body only has to have the right shape here."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from rechenwerk.access.schemas import Ref
from rechenwerk.support.models import SupportMessage, SupportRequest


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupportOpen(_In):
    project: Ref = Field(description="slug or id of a project you are a member of")
    kind: str = Field(description="onboarding, porting, data or other")
    subject: str = Field(description="one line, at most 200 characters")
    body: str = Field(description="what you need, at most 20,000 characters")


class SupportReply(_In):
    body: str = Field(description="at most 20,000 characters")


class SupportAssign(_In):
    assignee: str | None = Field(None, description="an operator's username; default: you")


class SupportClose(_In):
    comment: str = Field("", description="optional; becomes the last message")


class SupportMessageOut(BaseModel):
    id: int
    author: str
    from_operator: bool
    body: str
    created_at: datetime

    @classmethod
    def of(cls, m: SupportMessage) -> SupportMessageOut:
        return cls(
            id=m.id,
            author=m.author,
            from_operator=m.from_operator,
            body=m.body,
            created_at=m.created_at,
        )


class SupportRequestOut(BaseModel):
    id: int
    project: str
    kind: str
    subject: str
    state: str
    requester: str
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    first_answered_at: datetime | None
    closed_at: datetime | None
    messages: list[SupportMessageOut] | None = Field(
        None, description="the conversation, oldest first (only for a single request)"
    )

    @classmethod
    def of(
        cls, r: SupportRequest, messages: list[SupportMessage] | None = None
    ) -> SupportRequestOut:
        return cls(
            id=r.id,
            project=r.project.slug,
            kind=r.kind,
            subject=r.subject,
            state=r.state,
            requester=r.requester.username,
            assignee=r.assignee.username if r.assignee is not None else None,
            created_at=r.created_at,
            updated_at=r.updated_at,
            first_answered_at=r.first_answered_at,
            closed_at=r.closed_at,
            messages=[SupportMessageOut.of(m) for m in messages] if messages is not None else None,
        )

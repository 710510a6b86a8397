"""access: the review pipeline (issue 15 item 2)

``proposal_assessments`` keeps the operators' eligibility checks and technical
assessments (pass or fail, a note). Proposals already under review when this runs had
their review started by an operator: they get an implied pass of the eligibility and
technical steps their call type lists (no operator, a note saying so), so they stay
where they were (at the scientific step or later) and can be decided as before.
Submitted proposals not under review yet start at their type's first step.

Reviews become invitations (``invited_at``, ``responded_at``, ``accepted``, ``due_on``,
``decline_reason``); reviews from before were assignments the reviewer did not have to
accept: they count as accepted at their assignment. Call types get ``min_reviews`` (1).
Proposals get the applicant's reply to the reviews (``reply_text``, ``replied_at``) and
the decision's granted GPU-hours and letter (``granted_gpu_hours``, ``decision_letter``;
null for proposals decided before), the confirmed ranking (``ranked_at``,
``recommended_gpu_hours``); calls get a budget (``budget_gpu_hours``, null: none).

Revision ID: 0024_review_pipeline
Revises: 0023_award_changes
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0024_review_pipeline"
down_revision = "0023_award_changes"
branch_labels = None
depends_on = None

IMPLIED_NOTE = ("implied by migration 0024: the proposal was under review before the "
                "review pipeline existed")


def _steps(value: Any) -> list[str]:
    if isinstance(value, str):  # SQLite hands JSON back as text
        value = json.loads(value)
    return [str(s) for s in value or []]


def upgrade() -> None:
    assessments = op.create_table(
        "proposal_assessments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("by_user_id", sa.Integer(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("outcome IN ('pass', 'fail')",
                           name=op.f("ck_proposal_assessments_outcome")),
        sa.ForeignKeyConstraint(["proposal_id"], ["proposals.id"], ondelete="CASCADE",
                                name=op.f("fk_proposal_assessments_proposal_id_proposals")),
        sa.ForeignKeyConstraint(["by_user_id"], ["users.id"],
                                name=op.f("fk_proposal_assessments_by_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal_assessments")),
    )
    op.create_index(op.f("ix_proposal_assessments_proposal_id"), "proposal_assessments",
                    ["proposal_id"])
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT p.id, t.review_steps FROM proposals p JOIN calls c ON c.id = p.call_id "
        "JOIN call_types t ON t.id = c.call_type_id WHERE p.state = 'under_review' "
        "ORDER BY p.id")).all()
    now = datetime.now(UTC)
    implied = [{"proposal_id": pid, "step": step, "outcome": "pass", "note": IMPLIED_NOTE,
                "by_user_id": None, "at": now}
               for pid, steps in rows for step in ("eligibility", "technical")
               if step in _steps(steps)]
    if implied:
        op.bulk_insert(assessments, implied)
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("invited_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("responded_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("accepted", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("decline_reason", sa.Text(), nullable=False,
                                   server_default=""))
    op.execute("UPDATE reviews SET invited_at = assigned_at, responded_at = assigned_at, "
               "accepted = true")
    with op.batch_alter_table("reviews") as batch:
        batch.alter_column("invited_at", existing_type=UTCDateTime(), nullable=False)
    with op.batch_alter_table("call_types") as batch:
        batch.add_column(sa.Column("min_reviews", sa.Integer(), nullable=False,
                                   server_default="1"))
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("reply_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("replied_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("granted_gpu_hours", sa.Float(), nullable=True))
        batch.add_column(sa.Column("decision_letter", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ranked_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("recommended_gpu_hours", sa.Float(), nullable=True))
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("budget_gpu_hours", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("budget_gpu_hours")
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("recommended_gpu_hours")
        batch.drop_column("ranked_at")
        batch.drop_column("decision_letter")
        batch.drop_column("granted_gpu_hours")
        batch.drop_column("replied_at")
        batch.drop_column("reply_text")
    with op.batch_alter_table("call_types") as batch:
        batch.drop_column("min_reviews")
    with op.batch_alter_table("reviews") as batch:
        for column in ("decline_reason", "due_on", "accepted", "responded_at", "invited_at"):
            batch.drop_column(column)
    op.drop_index(op.f("ix_proposal_assessments_proposal_id"),
                  table_name="proposal_assessments")
    op.drop_table("proposal_assessments")

"""support: requests for help with a project and their conversations (issue 19)

Revision ID: 0018_support_requests
Revises: 0016_awards_one_per_proposal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0018_support_requests"
down_revision = "0017_pay_per_use_charges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("requester_user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assignee_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("first_answered_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('onboarding', 'porting', 'data', 'other')",
            name=op.f("ck_support_requests_kind"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'assigned', 'answered', 'closed')",
            name=op.f("ck_support_requests_state"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_support_requests_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requester_user_id"],
            ["users.id"],
            name=op.f("fk_support_requests_requester_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_user_id"],
            ["users.id"],
            name=op.f("fk_support_requests_assignee_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_requests")),
    )
    for column in ("project_id", "requester_user_id", "assignee_user_id", "created_at"):
        op.create_index(op.f(f"ix_support_requests_{column}"), "support_requests", [column])
    op.create_index(
        "ix_support_requests_state_created", "support_requests", ["state", "created_at"]
    )
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("from_operator", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["support_requests.id"],
            name=op.f("fk_support_messages_request_id_support_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_support_messages_author_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
    )
    op.create_index(op.f("ix_support_messages_request_id"), "support_messages", ["request_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_support_messages_request_id"), table_name="support_messages")
    op.drop_table("support_messages")
    op.drop_index("ix_support_requests_state_created", table_name="support_requests")
    for column in ("created_at", "assignee_user_id", "requester_user_id", "project_id"):
        op.drop_index(op.f(f"ix_support_requests_{column}"), table_name="support_requests")
    op.drop_table("support_requests")

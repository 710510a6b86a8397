"""jobs: drop the index on user_id alone

The unique constraint on (user_id, idempotency_key) is an index whose leading column is
user_id, so it serves every lookup the single-column index served (a user's jobs, the
foreign key's checks when a user is deleted). The extra index only cost an index insert
on every job submission.

Revision ID: 0005_jobs_drop_user_index
Revises: 0004_jobs_indexes
"""

from __future__ import annotations

from alembic import op

revision = "0005_jobs_drop_user_index"
down_revision = "0004_jobs_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_jobs_user_id"), table_name="jobs")


def downgrade() -> None:
    op.create_index(op.f("ix_jobs_user_id"), "jobs", ["user_id"])

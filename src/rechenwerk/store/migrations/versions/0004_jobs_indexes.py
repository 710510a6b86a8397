"""jobs: index (award_period_id, state) for the live balance, replacing the index on
award_period_id alone

The balance sums the GPUs x walltime of a period's pending, starting, running and
preempted jobs on every submission; with an index on award_period_id alone that sum
visits every job the period ever had (finished ones included). The composite index
serves that sum and every lookup the single-column index served (the foreign key's
ON DELETE SET NULL, period filters). Plain CREATE/DROP INDEX work on SQLite and
PostgreSQL alike, so no batch mode is needed.

Revision ID: 0004_jobs_indexes
Revises: 0003_portal
"""

from __future__ import annotations

from alembic import op

revision = "0004_jobs_indexes"
down_revision = "0003_portal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_award_period_state", "jobs", ["award_period_id", "state"])
    op.drop_index(op.f("ix_jobs_award_period_id"), table_name="jobs")


def downgrade() -> None:
    op.create_index(op.f("ix_jobs_award_period_id"), "jobs", ["award_period_id"])
    op.drop_index("ix_jobs_award_period_state", table_name="jobs")

"""proposals: an attached training-compute estimate

A proposal may carry the planner's inputs and result (JSON) and the time they were
attached, so reviewers see how the requested GPU-hours compare with the plan. Nullable:
proposals without an estimate (all existing ones) keep nulls.

Revision ID: 0007_proposals_estimate
Revises: 0006_proposals_withdrawn
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0007_proposals_estimate"
down_revision = "0006_proposals_withdrawn"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode keeps SQLite's table rebuild and PostgreSQL's ALTER in one code path.
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("estimate_inputs", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("estimate_result", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("estimate_attached_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_column("estimate_attached_at")
        batch.drop_column("estimate_result")
        batch.drop_column("estimate_inputs")

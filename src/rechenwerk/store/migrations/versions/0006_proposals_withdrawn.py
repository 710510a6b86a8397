"""proposals: withdrawal (who and when)

A PI or an operator may withdraw a proposal before it is decided (state ``withdrawn``);
the time and the user are kept on the proposal, the reason in the audit log. The state
column is a plain string, so the new state needs no schema change.

Revision ID: 0006_proposals_withdrawn
Revises: 0005_jobs_drop_user_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0006_proposals_withdrawn"
down_revision = "0005_jobs_drop_user_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key with ALTER TABLE.
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("withdrawn_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("withdrawn_by_user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_proposals_withdrawn_by_user_id_users"), "users",
                                 ["withdrawn_by_user_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_constraint(op.f("fk_proposals_withdrawn_by_user_id_users"),
                              type_="foreignkey")
        batch.drop_column("withdrawn_by_user_id")
        batch.drop_column("withdrawn_at")

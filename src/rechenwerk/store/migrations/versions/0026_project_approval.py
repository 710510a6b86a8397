"""access: project approval (a centre may have operators approve new projects)

Existing projects are approved: they have worked so far.

Revision ID: 0026_project_approval
Revises: 0025_report_tasks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0026_project_approval"
down_revision = "0025_report_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("approval", sa.String(length=16), nullable=False,
                                   server_default="approved"))
        batch.add_column(sa.Column("approval_note", sa.Text(), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("approved_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("approved_by_user_id", sa.Integer(), nullable=True))
        batch.create_index("ix_projects_approval", ["approval"])
        batch.create_foreign_key("fk_projects_approved_by_user_id_users", "users",
                                 ["approved_by_user_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_constraint("fk_projects_approved_by_user_id_users", type_="foreignkey")
        batch.drop_index("ix_projects_approval")
        batch.drop_column("approved_by_user_id")
        batch.drop_column("approved_at")
        batch.drop_column("approval_note")
        batch.drop_column("approval")

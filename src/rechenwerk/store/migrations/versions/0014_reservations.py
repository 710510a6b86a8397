"""reservations: operators' advance reservations of GPUs for a time window

Revision ID: 0014_reservations
Revises: 0013_oidc_identities
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0014_reservations"
down_revision = "0013_oidc_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        sa.Column("project_ids", sa.JSON(), nullable=False),
        sa.Column("gpu_type", sa.String(length=64), nullable=True),
        sa.Column("requested_gpus", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at",
                           name=op.f("ck_reservations_window_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("name", name=op.f("uq_reservations_name")),
    )
    op.create_index("ix_reservations_ends_at", "reservations", ["ends_at"])


def downgrade() -> None:
    op.drop_index("ix_reservations_ends_at", table_name="reservations")
    op.drop_table("reservations")

"""access: login throttle counters

One row per (kind, key): kind "user" (the username tried) or "address" (the client's
address), with the start of its window and the number of password checks counted in it.
Taken atomically before each argon2 check, so parallel requests and several server
processes share one limit.

Revision ID: 0008_login_throttle
Revises: 0007_proposals_estimate
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0008_login_throttle"
down_revision = "0007_proposals_estimate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_login_attempts")),
    )
    # Counters whose window ended are deleted by window_start.
    op.create_index(op.f("ix_login_attempts_window_start"), "login_attempts",
                    ["window_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_login_attempts_window_start"), table_name="login_attempts")
    op.drop_table("login_attempts")

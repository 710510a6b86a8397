"""jobs: the scheduler loop's last queue order, for processes that do not run the loop

The leading loop stores its order (one row) when it changes, at most every 10 s when it
does not; the queue pages and the API of every other server process (uvicorn workers,
replicas, API-only servers) read it instead of computing the order per request.

Revision ID: 0022_queue_orders
Revises: 0021_project_field_of_science
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0022_queue_orders"
down_revision = "0021_project_field_of_science"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("order_rule", sa.Text(), nullable=False),
        sa.Column("jobs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_orders")),
    )


def downgrade() -> None:
    op.drop_table("queue_orders")

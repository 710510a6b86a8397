"""jobs: the expected start of a waiting job (the forecast)

The scheduler's forecast companion (``jobs/forecasts.py``) runs the twin forward from
the live state and stores, for every pending job, when it is expected to start (NULL:
not known yet, or not within the forecast's horizon).

Revision ID: 0010_job_forecasts
Revises: 0009_portal_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0010_job_forecasts"
down_revision = "0009_portal_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("expected_start_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("expected_start_at")

"""clusters: several clusters behind one centre (docs/slurm.md)

jobs.requested_cluster: the cluster the job named (NULL: routed); jobs.cluster: the
cluster it was handed to (NULL: not yet, or placed before clusters were declared: the
first declared cluster). usage_records.cluster: where the run used its GPU-hours.
awards.cluster: the one cluster the award is valid on (NULL: every cluster offering its
GPU type). Existing rows keep NULL: one cluster, as before.

Revision ID: 0029_clusters
Revises: 0028_job_kind
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029_clusters"
down_revision = "0028_job_kind"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("requested_cluster", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("cluster", sa.String(length=32), nullable=True))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("cluster", sa.String(length=32), nullable=True))
    with op.batch_alter_table("awards") as batch:
        batch.add_column(sa.Column("cluster", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("awards") as batch:
        batch.drop_column("cluster")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cluster")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cluster")
        batch.drop_column("requested_cluster")

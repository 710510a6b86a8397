"""jobs: the kind of a job (a batch job, or an interactive JupyterLab session)

Existing jobs are batch jobs.

Revision ID: 0028_job_kind
Revises: 0027_energy_source
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028_job_kind"
down_revision = "0027_energy_source"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                   server_default="batch"))
        batch.create_check_constraint(op.f("ck_jobs_kind_known"), "kind IN ('batch', 'jupyterlab')")
        # "my sessions": a user's interactive jobs, newest first
        batch.create_index("ix_jobs_user_kind", ["user_id", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_user_kind")
        batch.drop_constraint(op.f("ck_jobs_kind_known"), type_="check")
        batch.drop_column("kind")

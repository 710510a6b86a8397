"""job dependencies: after_ok / after_any / after_not_ok between jobs

A table of (job, kind, job it waits for) and ``jobs.dependency_wait``, true while a job
has unmet dependencies, so the scheduler loop reads only those jobs.

Revision ID: 0011_job_dependencies
Revises: 0010_job_forecasts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_job_dependencies"
down_revision = "0010_job_forecasts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("depends_on_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_job_dependencies_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["depends_on_id"], ["jobs.id"],
                                name=op.f("fk_job_dependencies_depends_on_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "kind", "depends_on_id",
                                name=op.f("pk_job_dependencies")),
    )
    op.create_index(op.f("ix_job_dependencies_depends_on_id"), "job_dependencies",
                    ["depends_on_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dependency_wait", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index("ix_jobs_dependency_wait_state", "jobs", ["dependency_wait", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_dependency_wait_state", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dependency_wait")
    op.drop_index(op.f("ix_job_dependencies_depends_on_id"), table_name="job_dependencies")
    op.drop_table("job_dependencies")

"""jobs: job arrays (Slurm's --array)

Each task of an array is a job of its own; ``array_job_id`` (the id of the array's first
task, Slurm's ArrayJobId) and ``array_task_id`` (its index) tie it to its array, whose
expression and limit of tasks running at once are one row of ``job_arrays``.

Revision ID: 0015_job_arrays
Revises: 0014_reservations
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_job_arrays"
down_revision = "0014_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("array_job_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("array_task_id", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_array", "jobs", ["array_job_id", "array_task_id"])
    op.create_table(
        "job_arrays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("task_limit", sa.Integer(), nullable=True),
        sa.CheckConstraint("task_count > 0", name=op.f("ck_job_arrays_task_count_positive")),
        sa.ForeignKeyConstraint(["id"], ["jobs.id"], name=op.f("fk_job_arrays_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_arrays")),
    )


def downgrade() -> None:
    op.drop_table("job_arrays")
    op.drop_index("ix_jobs_array", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("array_task_id")
        batch.drop_column("array_job_id")

"""accounting: GPU use per run (mean utilisation, max memory, idle GPU-seconds)

Each settled run (``usage_records``) keeps how much of its GPUs it used, as the local
executor's NVML sampling or Slurm's gres/gpuutil and gres/gpumem TRES measured it. NULL
columns mean "not measured" (older runs, machines without NVML, clusters that do not
record GPU TRES); ``gpu_use_note`` says why where the backend told.

Revision ID: 0019_job_gpu_use
Revises: 0016_awards_one_per_proposal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_job_gpu_use"
down_revision = "0018_support_requests"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("gpu_use_source", sa.String(length=16)),
    ("gpu_measured", sa.Integer()),
    ("gpu_util_mean_pct", sa.Float()),
    ("gpu_mem_max_bytes", sa.BigInteger()),
    ("gpu_idle_s", sa.Float()),
    ("gpu_measured_s", sa.Float()),
    ("gpu_use_note", sa.String(length=256)),
)


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name, _type in reversed(_COLUMNS):
            batch.drop_column(name)

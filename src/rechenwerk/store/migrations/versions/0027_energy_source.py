"""accounting: usage_records.energy_source, 'measured' or 'estimated' (NULL: no figure)

Existing rows with an energy figure become 'estimated', those imported from Slurm
(source='slurm') too: until this revision no code path stored Slurm's ConsumedEnergy
(the Slurm imports either passed no energy, leaving none without a GPU type, or had
settle_usage estimate it from the GPU type), so every stored figure is the TDP estimate.

Revision ID: 0027_energy_source
Revises: 0026_project_approval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_energy_source"
down_revision = "0026_project_approval"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("energy_source", sa.String(length=16), nullable=True))
    op.execute("UPDATE usage_records SET energy_source = 'estimated' "
               "WHERE energy_kwh IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("energy_source")

"""access: a project's field of science (OECD FORD code, e.g. "1.2")

Nullable: projects created before it have none until their PI or an operator sets it
(``rechenwerk project edit SLUG --field 1.2``). The list of codes is
``rechenwerk.access.fields_of_science``.

Revision ID: 0021_project_field_of_science
Revises: 0020_call_types
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_project_field_of_science"
down_revision = "0020_call_types"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("field_of_science", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("field_of_science")

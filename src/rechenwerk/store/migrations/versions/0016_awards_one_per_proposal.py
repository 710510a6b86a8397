"""awards: at most one award per proposal, enforced by the database

The service refuses a second award for a proposal (409), but two requests at the same
moment could both pass that check. A unique index makes the second insert fail (mapped
to the same 409). Databases that already hold two awards of one proposal (possible
before the check existed) are not changed behind the operator's back: the upgrade stops
and names them.

Revision ID: 0016_awards_one_per_proposal
Revises: 0015_job_arrays
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_awards_one_per_proposal"
down_revision = "0015_job_arrays"
branch_labels = None
depends_on = None


def upgrade() -> None:
    twice = op.get_bind().execute(sa.text(
        "SELECT proposal_id, MIN(id), MAX(id), COUNT(*) FROM awards "
        "WHERE proposal_id IS NOT NULL GROUP BY proposal_id HAVING COUNT(*) > 1 "
        "ORDER BY proposal_id")).all()
    if twice:
        listed = "; ".join(f"proposal {p}: {n} awards ({first} .. {last})"
                           for p, first, last, n in twice)
        raise RuntimeError(
            f"cannot make awards unique per proposal: {listed}. Keep the proposal on one "
            "award and detach the others (their GPU-hours stay), e.g. UPDATE awards SET "
            "proposal_id = NULL WHERE id = <the later award>; then upgrade again.")
    with op.batch_alter_table("awards") as batch:
        batch.drop_index("ix_awards_proposal_id")
        batch.create_index("ix_awards_proposal_id", ["proposal_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("awards") as batch:
        batch.drop_index("ix_awards_proposal_id")
        batch.create_index("ix_awards_proposal_id", ["proposal_id"], unique=False)

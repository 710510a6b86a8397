"""access: award change requests (extension, supplement, early end) and award versions

``award_changes`` keeps each PI request and the operator's decision; ``award_versions``
the award after its creation (version 1) and after each approved change. Existing awards
get their version 1 from what they are now.

Revision ID: 0023_award_changes
Revises: 0022_queue_orders
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0023_award_changes"
down_revision = "0022_queue_orders"
branch_labels = None
depends_on = None


def _iso(value: Any) -> str:
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).isoformat())


def upgrade() -> None:
    op.create_table(
        "award_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("award_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_until", UTCDateTime(), nullable=True),
        sa.Column("extra_gpu_hours", sa.Float(), nullable=True),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by_user_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("granted_until", UTCDateTime(), nullable=True),
        sa.Column("granted_gpu_hours", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.CheckConstraint("extra_gpu_hours IS NULL OR extra_gpu_hours > 0",
                           name=op.f("ck_award_changes_extra_positive")),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], ondelete="CASCADE",
                                name=op.f("fk_award_changes_award_id_awards")),
        sa.ForeignKeyConstraint(["requested_by_user_id"], ["users.id"],
                                name=op.f("fk_award_changes_requested_by_user_id_users")),
        sa.ForeignKeyConstraint(["decided_by_user_id"], ["users.id"],
                                name=op.f("fk_award_changes_decided_by_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_award_changes")),
    )
    op.create_index(op.f("ix_award_changes_award_id"), "award_changes", ["award_id"])
    op.create_index(op.f("ix_award_changes_state"), "award_changes", ["state"])
    versions = op.create_table(
        "award_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("award_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("periods", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], ondelete="CASCADE",
                                name=op.f("fk_award_versions_award_id_awards")),
        sa.ForeignKeyConstraint(["change_id"], ["award_changes.id"],
                                name=op.f("fk_award_versions_change_id_award_changes")),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_award_versions_created_by_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_award_versions")),
        sa.UniqueConstraint("award_id", "version",
                            name=op.f("uq_award_versions_award_id_version")),
    )
    op.create_index(op.f("ix_award_versions_award_id"), "award_versions", ["award_id"])
    with op.batch_alter_table("awards") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False,
                                   server_default="1"))
    bind = op.get_bind()
    awards = bind.execute(sa.text(
        "SELECT id, gpu_hours, expires_at, created_at FROM awards ORDER BY id")).all()
    periods: dict[int, list[list[Any]]] = {}
    for award_id, start, end, hours in bind.execute(sa.text(
            "SELECT award_id, starts_at, ends_at, gpu_hours FROM award_periods "
            "ORDER BY award_id, starts_at")):
        periods.setdefault(award_id, []).append([_iso(start), _iso(end), hours])
    if awards:
        op.bulk_insert(versions, [
            {"award_id": a, "version": 1, "change_id": None, "gpu_hours": h,
             "expires_at": datetime.fromisoformat(_iso(e)), "periods": periods.get(a, []),
             "created_at": datetime.fromisoformat(_iso(c)), "created_by_user_id": None}
            for a, h, e, c in awards])


def downgrade() -> None:
    with op.batch_alter_table("awards") as batch:
        batch.drop_column("version")
    op.drop_index(op.f("ix_award_versions_award_id"), table_name="award_versions")
    op.drop_table("award_versions")
    op.drop_index(op.f("ix_award_changes_state"), table_name="award_changes")
    op.drop_index(op.f("ix_award_changes_award_id"), table_name="award_changes")
    op.drop_table("award_changes")

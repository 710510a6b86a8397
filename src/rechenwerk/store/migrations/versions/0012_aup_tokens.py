"""acceptable-use policy, token scope, auth generation

``aup_versions`` (published AUP texts) and ``aup_acceptances`` (who accepted which
version when); ``api_tokens.scope`` ("full" or "read"); ``auth_generation``, the one-row
counter that makes a token revocation take effect in every server process at once.

Revision ID: 0012_aup_tokens
Revises: 0011_job_dependencies
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0012_aup_tokens"
down_revision = "0011_job_dependencies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aup_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aup_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_aup_versions_version")),
    )
    op.create_table(
        "aup_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_aup_acceptances_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version"], ["aup_versions.version"],
                                name=op.f("fk_aup_acceptances_version_aup_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aup_acceptances")),
        sa.UniqueConstraint("user_id", "version",
                            name=op.f("uq_aup_acceptances_user_id_version")),
    )
    op.create_index(op.f("ix_aup_acceptances_user_id"), "aup_acceptances", ["user_id"])
    op.create_table(
        "auth_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_generation")),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=8), nullable=False,
                                   server_default="full"))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("scope")
    op.drop_table("auth_generation")
    op.drop_index(op.f("ix_aup_acceptances_user_id"), table_name="aup_acceptances")
    op.drop_table("aup_acceptances")
    op.drop_table("aup_versions")

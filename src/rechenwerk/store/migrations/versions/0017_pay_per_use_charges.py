"""jobs and usage records: charges to a pay-per-use account

A job of a project without an award that covers it draws on the project's pay-per-use
account (docs/access.md): the job keeps the account and the price per GPU-hour it was
accepted at, and each settled run keeps the amount charged. Money is integer: prices in
1/10,000 EUR per GPU-hour, amounts in cents (no floating-point money).

Revision ID: 0017_pay_per_use_charges
Revises: 0016_awards_one_per_proposal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_pay_per_use_charges"
down_revision = "0016_awards_one_per_proposal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("price_e4_per_gpu_hour", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_account_id_pay_per_use_accounts"),
            "pay_per_use_accounts",
            ["account_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_jobs_account_state", ["account_id", "state"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("price_e4_per_gpu_hour", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("amount_cents", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_usage_records_account_id_pay_per_use_accounts"),
            "pay_per_use_accounts",
            ["account_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_usage_records_account_ended", ["account_id", "ended_at"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_index("ix_usage_records_account_ended")
        batch.drop_constraint(
            op.f("fk_usage_records_account_id_pay_per_use_accounts"), type_="foreignkey"
        )
        batch.drop_column("amount_cents")
        batch.drop_column("price_e4_per_gpu_hour")
        batch.drop_column("account_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_account_state")
        batch.drop_constraint(op.f("fk_jobs_account_id_pay_per_use_accounts"), type_="foreignkey")
        batch.drop_column("price_e4_per_gpu_hour")
        batch.drop_column("account_id")

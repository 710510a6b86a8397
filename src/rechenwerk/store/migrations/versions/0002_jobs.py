"""jobs, job history, node drain state and usage records

Revision ID: 0002_jobs
Revises: 0001_access
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0002_jobs"
down_revision = "0001_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("award_period_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("qos", sa.String(length=16), nullable=False),
        sa.Column("requested_qos", sa.String(length=16), nullable=False),
        sa.Column("over_budget", sa.Boolean(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=True),
        sa.Column("gpus_per_node", sa.Integer(), nullable=True),
        sa.Column("gpu_type", sa.String(length=64), nullable=True),
        sa.Column("walltime_s", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("reason_code", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("backend", sa.String(length=32), nullable=True),
        sa.Column("backend_handle", sa.String(length=256), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("placement", sa.JSON(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("attained_gpu_s", sa.Float(), nullable=False),
        sa.Column("cancel_requested_at", UTCDateTime(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("gpus > 0", name=op.f("ck_jobs_gpus_positive")),
        sa.CheckConstraint("walltime_s > 0", name=op.f("ck_jobs_walltime_positive")),
        sa.ForeignKeyConstraint(["award_period_id"], ["award_periods.id"],
                                name=op.f("fk_jobs_award_period_id_award_periods"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_jobs_project_id_projects")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("user_id", "idempotency_key",
                            name=op.f("uq_jobs_user_id_idempotency_key")),
    )
    op.create_index(op.f("ix_jobs_award_period_id"), "jobs", ["award_period_id"])
    op.create_index(op.f("ix_jobs_user_id"), "jobs", ["user_id"])
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])
    op.create_index("ix_jobs_project_state", "jobs", ["project_id", "state"])

    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index(op.f("ix_job_events_job_id"), "job_events", ["job_id"])

    op.create_table(
        "node_states",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("drained", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_node_states")),
    )

    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("award_period_id", sa.Integer(), nullable=True),
        sa.Column("gpu_type", sa.String(length=64), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=True),
        sa.Column("co2_kg", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("gpu_hours >= 0", name=op.f("ck_usage_records_gpu_hours_nonnegative")),
        sa.ForeignKeyConstraint(["award_period_id"], ["award_periods.id"],
                                name=op.f("fk_usage_records_award_period_id_award_periods"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_usage_records_job_id_jobs"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_usage_records_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("external_id", name=op.f("uq_usage_records_external_id")),
        sa.UniqueConstraint("job_id", "attempt", name=op.f("uq_usage_records_job_id_attempt")),
    )
    op.create_index(op.f("ix_usage_records_project_id"), "usage_records", ["project_id"])
    op.create_index(op.f("ix_usage_records_award_period_id"), "usage_records",
                    ["award_period_id"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("node_states")
    op.drop_table("job_events")
    op.drop_table("jobs")

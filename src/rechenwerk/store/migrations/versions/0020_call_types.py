"""access: call types as data; calls name one, proposals get a duration and a due date

``call_types`` holds each kind of call's rules (GPU-hour range, durations, eligibility,
review steps, decision deadline in working days, submission mode). Existing calls get
the type of their access mode (one row per mode, written here rather than imported, so
this migration means the same whatever the code says later): no duration asked, all
organisation kinds (the call's own kinds still decide), Rechenwerk's default deadlines.
Proposals get ``duration_months`` and ``due_on`` (null for those submitted before).

Revision ID: 0020_call_types
Revises: 0019_job_gpu_use
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0020_call_types"
down_revision = "0019_job_gpu_use"
branch_labels = None
depends_on = None

_ALL_KINDS = ["university", "research_institute", "sme", "startup", "enterprise",
              "public_agency"]
_ALL_STEPS = ["eligibility", "technical", "scientific", "right_to_reply", "ranking",
              "decision"]
# key, title, description, review steps, decision working days
_MODE_TYPES = (
    ("research", "Research access", "Peer-reviewed access for research groups.",
     _ALL_STEPS, 60),
    ("innovation", "Innovation access",
     "Access for SMEs and startups developing AI products.", _ALL_STEPS, 20),
    ("fast_lane", "Fast lane", "Small grants decided quickly.",
     ["eligibility", "technical", "decision"], 5),
    ("pay_per_use", "Pay-per-use", "Paid access at the centre's prices.",
     ["eligibility", "decision"], 5),
)


def upgrade() -> None:
    call_types = op.create_table(
        "call_types",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("min_gpu_hours", sa.Float(), nullable=True),
        sa.Column("max_gpu_hours", sa.Float(), nullable=True),
        sa.Column("duration_months", sa.JSON(), nullable=False),
        sa.Column("eligible_kinds", sa.JSON(), nullable=False),
        sa.Column("countries", sa.String(length=32), nullable=False),
        sa.Column("review_steps", sa.JSON(), nullable=False),
        sa.Column("decision_working_days", sa.Integer(), nullable=False),
        sa.Column("submission_mode", sa.String(length=16), nullable=False),
        sa.Column("cutoff_period", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_types")),
        sa.UniqueConstraint("key", name=op.f("uq_call_types_key")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(call_types, [
        {"key": key, "title": title, "description": text, "min_gpu_hours": None,
         "max_gpu_hours": None, "duration_months": [], "eligible_kinds": _ALL_KINDS,
         "countries": "any", "review_steps": steps, "decision_working_days": days,
         "submission_mode": "window", "cutoff_period": None, "created_at": now}
        for key, title, text, steps, days in _MODE_TYPES])  # ids from the sequence
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("call_type_id", sa.Integer(), nullable=True))
    op.execute("UPDATE calls SET call_type_id = (SELECT call_types.id FROM call_types "
               "WHERE call_types.key = calls.access_mode)")
    unknown = op.get_bind().execute(sa.text(
        "SELECT slug, access_mode FROM calls WHERE call_type_id IS NULL")).all()
    if unknown:
        raise RuntimeError("calls with an unknown access mode, no call type to give them: "
                           + ", ".join(f"{s} ({m})" for s, m in unknown))
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("call_type_id", existing_type=sa.Integer(), nullable=False)
        batch.create_index("ix_calls_call_type_id", ["call_type_id"])
        batch.create_foreign_key("fk_calls_call_type_id_call_types", "call_types",
                                 ["call_type_id"], ["id"])
    with op.batch_alter_table("proposals") as batch:
        batch.add_column(sa.Column("duration_months", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch.create_index("ix_proposals_due_on", ["due_on"])


def downgrade() -> None:
    with op.batch_alter_table("proposals") as batch:
        batch.drop_index("ix_proposals_due_on")
        batch.drop_column("due_on")
        batch.drop_column("duration_months")
    with op.batch_alter_table("calls") as batch:
        batch.drop_constraint("fk_calls_call_type_id_call_types", type_="foreignkey")
        batch.drop_index("ix_calls_call_type_id")
        batch.drop_column("call_type_id")
    op.drop_table("call_types")

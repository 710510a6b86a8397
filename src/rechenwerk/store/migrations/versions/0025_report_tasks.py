"""access: report tasks of awards (status reports per period, the final report)

One row per report an award's PI owes: a status report at the end of each period but the
last, the final report some months after the award ends (``final_report_months``).
Existing awards get theirs with the default of two months; the reports of awards that
ended long ago are due in the past, as they were.

Revision ID: 0025_report_tasks
Revises: 0024_review_pipeline
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from rechenwerk.store.base import UTCDateTime

revision = "0025_report_tasks"
down_revision = "0024_review_pipeline"
branch_labels = None
depends_on = None

FINAL_REPORT_MONTHS = 2  # the setting's default (Settings.final_report_months)


def _when(value: Any) -> datetime:
    when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _months_after(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def upgrade() -> None:
    tasks = op.create_table(
        "report_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("award_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_index", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("publications", sa.JSON(), nullable=False),
        sa.Column("document_name", sa.String(length=200), nullable=True),
        sa.Column("document_bytes", sa.Integer(), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.Column("submitted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("reviewed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], ondelete="CASCADE",
                                name=op.f("fk_report_tasks_award_id_awards")),
        sa.ForeignKeyConstraint(["submitted_by_user_id"], ["users.id"],
                                name=op.f("fk_report_tasks_submitted_by_user_id_users")),
        sa.ForeignKeyConstraint(["reviewed_by_user_id"], ["users.id"],
                                name=op.f("fk_report_tasks_reviewed_by_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_tasks")),
        sa.UniqueConstraint("award_id", "kind", "period_index",
                            name=op.f("uq_report_tasks_award_id_kind_period_index")),
    )
    op.create_index(op.f("ix_report_tasks_award_id"), "report_tasks", ["award_id"])
    op.create_index(op.f("ix_report_tasks_due_on"), "report_tasks", ["due_on"])
    op.create_index(op.f("ix_report_tasks_state"), "report_tasks", ["state"])
    bind = op.get_bind()
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    periods: dict[int, list[datetime]] = {}
    for award_id, ends in bind.execute(sa.text(
            "SELECT award_id, ends_at FROM award_periods ORDER BY award_id, starts_at")):
        periods.setdefault(award_id, []).append(_when(ends))
    for award_id, expires in bind.execute(sa.text(
            "SELECT id, expires_at FROM awards ORDER BY id")):
        base = {"award_id": award_id, "state": "open", "summary": "", "publications": [],
                "review_note": "", "created_at": now}
        for i, end in enumerate(periods.get(award_id, [])[:-1]):
            rows.append({**base, "kind": "status", "period_index": i, "due_on": end.date()})
        rows.append({**base, "kind": "final", "period_index": -1,
                     "due_on": _months_after(_when(expires).date(), FINAL_REPORT_MONTHS)})
    if rows:
        op.bulk_insert(tasks, rows)


def downgrade() -> None:
    op.drop_index(op.f("ix_report_tasks_state"), table_name="report_tasks")
    op.drop_index(op.f("ix_report_tasks_due_on"), table_name="report_tasks")
    op.drop_index(op.f("ix_report_tasks_award_id"), table_name="report_tasks")
    op.drop_table("report_tasks")

"""The GPU use report: idle GPU-hours and mean utilisation per project or user over a
range (``/api/v1/reports/gpu-use``, ``rechenwerk report gpu-use``).

Sources: the settled runs (``usage_records``) ending in the range, with the GPU use the
backend measured for them (docs/jobs.md "GPU use"). Runs nobody measured (no NVML, a
cluster without GPU TRES, older runs) count in the GPU-hours and the runs "not
measured", never as idle or as busy. One aggregating query, one pass over its rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Project, User
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.reports.guard import NO_GUARD, Guard
from rechenwerk.reports.tables import Column, ReportTable, Scope, check_choice

GPU_USE_GROUPINGS: tuple[str, ...] = ("project", "user")
# Runs of jobs Rechenwerk did not submit (imported from Slurm) have no Rechenwerk user.
NO_USER = "(imported from Slurm)"


def gpu_use_report(
    session: Session,
    *,
    scope: Scope,
    by: str = "project",
    start: datetime,
    end: datetime,
    guard: Guard = NO_GUARD,
) -> ReportTable:
    """Idle GPU-hours, mean utilisation and measured share per project or user for the
    settled runs ending in [start, end)."""
    from rechenwerk.jobs.models import Job

    check_choice(by, GPU_USE_GROUPINGS, "by")
    ur = UsageRecord
    measured = ur.gpu_use_source.is_not(None)
    # GPU-seconds the figures cover: GPUs measured x the wall time measured
    covered = case((measured, ur.gpu_measured * ur.gpu_measured_s), else_=0.0)
    cols = (
        func.coalesce(func.sum(ur.gpu_hours), 0.0),
        func.coalesce(func.sum(case((measured, ur.gpu_hours), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((measured, ur.gpu_idle_s), else_=0.0)), 0.0),
        func.coalesce(func.sum(covered * ur.gpu_util_mean_pct), 0.0),
        func.coalesce(func.sum(covered), 0.0),
        func.count(),
        func.coalesce(func.sum(case((measured, 1), else_=0)), 0),
    )
    key_col: Any
    if by == "project":
        key_col = Project.slug
        stmt = select(key_col, Project.title, *cols).join(Project, Project.id == ur.project_id)
        group: tuple[Any, ...] = (Project.slug, Project.title)
    else:
        key_col = func.coalesce(User.username, literal(NO_USER))
        stmt = (
            select(key_col, key_col, *cols)
            .select_from(ur)
            .outerjoin(Job, Job.id == ur.job_id)
            .outerjoin(User, User.id == Job.user_id)
        )
        group = (User.username,)
    stmt = scope.apply(stmt.where(ur.ended_at >= start, ur.ended_at < end), ur.project_id)
    guard.check()
    raw = session.execute(stmt.group_by(*group)).all()
    rows: list[dict[str, Any]] = []
    for r in guard.every(raw):
        hours, m_hours, idle_s, util_w, cov, runs, m_runs = (
            float(r[2] or 0.0),
            float(r[3] or 0.0),
            float(r[4] or 0.0),
            float(r[5] or 0.0),
            float(r[6] or 0.0),
            int(r[7] or 0),
            int(r[8] or 0),
        )
        rows.append(
            {
                "key": str(r[0]),
                "label": str(r[1]) if by == "project" else None,
                "gpu_hours": hours,
                "measured_gpu_hours": m_hours,
                "idle_gpu_hours": idle_s / 3600.0,
                "idle_share": idle_s / cov if cov > 0 else None,
                "mean_util_pct": util_w / cov if cov > 0 else None,
                "runs": runs,
                "runs_not_measured": runs - m_runs,
            }
        )
    rows.sort(key=lambda row: (-row["idle_gpu_hours"], row["key"]))
    idle_total = sum(row["idle_gpu_hours"] for row in rows)
    key_label = "Project" if by == "project" else "User"
    columns = (
        Column("key", key_label, numeric=False),
        *((Column("label", "Title", numeric=False),) if by == "project" else ()),
        Column("idle_gpu_hours", "Idle GPU-hours", digits=2),
        Column("idle_share", "Idle share of measured GPU time", digits=3),
        Column("mean_util_pct", "Mean GPU utilisation (%)", digits=1),
        Column("measured_gpu_hours", "Measured GPU-hours", digits=2),
        Column("gpu_hours", "GPU-hours", digits=2),
        Column("runs", "Runs", digits=0),
        Column("runs_not_measured", "Runs not measured", digits=0),
    )
    if by == "user":
        for row in rows:
            del row["label"]
    return ReportTable(
        name="gpu-use",
        title=f"Idle GPU-hours by {key_label.lower()}",
        columns=columns,
        rows=rows,
        start=start,
        end=end,
        grouping=by,
        totals={
            "idle_gpu_hours": idle_total,
            "measured_gpu_hours": sum(row["measured_gpu_hours"] for row in rows),
            "gpu_hours": sum(row["gpu_hours"] for row in rows),
            "runs": sum(row["runs"] for row in rows),
            "runs_not_measured": sum(row["runs_not_measured"] for row in rows),
        },
        assumptions=(
            "Settled runs ending in the range; idle: GPU time below the idle threshold "
            "(RECHENWERK_GPU_IDLE_BELOW_PCT) as the backend measured it.",
            "Runs without GPU figures (no NVML, a cluster without gres/gpuutil TRES) count "
            "in GPU-hours and 'Runs not measured' only.",
            "Mean utilisation is weighted by the GPU time measured.",
        ),
    )

"""Migration 0025 gives every existing award its report tasks (a status report per
period but the last, the final report two months after the end)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from factories import T0, make_org, make_project, make_user
from rechenwerk.access.awards import create_award
from rechenwerk.store.migrate import downgrade, upgrade
from rechenwerk.store.session import make_engine


def test_existing_awards_get_their_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            op = make_user(session, operator=True)
            project = make_project(session, pi=make_user(session, org=make_org(session)))
            award = create_award(session, op, project=project, gpu_hours=900, starts_at=T0,
                                 gpu_type="A100-80GB", period_count=3, period_months=1,
                                 now=T0 - timedelta(days=1))
            award_id = award.id
            session.commit()
        downgrade(url, "0024_review_pipeline")  # as before report tasks existed
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT kind, period_index, due_on, state FROM report_tasks "
                "WHERE award_id = :a ORDER BY due_on"), {"a": award_id}).all()
        assert [(k, i, str(d), s) for k, i, d, s in rows] == [
            ("status", 0, str(date(2026, 2, 1)), "open"),
            ("status", 1, str(date(2026, 3, 1)), "open"),
            ("final", -1, str(date(2026, 6, 1)), "open")]
    finally:
        engine.dispose()

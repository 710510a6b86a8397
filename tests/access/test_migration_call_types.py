"""Migration 0020 gives every existing call the type of its access mode (and the types
ask for no duration, so proposals in flight are not refused on submission); downgrade
removes it again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from rechenwerk.store.migrate import downgrade, upgrade
from rechenwerk.store.session import make_engine


def test_existing_calls_get_the_type_of_their_access_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0019_job_gpu_use")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for slug, mode in (("old-research", "research"), ("old-fast", "fast_lane"),
                               ("old-paid", "pay_per_use")):
                conn.execute(text(
                    "INSERT INTO calls (slug, title, description, access_mode, eligible_kinds,"
                    " opens_at, closes_at, created_at) VALUES (:s, 't', '', :m, '[\"sme\"]',"
                    " '2026-01-01 00:00:00', '2026-03-01 00:00:00', '2026-01-01 00:00:00')"),
                    {"s": slug, "m": mode})
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT calls.slug, call_types.key, call_types.duration_months, "
                "call_types.decision_working_days FROM calls JOIN call_types "
                "ON call_types.id = calls.call_type_id ORDER BY calls.slug")).all()
            keys = conn.execute(text("SELECT key FROM call_types ORDER BY id")).scalars().all()
        assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
            ("old-fast", "fast_lane", "[]", 5), ("old-paid", "pay_per_use", "[]", 5),
            ("old-research", "research", "[]", 60)]
        assert keys == ["research", "innovation", "fast_lane", "pay_per_use"]
        downgrade(url, "0019_job_gpu_use")
        with engine.connect() as conn:
            cols = [r[1] for r in conn.execute(text("PRAGMA table_info(calls)"))]
            assert "call_type_id" not in cols
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 3
    finally:
        engine.dispose()

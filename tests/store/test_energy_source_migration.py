"""Migration 0027: existing energy figures become 'estimated', rows without stay NULL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, create_engine, text

from rechenwerk.store.migrate import downgrade, upgrade

COLUMNS = ("id, project_id, gpus, started_at, ended_at, gpu_hours, energy_kwh, co2_kg, "
           "source, external_id, created_at")


def _row(conn: Connection, table: str) -> None:
    """Row 1 of ``table`` with every NOT NULL column filled (foreign keys point at 1)."""
    cols = conn.execute(text(f"PRAGMA table_info({table})")).all()
    values = {c[1]: (1 if "INT" in str(c[2]).upper() or "FLOAT" in str(c[2]).upper()
                     or "BOOL" in str(c[2]).upper() else
                     "2026-01-01 00:00:00.000000" if "DATETIME" in str(c[2]).upper()
                     else f"{table}-{c[1]}")
              for c in cols if c[3] and c[4] is None}
    values["id"] = 1
    names = ", ".join(f'"{k}"' for k in values)
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES "
                      f"({', '.join(':' + k for k in values)})"), values)


def test_existing_figures_are_estimated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0026_project_approval")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for table in ("organizations", "users", "projects"):
                _row(conn, table)
            t = "'2026-01-01 00:00:00.000000'"
            for rid, kwh, source in ((1, "1.5", "local"), (2, "2.5", "slurm"),
                                     (3, "NULL", "slurm")):
                conn.execute(text(
                    f"INSERT INTO usage_records ({COLUMNS}) VALUES ({rid}, 1, 1, {t}, {t}, "
                    f"1.0, {kwh}, NULL, '{source}', 'x{rid}', {t})"))
        upgrade(url, "0027_energy_source")
        with engine.connect() as conn:
            got = dict(conn.execute(text("SELECT id, energy_source FROM usage_records")).all())
        assert got == {1: "estimated", 2: "estimated", 3: None}
        downgrade(url, "0026_project_approval")
        with engine.connect() as conn:
            cols = [r[1] for r in conn.execute(text("PRAGMA table_info(usage_records)"))]
            assert "energy_source" not in cols
            assert conn.execute(text("SELECT count(*) FROM usage_records")).scalar() == 3
    finally:
        engine.dispose()

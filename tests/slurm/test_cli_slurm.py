"""``rechenwerk slurm sync|import|status`` against the real daemons and a test database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slurm_helpers import SlurmCluster, active, ensure_unix_user
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from factories import make_award, make_project, make_user
from rechenwerk.cli.main import app
from rechenwerk.config import get_settings

# one xdist group: these tests share one cluster and some stop daemons
pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]
runner = CliRunner()


@pytest.fixture
def cli_env(
    slurm_up: SlurmCluster,
    engine: Engine,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[str]:
    import uuid

    ensure_unix_user("rwtest")
    slug = f"rwt{uuid.uuid4().hex[:10]}"
    with session_factory() as s:
        user = make_user(s, username="rwtest")
        make_award(
            s,
            make_project(s, pi=user, slug=slug),
            gpu_hours=2.5,
            starts_at=datetime.now(UTC) - timedelta(hours=1),
        )
        s.commit()
    monkeypatch.setenv("RECHENWERK_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path))
    for var, value in slurm_up.env().items():  # the cluster of this test
        monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    try:
        yield slug
    finally:
        get_settings.cache_clear()
        active().run("sacctmgr", "-i", "delete", "account", slug)


def test_sync_import_status_commands(cli_env: str) -> None:
    slug = cli_env
    res = runner.invoke(app, ["slurm", "sync", "--dry-run", "--json", "--project", slug])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["dry_run"] is True
    assert [c["action"] for c in plan["changes"]] == ["add_account", "add_user"]
    assert plan["accounts"][0]["gpu_minutes"] == 150

    res = runner.invoke(app, ["slurm", "sync", "--project", slug])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["slurm", "sync", "--project", slug])
    assert "in sync" in res.stdout

    res = runner.invoke(app, ["slurm", "status", "--json"])
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["controller"] == "up" and len(status["nodes"]) >= 2
    acc = next(a for a in status["accounts"] if a["account"] == slug)
    assert acc["slurm_gpu_minutes"] == 150 and acc["users"] == ["rwtest"]

    res = runner.invoke(app, ["slurm", "import", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["examined"] >= 0

    res = runner.invoke(app, ["slurm", "import", "--since", "yesterday"])
    assert res.exit_code == 2
    assert "--since" in res.output and "Traceback" not in res.output

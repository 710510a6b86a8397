"""Job arrays through the CLI against a real server (local executor): submit one array,
see it as one row, expand it, show it, cancel one task and then the rest; each task
that ran saw its index. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from jobs_server import pi_centre
from sqlalchemy.orm import Session, sessionmaker

from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow


def test_array_from_the_cli(session_factory: sessionmaker[Session], db_url: str,
                            tmp_path: Path) -> None:
    server, cli = pi_centre(session_factory, db_url, tmp_path, "sweep-llm")
    cli_json = cli.json

    released = tmp_path / "release-tasks"
    # Each task prints its index, then holds its GPU until the test releases it.
    hold = hold_command(released, before=(
        "import os; print('task', os.environ['RECHENWERK_ARRAY_TASK_ID'], "
        "os.environ['RECHENWERK_ARRAY_TASK_COUNT'], flush=True)"))
    spec = tmp_path / "sweep.yaml"
    spec.write_text("name: sweep\nproject: sweep-llm\ngpus: 1\nwalltime: 15m\n"
                    f"array: '0-5%2'\ncommand: {json.dumps(hold)}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("'0-5%2'", "'5-0'"))
    server.start()
    try:
        r = cli("submit", str(bad), ok=False)
        assert r.returncode == 2 and "array" in r.stderr and "Traceback" not in r.stderr
        out = cli("submit", str(spec)).stdout
        assert "_[0-5%2] submitted: 6 tasks of sweep" in out
        head = int(out.split()[1].split("_")[0])

        def states() -> dict[str, int]:
            return dict(cli_json("jobs")["items"][0]["array"]["states"])

        wait_for(lambda: states().get("running") == 2, "two tasks to run (%2)", step=0.2)
        table = cli("jobs").stdout
        assert f"{head}_[0-5%2]" in table and "2 running, 4 pending" in table
        assert cli_json("jobs")["total"] == 1
        assert cli_json("jobs", "--expand")["total"] == 6
        shown = cli("job", "show", str(head)).stdout
        assert "6 tasks" in shown and f"{head}_5" in shown
        task = cli_json("job", "show", f"{head}_3")
        assert task["array_task_id"] == 3 and task["reason_code"] == "array_limit"
        assert "array task limit" in task["reason"]
        assert "cancelled" in cli("cancel", f"{head}_5").stdout
        r = cli("cancel", "12x", ok=False)
        assert r.returncode == 2 and "not a job id" in r.stderr
        release(released)

        def ended() -> bool:
            return sum(states().get(k, 0) for k in ("done", "completed")) == 5
        wait_for(ended, "five tasks to complete", step=0.3)
        logs = cli("logs", f"{head}_4").stdout
        assert "task 4 6" in logs
        final = cli("jobs").stdout
        assert "5 done, 1 cancelled" in final
        r = cli("cancel", str(head), ok=False)
        assert r.returncode != 0 and "already ended" in r.stderr
    finally:
        release(released)
        server.stop()
    assert sys.executable

"""End to end through the CLI against a real server: submit the demo training job, watch
it wait (with the scheduler's reason) and run, read its logs, and see the balance drop by
exactly the GPU-hours it used. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jobs_server import pi_centre
from sqlalchemy.orm import Session, sessionmaker

from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_demo_job_from_the_cli(session_factory: sessionmaker[Session], db_url: str,
                               tmp_path: Path) -> None:
    server, cli = pi_centre(session_factory, db_url, tmp_path, "nordlicht-llm")
    cli_json = cli.json

    released = tmp_path / "release-blocker"
    server.start()
    try:
        before = cli_json("balance", "nordlicht-llm")
        assert before["available_gpu_hours"] == pytest.approx(50.0)
        # A blocker holds all 4 GPUs until the test releases it, so the demo job has to
        # wait however slow the machine is (a fixed sleep ran out first on loaded CI).
        blocker = tmp_path / "blocker.yaml"
        blocker.write_text(
            "name: blocker\nproject: nordlicht-llm\ngpus: 4\nwalltime: 15m\n"
            f"command: {json.dumps(hold_command(released))}\n")
        blocker_id = cli_json("submit", str(blocker))["id"]
        wait_for(lambda: cli_json("job", "show", str(blocker_id))["state"] == "running",
                 "the blocker to run")
        demo = cli_json("submit", str(ROOT / "examples" / "train-demo.yaml"))
        assert demo["state"] == "pending" and demo["gpus"] == 2
        # Bad input: one clear line and a non-zero exit code, nothing stored.
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: bad\nproject: nordlicht-llm\ngpus: 0\nwalltime: 1h\n"
                       "command: 'true'\n")
        r = cli("submit", str(bad), ok=False)
        assert r.returncode == 2 and "gpus" in r.stderr and "Traceback" not in r.stderr

        def demo_job() -> Any:
            return cli_json("job", "show", str(demo["id"]))

        def reason() -> str | None:
            queue = cli_json("queue")
            waiting = [j for j in queue["items"] if j["id"] == demo["id"]]
            assert waiting, "the demo job left the queue before its reason was seen"
            if waiting[0]["reason_code"] not in (None, "queued"):
                return str(waiting[0]["reason"])
            return None

        saw_reason = wait_for(reason, "the scheduler's reason for the demo job",
                              step=0.2)
        assert "GPU" in saw_reason, saw_reason
        queue_text = cli("queue").stdout
        assert "waiting" in queue_text.lower() or saw_reason in queue_text
        assert "1 pending jobs of 1 in the centre, by submit time" in queue_text  # fifo
        # the running loop's last cycle, not an order computed for the request
        assert re.search(r"order as of \d\d:\d\d:\d\d UTC", queue_text), queue_text
        # The forecast companion (every 0.5 s here): behind the blocker's walltime.
        expected = wait_for(lambda: demo_job()["expected_start"], "the demo job's forecast",
                            step=0.2)
        assert expected > demo["submitted_at"]
        assert "UTC (in" in cli("queue").stdout
        factors = cli("queue", "--priority").stdout
        assert "FAIRSHARE" in factors and str(demo["id"]) in factors
        shown = cli("job", "show", str(demo["id"])).stdout
        assert "queue position" in shown and "1 of 1, by submit time" in shown
        release(released)

        logs = cli("logs", "-f", "--interval", "0.2", str(demo["id"]))
        assert "training on GPUs" in logs.stdout and "step 20/20" in logs.stdout
        assert "done: w=" in logs.stdout
        job = demo_job()
        assert job["state"] == "completed" and job["exit_code"] == 0
        assert [e["to"] for e in job["events"]] == ["pending", "starting", "running",
                                                    "completed"]
        listed = cli_json("jobs", "--state", "completed")
        assert {j["id"] for j in listed["items"]} >= {demo["id"]}

        used = 2 * (datetime.fromisoformat(job["ended_at"])
                    - datetime.fromisoformat(job["started_at"])).total_seconds() / 3600
        assert used > 2 * 5 / 3600 * 0.8  # 20 steps x 0.25 s
        after = wait_for(lambda: (lambda b: b if b["committed_gpu_hours"] == 0 else None)(
            cli_json("balance", "nordlicht-llm")), "all GPU-hours to be settled", step=0.2)
        blocker_job = cli_json("job", "show", str(blocker_id))
        assert blocker_job["state"] == "completed"
        blocker_used = 4 * (datetime.fromisoformat(blocker_job["ended_at"])
                            - datetime.fromisoformat(blocker_job["started_at"])
                            ).total_seconds() / 3600
        assert after["settled_gpu_hours"] == pytest.approx(used + blocker_used, abs=1e-5)
        assert before["available_gpu_hours"] - after["available_gpu_hours"] == pytest.approx(
            used + blocker_used, abs=1e-5)
        assert "AVAILABLE GPU-h" in cli("balance", "nordlicht-llm").stdout
    finally:
        release(released)  # a failed run leaves no blocker waiting
        server.stop()

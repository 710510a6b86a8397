"""A pipeline through the CLI against a real server: `rechenwerk submit --after-ok` /
`--after-not-ok`, the queue's reason, `job show`'s dependencies, the pipeline running on
the local executor, and a reference to a job that does not exist refused with one line
and exit code 3."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from jobs_server import pi_centre
from sqlalchemy.orm import Session, sessionmaker

from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow


def test_pipeline_from_the_cli(session_factory: sessionmaker[Session], db_url: str,
                               tmp_path: Path) -> None:
    server, cli = pi_centre(session_factory, db_url, tmp_path, "pipeline-llm")
    cli_json = cli.json

    def spec(name: str, command: list[str]) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"name: {name}\nproject: pipeline-llm\ngpus: 1\nwalltime: 10m\n"
                        f"command: {json.dumps(command)}\n")
        return str(path)

    gate = tmp_path / "release-train"
    server.start()
    try:
        train = cli_json("submit", spec("train", hold_command(
            gate, after="open('model.txt', 'w').write('w=3')")))["id"]
        evaluate = cli_json("submit", spec("evaluate", [
            sys.executable, "-c", "print('eval', open('model.txt').read())"]),
            "--after-ok", str(train))
        assert evaluate["reason_code"] == "dependency"
        report = cli_json("submit", spec("report", ["echo", "train failed"]),
                          "--after-not-ok", str(train))["id"]
        missing = cli("submit", spec("orphan", ["true"]), "--after-ok", str(train + 1000),
                      ok=False)
        assert missing.returncode == 3 and "Traceback" not in missing.stderr
        assert f"job {train + 1000} not found" in missing.stderr
        bad = cli("submit", spec("bad", ["true"]), "--after-any", "x", ok=False)
        assert bad.returncode == 2 and "depends_on.after_any" in bad.stderr

        wait_for(lambda: cli_json("job", "show", str(train))["state"] == "running",
                 "train to run")
        queue = {j["id"]: j for j in cli_json("queue")["items"]}
        assert queue[evaluate["id"]]["reason_code"] == "dependency"
        assert queue[evaluate["id"]]["reason"] == f"waiting for job {train} (after_ok)"
        assert "waiting for job" in cli("queue").stdout
        shown = cli("job", "show", str(evaluate["id"])).stdout
        assert f"after_ok {train} (running)" in shown
        release(gate)

        def ended() -> Any:
            job = cli_json("job", "show", str(evaluate["id"]))
            return job if job["state"] in ("completed", "failed", "cancelled") else None

        done = wait_for(ended, "evaluate to end", step=0.2)
        assert done["state"] == "completed", done["reason"]
        assert "eval w=3" in cli("logs", str(evaluate["id"])).stdout
        rep = cli_json("job", "show", str(report))
        assert (rep["state"], rep["reason_code"]) == ("cancelled", "dependency_never_satisfied")
        assert cli_json("job", "show", str(train))["dependents"] == [evaluate["id"], report]
    finally:
        release(gate)
        server.stop()

"""A pipeline through the CLI against a real server: `rechenwerk submit --after-ok` /
`--after-not-ok`, the queue's reason, `job show`'s dependencies, the pipeline running on
the local executor, and a reference to a job that does not exist refused with one line
and exit code 3."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jobs_server import BIN, Server
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_token, make_user
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope
from waiting import hold_command, release, wait_for

pytestmark = pytest.mark.slow


def test_pipeline_from_the_cli(session_factory: sessionmaker[Session], db_url: str,
                               tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi, slug="pipeline-llm")
        make_award(s, project, gpu_hours=50, starts_at=now - timedelta(days=1))
        token = make_token(s, pi, now=now)
    server = Server(tmp_path / "var", db_url, cluster="1x4:A100-80GB")
    env = {**server.env, "RECHENWERK_API_URL": server.url, "RECHENWERK_TOKEN": token,
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200"}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True,
                           timeout=120)
        if ok:
            assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
        return r

    def cli_json(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

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

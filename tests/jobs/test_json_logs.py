"""`rechenwerk server --log-format json`: every line one JSON object; requests carry
their id (the client's X-Request-ID, echoed) and user, the scheduler's lines the cycle
and the job."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from jobs_server import Server
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_token, make_user
from rechenwerk.app import create_app
from rechenwerk.clock import WallClock
from rechenwerk.config import Settings
from rechenwerk.log_format import JsonFormatter, cycle_var
from rechenwerk.store.session import session_scope
from waiting import wait_for


def test_request_ids(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db",
                              scheduler_enabled=False))
    with TestClient(app) as client:
        assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers[
            "x-request-id"] == "abc-123"
        made = client.get("/healthz", headers={"X-Request-ID": "no spaces\nor newlines"})
        assert len(made.headers["x-request-id"]) == 32  # replaced by a fresh one
        assert client.get("/healthz").headers["x-request-id"] != made.headers["x-request-id"]


def test_formatter_fields() -> None:
    record = logging.makeLogRecord({"name": "rechenwerk.scheduler", "levelname": "WARNING",
                                    "msg": "launch of job %s failed", "args": (7,),
                                    "job_id": 7})
    token = cycle_var.set(41)
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        cycle_var.reset(token)
    assert line["message"] == "launch of job 7 failed"
    assert (line["level"], line["logger"], line["job_id"], line["cycle"]) == (
        "warning", "rechenwerk.scheduler", 7, 41)


@pytest.mark.slow
def test_server_logs_json(session_factory: sessionmaker[Session], db_url: str,
                          tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=10, starts_at=now - timedelta(days=1))
        token, slug, username = make_token(s, pi, now=now), project.slug, pi.username
    server = Server(tmp_path / "var", db_url)
    server.start(args=("--log-format", "json", "--log-level", "info"))
    try:
        r = httpx.post(f"{server.url}/api/v1/jobs", timeout=60,
                       headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"},
                       json={"name": "logged", "project": slug, "gpus": 1, "walltime": "5m",
                             "command": [sys.executable, "-c", "print('hi')"]})
        assert r.status_code == 201 and r.headers["x-request-id"] == "req-42"
        job_id = r.json()["id"]

        def lines() -> list[dict[str, object]]:
            text = server.log.read_text().splitlines()
            return [json.loads(line) for line in text if line.strip()]  # all JSON, or fail

        def launched() -> dict[str, object] | None:
            return next((x for x in lines() if x.get("job_id") == job_id
                         and str(x["message"]).startswith("launched job")), None)

        launch = wait_for(launched, "the launch to be logged")
        assert isinstance(launch["cycle"], int) and launch["logger"] == "rechenwerk.scheduler"
        assert any(str(x["message"]).startswith("serving on") for x in lines())
        assert not any("color_message" in x for x in lines())
        access = next(x for x in lines() if x.get("request_id") == "req-42")
        assert access["logger"] == "uvicorn.access"
        assert (access["method"], access["path"], access["status"], access["user"]) == (
            "POST", "/api/v1/jobs", 201, username)
    finally:
        server.stop()

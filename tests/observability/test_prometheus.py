"""A real Prometheus (Debian's ``prometheus``) scrapes a real ``rechenwerk server`` with
two workers on its metrics port, with the metrics token from a credentials file, and
its HTTP API returns the queue length. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import grafana_dashboard
import httpx
import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from factories import bearer, make_award, make_project, make_token, make_user
from jobs.jobs_server import Server, free_port  # tests/jobs/jobs_server.py
from rechenwerk.clock import WallClock
from rechenwerk.store.session import session_scope
from waiting import wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PROMETHEUS.exists(),
                       reason="Prometheus is not installed (apt-get install prometheus)"),
]


def _prometheus_config(tmp_path: Path, target: str, token: str) -> Path:
    credentials = tmp_path / "metrics-token"
    credentials.write_text(token + "\n")
    credentials.chmod(0o600)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "rechenwerk",
            "metrics_path": "/metrics",
            "authorization": {"type": "Bearer", "credentials_file": str(credentials)},
            "static_configs": [{"targets": [target]}],
        }],
    }))
    return config


def test_prometheus_scrapes_the_queue_length(session_factory: sessionmaker[Session],
                                             db_url: str, tmp_path: Path) -> None:
    now = WallClock().now()
    with session_scope(session_factory) as s:
        pi, op = make_user(s), make_user(s, operator=True)
        project = make_project(s, pi=pi, slug="nordlicht-llm")
        make_award(s, project, gpu_hours=50, starts_at=now - timedelta(days=1))
        pi_token, op_token = make_token(s, pi, now=now), make_token(s, op, now=now)
    metrics_port, prometheus_port = free_port(), free_port()
    token = secrets.token_hex(32)
    server = Server(tmp_path / "var", db_url, cluster="1x4:A100-80GB")
    server.env.update({"RECHENWERK_METRICS_TOKEN": token,
                       "RECHENWERK_METRICS_PORT": str(metrics_port)})
    config = _prometheus_config(tmp_path, f"127.0.0.1:{metrics_port}", token)
    prometheus: subprocess.Popen[bytes] | None = None
    prometheus_log = tmp_path / "prometheus.log"
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"

    def query(expr: str) -> list[dict[str, Any]]:
        try:
            r = httpx.get(f"{api}/query", params={"query": expr}, timeout=10)
        except httpx.TransportError:
            return []  # Prometheus still starting
        if r.status_code == 503:
            return []  # listening, but its storage is not ready yet (plain-text answer)
        body = r.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(expr: str) -> float | None:
        result = query(expr)
        return float(result[0]["value"][1]) if result else None

    server.start(args=("--log-level", "warning", "--workers", "2"))
    try:
        # the only node drained: both jobs wait however fast the machine is
        r = httpx.post(f"{server.url}/api/v1/nodes/node01/drain", headers=bearer(op_token),
                       timeout=30)
        assert r.status_code == 200, r.text
        for i in range(2):
            spec = {"name": f"wait-{i}", "project": "nordlicht-llm", "gpus": 2,
                    "walltime": "10m", "command": "true"}
            r = httpx.post(f"{server.url}/api/v1/jobs", json=spec, headers=bearer(pi_token),
                           timeout=30)
            assert r.status_code == 201 and r.json()["state"] == "pending", r.text
        # the main port has no /metrics: it has a port of its own
        assert httpx.get(f"{server.url}/metrics", headers=bearer(token),
                         timeout=30).status_code == 404
        with open(prometheus_log, "wb") as log:
            prometheus = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
                stdout=log, stderr=log, start_new_session=True)

        def queue_length() -> bool:
            assert prometheus is not None
            if prometheus.poll() is not None:
                raise AssertionError(f"prometheus exited: {prometheus_log.read_text()[-3000:]}")
            return scalar("rechenwerk_queue_jobs") == 2

        try:
            wait_for(queue_length, "Prometheus to return a queue length of 2", step=0.5)
        except AssertionError:
            targets = httpx.get(f"{api}/targets", timeout=10).json()
            raise AssertionError(
                f"targets: {json.dumps(targets)[:2000]}\nprometheus: "
                f"{prometheus_log.read_text()[-2000:]}\nserver: "
                f"{server.log.read_text()[-2000:]}") from None
        assert scalar('up{job="rechenwerk"}') == 1
        assert scalar('rechenwerk_jobs{project="nordlicht-llm",state="pending"}') == 2
        assert scalar('rechenwerk_cluster_gpus{state="drained"}') == 4
        # in-process counters reach Prometheus too, summed over both workers
        assert scalar('sum(rechenwerk_job_submission_duration_seconds_count'
                      '{outcome="accepted"})') == 2
        wait_for(lambda: (scalar('sum(rechenwerk_scheduler_phase_duration_seconds_count'
                                 '{phase="decide"})') or 0) > 0,
                 "scheduler cycles to show in Prometheus", step=0.5)
        # every query of the Grafana dashboard is valid PromQL to this Prometheus
        for expr in grafana_dashboard.expressions():
            query(grafana_dashboard.as_sent(expr))
        assert query(grafana_dashboard.as_sent("label_values(rechenwerk_jobs, project)"))
    finally:
        if prometheus is not None:
            prometheus.terminate()
            try:
                prometheus.wait(30)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(10)
        server.stop()

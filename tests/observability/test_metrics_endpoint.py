"""/metrics: who may read it, the state gauges for a known database, the in-process
instruments (HTTP latency, submissions, scheduler phases, backend errors), bounded labels,
the metrics port of its own and multiprocess mode. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grafana_dashboard
import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from factories import T0, bearer, make_award, make_project, make_token, make_user
from jobs.jobs_fake_backend import FakeBackend  # tests/jobs/jobs_fake_backend.py
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.app import create_app
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings, get_settings
from rechenwerk.errors import BackendError, InvalidInput
from rechenwerk.jobs.loop import PHASES, SchedulerLoop
from rechenwerk.jobs.models import Job, NodeState
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.observability.backend import InstrumentedBackend
from rechenwerk.observability.collector import STATE_METRICS
from rechenwerk.observability.instruments import HTTP_METHODS, INSTRUMENTS

SRC = Path(__file__).resolve().parents[2] / "src"
METRICS_TOKEN = "m" * 40
SPEC = {"name": "train", "command": "python3 train.py", "gpus": 2, "walltime": "1h"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client(db_url: str, session_factory: sessionmaker[Session], session: Session,
           clock: FakeClock, tmp_path: Path) -> Iterator[TestClient]:
    """Like conftest's api_client, with a metrics token set."""

    class _Client(TestClient):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if session.in_transaction():
                session.commit()
            return super().request(*args, **kwargs)

    settings = Settings(data_dir=tmp_path / "var", database_url=db_url,
                        metrics_token=METRICS_TOKEN)
    app = create_app(settings, session_factory=session_factory, clock=clock)
    c = _Client(app, raise_server_exceptions=False)  # not entered: no background loops
    yield c
    c.close()


def scrape(client: TestClient, token: str = METRICS_TOKEN) -> Samples:
    r = client.get("/metrics", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


def _world(session: Session) -> dict[str, Any]:
    pi, member, op = make_user(session), make_user(session), make_user(session, operator=True)
    project = make_project(session, pi=pi, slug="nordlicht-llm", members={member: "member"})
    award = make_award(session, project, gpu_hours=100.0)
    out = {"project": project, "award": award, "pi": make_token(session, pi),
           "op": make_token(session, op), "pi_user": pi}
    session.commit()
    return out


def test_only_operators_and_the_metrics_token_may_scrape(client: TestClient,
                                                         session: Session) -> None:
    w = _world(session)
    for headers, status, code in [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer wrong-token"}, 401, "unauthenticated"),
        ({"Authorization": f"Basic {METRICS_TOKEN}"}, 401, "unauthenticated"),
        (bearer(METRICS_TOKEN[:-1]), 401, "unauthenticated"),
        (bearer(w["pi"]), 403, "permission_denied"),  # a PI sees only their projects
    ]:
        r = client.get("/metrics", headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == code and "nordlicht" not in r.text
    assert value(scrape(client, w["op"]), "rechenwerk_queue_jobs") == 0
    assert value(scrape(client), "rechenwerk_queue_jobs") == 0
    assert "/metrics" not in client.get("/openapi.json").text


def _job(session: Session, project_id: int, user_id: int, state: str, *, gpus: int = 1,
         submitted_s_ago: float = 0.0, placement: list[Any] | None = None,
         period_id: int | None = None) -> Job:
    at = T0 - timedelta(seconds=submitted_s_ago)
    job = Job(project_id=project_id, user_id=user_id, award_period_id=period_id, name="j",
              spec={}, state=state, qos="normal", requested_qos="normal", over_budget=False,
              gpus=gpus, walltime_s=3600, attempt=1 if placement else 0, attained_gpu_s=0.0,
              placement=placement, submitted_at=at, updated_at=at)
    session.add(job)
    return job


def test_state_gauges_match_a_known_database(client: TestClient, session: Session,
                                             clock: FakeClock) -> None:
    w = _world(session)
    project, pi = w["project"], w["pi_user"]
    other = make_project(session, slug="quiet-one")  # an award, no live job
    quiet_award = make_award(session, other, gpu_hours=10.0)
    period = w["award"].periods[0]
    pid, uid = project.id, pi.id
    _job(session, pid, uid, "pending", gpus=4, submitted_s_ago=600, period_id=period.id)
    _job(session, pid, uid, "pending", gpus=2, submitted_s_ago=60, period_id=period.id)
    _job(session, pid, uid, "running", gpus=3, placement=[["node01", [0, 1, 2]]],
         period_id=period.id)
    _job(session, pid, uid, "starting", gpus=2, placement=[["node02", [0, 1]]],
         period_id=period.id)
    _job(session, pid, uid, "completed")
    _job(session, other.id, uid, "failed")
    no_award = make_project(session, slug="no-award")
    _job(session, no_award.id, uid, "preempted")
    _job(session, no_award.id, uid, "cancelled")
    session.add(NodeState(name="node02", drained=True, reason="maintenance", updated_at=T0))
    session.add(UsageRecord(project_id=pid, award_period_id=period.id, gpu_type="A100-80GB",
                            gpus=2, started_at=T0, ended_at=T0, gpu_hours=12.5,
                            source="local", created_at=T0))
    for i, (sent, gave_up, age_s) in enumerate([(False, False, 300), (False, False, 30),
                                                (False, True, 900), (True, False, 1000)]):
        session.add(OutboxMessage(
            to_address="a@example.eu", event="job_finished", subject="s", body="b",
            dedup_key=f"k{i}", created_at=T0 - timedelta(seconds=age_s),
            next_attempt_at=T0, sent_at=T0 if sent else None, attempts=0,
            last_error="", gave_up=gave_up))
    session.commit()

    s = scrape(client)
    # the queue: two pending jobs, 6 GPUs, the older one submitted 10 minutes ago
    assert value(s, "rechenwerk_queue_jobs") == 2
    assert value(s, "rechenwerk_queue_gpus") == 6
    assert value(s, "rechenwerk_queue_oldest_wait_seconds") == 600
    # live jobs by project and state: every live state of each project with live jobs
    # or an active award, zeros too; ended jobs are not read
    jobs = {(d["project"], d["state"]): value(s, "rechenwerk_jobs", **d)
            for d in series(s, "rechenwerk_jobs")}
    assert jobs == {("nordlicht-llm", "pending"): 2, ("nordlicht-llm", "starting"): 1,
                    ("nordlicht-llm", "running"): 1, ("nordlicht-llm", "preempted"): 0,
                    ("quiet-one", "pending"): 0, ("quiet-one", "starting"): 0,
                    ("quiet-one", "running"): 0, ("quiet-one", "preempted"): 0,
                    ("no-award", "pending"): 0, ("no-award", "starting"): 0,
                    ("no-award", "running"): 0, ("no-award", "preempted"): 1}
    # GPUs (the default inventory: 2 nodes x 8 A100-80GB; node02 drained with 2 in use)
    node = {(d["node"], d["state"]): value(s, "rechenwerk_node_gpus", **d)
            for d in series(s, "rechenwerk_node_gpus")}
    assert node == {("node01", "used"): 3, ("node01", "free"): 5, ("node01", "drained"): 0,
                    ("node02", "used"): 2, ("node02", "free"): 0, ("node02", "drained"): 6}
    assert {d["gpu_type"] for d in series(s, "rechenwerk_node_gpus")} == {"A100-80GB"}
    assert value(s, "rechenwerk_cluster_gpus", state="used") == 5
    assert value(s, "rechenwerk_cluster_gpus", state="free") == 5
    assert value(s, "rechenwerk_cluster_gpus", state="drained") == 6
    # the award: 100 h, 12.5 settled, committed = 4+2+3+2 GPUs x 1 h of its live jobs
    labels = {"project": "nordlicht-llm", "award": str(w["award"].id),
              "gpu_type": "A100-80GB"}
    assert value(s, "rechenwerk_award_awarded_gpu_hours", **labels) == 100
    assert value(s, "rechenwerk_award_settled_gpu_hours", **labels) == 12.5
    assert value(s, "rechenwerk_award_committed_gpu_hours", **labels) == 11
    assert value(s, "rechenwerk_award_available_gpu_hours", **labels) == 76.5
    quiet = {"project": "quiet-one", "award": str(quiet_award.id), "gpu_type": "A100-80GB"}
    assert value(s, "rechenwerk_award_available_gpu_hours", **quiet) == 10
    assert len(series(s, "rechenwerk_award_settled_gpu_hours")) == 2  # no-award: none
    # the outbox: two queued (the older 5 minutes), one given up; the sent one not counted
    assert value(s, "rechenwerk_notification_outbox_messages", state="queued") == 2
    assert value(s, "rechenwerk_notification_outbox_messages", state="gave_up") == 1
    assert value(s, "rechenwerk_notification_outbox_oldest_age_seconds") == 300
    assert value(s, "rechenwerk_build_info", version=__import__("rechenwerk").__version__) == 1
    assert (value(s, "rechenwerk_metrics_collect_duration_seconds") or 0) > 0
    # time moves on: the waits grow with the clock
    clock.advance(100)
    later = scrape(client)
    assert value(later, "rechenwerk_queue_oldest_wait_seconds") == 700
    assert value(later, "rechenwerk_notification_outbox_oldest_age_seconds") == 400


def _count(name: str, **labels: str) -> float:
    return INSTRUMENTS.get_sample_value(name, labels) or 0.0


def test_submissions_are_counted_by_outcome(client: TestClient, session: Session) -> None:
    w = _world(session)
    name = "rechenwerk_job_submission_duration_seconds_count"
    before = {o: _count(name, outcome=o)
              for o in ("accepted", "over_budget", "duplicate", "refused")}
    spec = {**SPEC, "project": "nordlicht-llm", "idempotency_key": "k1"}
    assert client.post("/api/v1/jobs", json=spec, headers=bearer(w["pi"])).status_code == 201
    assert client.post("/api/v1/jobs", json=spec, headers=bearer(w["pi"])).status_code == 200
    huge = {**SPEC, "project": "nordlicht-llm", "gpus": 16, "walltime": "48h"}
    assert client.post("/api/v1/jobs", json=huge, headers=bearer(w["pi"])).status_code == 402
    after = {o: _count(name, outcome=o) - before[o] for o in before}
    assert after == {"accepted": 1, "over_budget": 0, "duplicate": 1, "refused": 1}
    s = scrape(client)
    assert value(s, name, outcome="accepted") == _count(name, outcome="accepted")


def _flat(routes: list[Any]) -> list[Any]:
    """Every route (FastAPI keeps an included router as one entry)."""
    out: list[Any] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_flat(inner.routes) if inner is not None else [r])
    return out


def test_http_labels_are_route_templates_and_bounded(client: TestClient,
                                                     session: Session) -> None:
    w = _world(session)
    name = "rechenwerk_http_request_duration_seconds_count"
    keys = [("GET", "/api/v1/jobs/{job_id}", "4xx"), ("GET", "unmatched", "4xx"),
            ("DELETE", "/api/v1/health", "4xx")]
    before = {k: _count(name, method=k[0], route=k[1], status_class=k[2]) for k in keys}
    for i in range(30):  # many job ids, unknown paths, odd methods: a few series only
        client.get(f"/api/v1/jobs/{1000 + i}", headers=bearer(w["pi"]))
        client.get(f"/no/such/path/{i}-secret")
    client.request("BREW", "/api/v1/jobs")
    client.request("DELETE", "/api/v1/health")  # 405 on a known route
    s = scrape(client)
    labels = series(s, name)
    routes = {d["route"] for d in labels}
    templates = {r.path for r in _flat(client.app.router.routes)}  # type: ignore[attr-defined]
    assert "/api/v1/jobs/{job_id}" in routes and "unmatched" in routes
    # The registry is the process's: other tests' apps (with routes of their own) count
    # there too. What must hold for every series: a template or "unmatched", never a
    # raw path (no id, no unknown path of this test).
    assert not any(re.search(r"/\d+(/|$)|secret|no/such", r) for r in routes), routes
    assert {r for r in routes if r.startswith("/api/")} - templates <= {
        r for r in routes if "{" in r}
    assert {d["method"] for d in labels} <= HTTP_METHODS | {"other"}
    assert {d["status_class"] for d in labels} <= {"1xx", "2xx", "3xx", "4xx", "5xx"}
    grew = {k: (value(s, name, method=k[0], route=k[1], status_class=k[2]) or 0)
            - before[k] for k in keys}
    assert grew == {keys[0]: 30, keys[1]: 30, keys[2]: 1}
    assert value(s, name, method="other", route="/api/v1/jobs", status_class="4xx")
    # no label anywhere names a user, a job or a token, and no raw path leaks
    names = {k for (_n, ls) in s for k, _v in ls}
    assert not names & {"user", "user_id", "job", "job_id", "token", "path", "username"}
    assert "secret" not in client.get("/metrics", headers=bearer(METRICS_TOKEN)).text


def test_scheduler_phases_and_backend_errors_are_observed(
        session_factory: sessionmaker[Session], session: Session, clock: FakeClock,
        tmp_path: Path) -> None:
    w = _world(session)
    _job(session, w["project"].id, w["pi_user"].id, "pending",
         period_id=w["award"].periods[0].id)
    session.commit()
    fake = FakeBackend()
    fake.fail_next = "no such node"
    backend = InstrumentedBackend(fake)
    phase = "rechenwerk_scheduler_phase_duration_seconds_count"
    before = {p: _count(phase, phase=p) for p in PHASES}
    cycles = _count("rechenwerk_scheduler_cycle_duration_seconds_count")
    errors = _count("rechenwerk_backend_errors_total", backend="fake", operation="submit")
    changes = {st: _count("rechenwerk_job_state_changes_total", state=st)
               for st in ("starting", "pending", "running")}
    loop = SchedulerLoop(session_factory, backend,
                         settings=Settings(data_dir=tmp_path, scheduler_policy="fifo"),
                         clock=clock)
    loop.cycle()  # the launch fails (fail_next): counted as a backend error
    ran = {p: _count(phase, phase=p) - before[p] for p in PHASES}
    assert ran == {"poll": 1, "forward_cancels": 1, "dependencies": 1, "snapshot": 1,
                   "decide": 1, "apply": 1,
                   "reasons": 1, "hand_over": 0}
    assert _count("rechenwerk_scheduler_cycle_duration_seconds_count") == cycles + 1
    assert _count("rechenwerk_backend_errors_total", backend="fake",
                  operation="submit") == errors + 1
    assert (_count("rechenwerk_scheduler_last_cycle_timestamp_seconds") or 0) > 0
    # placed (pending -> starting), its launch failed and it was requeued (-> pending)
    assert {st: _count("rechenwerk_job_state_changes_total", state=st) - n
            for st, n in changes.items()} == {"starting": 1, "pending": 1, "running": 0}
    fake.fail_next = "again"
    with pytest.raises(BackendError):
        backend.submit(_request())
    assert _count("rechenwerk_backend_errors_total", backend="fake",
                  operation="submit") == errors + 2


def _request() -> Any:
    from rechenwerk.execution.base import LaunchRequest

    return LaunchRequest(job_id="1", attempt=1, name="j", project="p", user="u",
                         command=("true",), script=None, workdir="/tmp", env={}, gpus=1,
                         nodes=1, gpus_per_node=1, walltime_s=60, qos="normal",
                         log_dir="/tmp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_port_of_its_own(db_url: str, session_factory: sessionmaker[Session],
                                 session: Session, clock: FakeClock, tmp_path: Path) -> None:
    w = _world(session)
    port = _free_port()
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url,
                        metrics_token=METRICS_TOKEN, metrics_port=port)
    app = create_app(settings, session_factory=session_factory, clock=clock)
    main = TestClient(app, raise_server_exceptions=False)
    assert main.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 404
    runtime = app.state.runtime
    runtime.start_metrics_server()
    try:
        assert runtime.metrics_server is not None
        url = f"http://127.0.0.1:{port}/metrics"

        def get(headers: dict[str, str]) -> httpx.Response:
            from waiting import wait_for

            def answer() -> httpx.Response | None:
                try:
                    return httpx.get(url, headers=headers, timeout=10)
                except httpx.TransportError:
                    return None

            return wait_for(answer, "the metrics port to answer")

        r = get(bearer(METRICS_TOKEN))
        assert r.status_code == 200 and value(parse(r.text), "rechenwerk_queue_jobs") == 0
        assert get({}).status_code == 401
        assert get(bearer(w["pi"])).status_code == 403
        assert get(bearer(w["op"])).status_code == 200
        # a second server on the same port (another worker) does not bind it
        second = create_app(settings, session_factory=session_factory, clock=clock)
        second.state.runtime.start_metrics_server()
        assert second.state.runtime.metrics_server is None
    finally:
        runtime.stop_metrics_server()
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=5)


def test_multiprocess_mode_sums_the_workers(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR (``rechenwerk server --workers N``) a scrape in any
    process shows every process's counts."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = ("from rechenwerk.observability import instruments as i\n"
             "i.observe_submission('accepted', 0.01)\n"
             "i.count_backend_error('local', 'poll')\n")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    show = ("from prometheus_client import generate_latest\n"
            "from rechenwerk.observability.instruments import scrape_registry\n"
            "print(generate_latest(scrape_registry()).decode())\n")
    out = subprocess.run([sys.executable, "-c", show], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout
    s = parse(out)
    assert value(s, "rechenwerk_job_submission_duration_seconds_count",
                 outcome="accepted") == 2
    assert value(s, "rechenwerk_backend_errors_total", backend="local", operation="poll") == 2


@pytest.fixture
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("_fresh_settings")
@pytest.mark.parametrize(("var", "bad"), [("RECHENWERK_METRICS_TOKEN", "short"),
                                          ("RECHENWERK_METRICS_TOKEN", "x" * 31 + " y"),
                                          ("RECHENWERK_METRICS_PORT", "70000")])
def test_bad_metrics_settings_name_their_variable(monkeypatch: pytest.MonkeyPatch,
                                                  var: str, bad: str) -> None:
    monkeypatch.setenv(var, bad)
    with pytest.raises(InvalidInput, match=var):
        get_settings()


def _sample_names(family: Any) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "info": ("_info",)}.get(family.type, ("",))
    return {family.name + s for s in suffixes}


def test_the_grafana_dashboard_uses_exactly_the_exposed_metrics(client: TestClient,
                                                                 session: Session) -> None:
    """Every name in the dashboard's queries is one /metrics exposes, and every family
    /metrics exposes is on the dashboard."""
    _world(session)
    text = client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    families = [f for f in text_string_to_metric_families(text)
                if f.name.startswith("rechenwerk_")]
    exposed = {n for f in families for n in _sample_names(f)}
    assert {"rechenwerk_queue_jobs", "rechenwerk_backend_errors_total",
            "rechenwerk_http_request_duration_seconds_bucket"} <= exposed
    assert {f.name for f in families} >= set(STATE_METRICS)
    used = set().union(*(grafana_dashboard.metric_names(e)
                         for e in grafana_dashboard.expressions()))
    assert used - exposed == set(), "the dashboard queries metrics nobody exposes"
    unused = [f.name for f in families if not _sample_names(f) & used]
    assert unused == [], "exposed but on no panel"


@pytest.mark.usefixtures("_fresh_settings")
def test_server_refuses_a_metrics_port_equal_to_its_own(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rechenwerk.cli.main import app

    monkeypatch.setenv("RECHENWERK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECHENWERK_METRICS_PORT", "18123")
    r = CliRunner().invoke(app, ["server", "--port", "18123"])
    assert r.exit_code == 2, r.output
    assert "RECHENWERK_METRICS_PORT: 18123 is the server's own port" in r.output


def test_the_wrapped_backend_is_pingable_exactly_when_the_backend_is() -> None:
    """/readyz asks ``isinstance(backend, Pingable)``: the error-counting wrapper must not
    hide a backend's ping, nor invent one."""
    from rechenwerk.execution.base import Pingable
    from rechenwerk.observability.backend import instrumented

    class _Pinging(FakeBackend):
        def ping(self) -> None:
            raise BackendError("slurmctld does not answer")

    assert not isinstance(instrumented(FakeBackend()), Pingable)
    pinging = instrumented(_Pinging())
    assert isinstance(pinging, Pingable) and instrumented(pinging) is pinging
    before = _count("rechenwerk_backend_errors_total", backend="fake", operation="ping")
    with pytest.raises(BackendError):
        pinging.ping()
    assert _count("rechenwerk_backend_errors_total", backend="fake",
                  operation="ping") == before + 1

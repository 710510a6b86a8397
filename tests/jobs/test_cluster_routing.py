"""Several clusters: the routing choice (pure), the clusters file, a job that names a
cluster, and the scheduler loop over several self-scheduling backends (fakes: the real
clusters are in tests/slurm/test_several_clusters.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project, make_user
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import BackendUnavailable, InvalidInput
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    LaunchRequest,
    ReconcileReport,
)
from rechenwerk.execution.clusters import (
    ClusterRegistry,
    ClusterSpec,
    load_clusters,
    parse_clusters_file,
)
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.routing import ClusterOption, choose_cluster
from rechenwerk.jobs.specs import parse_spec

# --------------------------------------------------------------------- the choice


def test_soonest_start_wins_then_name() -> None:
    a = ClusterOption("a", True, expected_start_s=3600.0)
    b = ClusterOption("b", True, expected_start_s=0.0)
    assert choose_cluster([a, b]).cluster == "b"
    # within a minute: the same; then by name
    assert choose_cluster([ClusterOption("b", True, expected_start_s=1.0),
                           ClusterOption("a", True, expected_start_s=30.0)]).cluster == "a"
    # unknown starts after known ones
    assert choose_cluster([ClusterOption("a", True),
                           ClusterOption("b", True, expected_start_s=900.0)]).cluster == "b"


def test_unavailable_unfunded_and_unfitting_clusters_are_skipped() -> None:
    opts = [ClusterOption("a", False, reason="down"),
            ClusterOption("b", True, offers_gpu_type=False),
            ClusterOption("c", True, budget=False),
            ClusterOption("d", True, expected_start_s=7200.0)]
    assert choose_cluster(opts).cluster == "d"
    route = choose_cluster(opts[:1])
    assert route.cluster is None and "a: down" in (route.reason or "")
    assert "GPU type" in (choose_cluster(opts[1:2]).reason or "")
    assert "no award valid" in (choose_cluster(opts[2:3]).reason or "")


def test_a_named_cluster_is_respected_or_waited_for() -> None:
    opts = [ClusterOption("a", True, expected_start_s=0.0),
            ClusterOption("b", True, expected_start_s=9999.0)]
    assert choose_cluster(opts, "b").cluster == "b"
    down = [ClusterOption("a", True), ClusterOption("b", False, reason="ssh: timeout")]
    route = choose_cluster(down, "b")
    assert route.cluster is None
    assert route.reason == "cluster b is unavailable: ssh: timeout"


# --------------------------------------------------------------------- declarations


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    return path


def test_without_a_file_one_implicit_cluster() -> None:
    assert [c.name for c in load_clusters(Settings())] == ["local"]
    assert [c.name for c in load_clusters(Settings(executor="slurm"))] == ["slurm"]
    assert [c.name for c in load_clusters(Settings(cluster_name="main"))] == ["main"]


def test_a_file_declares_clusters_with_their_slurm_keys(tmp_path: Path) -> None:
    path = _file(tmp_path, """
clusters:
  - name: alpha
    partitions: [gpu, long]
    gpu_types: {A100-80GB: a100}
  - name: beta
    command_prefix: ssh login-beta
    transport: rest
    rest_url: unix:/run/beta.sock
    gpu_types: [H100]
""")
    alpha, beta = parse_clusters_file(path)
    base = Settings(executor="slurm", slurm_partition="debug")
    s = alpha.settings(base)
    assert (s.slurm_partition, s.slurm_gpu_types) == ("gpu", {"A100-80GB": "a100"})
    s = beta.settings(base)
    assert s.slurm_command_prefix_argv == ("ssh", "login-beta")
    assert (s.slurm_transport, s.slurm_rest_url, s.slurm_partition) == (
        "rest", "unix:/run/beta.sock", "debug")
    assert beta.offers("H100") and not beta.offers("A100-80GB") and beta.offers(None)
    assert ClusterSpec(name="x").offers("anything")


@pytest.mark.parametrize(("text", "message"), [
    ("- name: Bad_Name\n", "(entry 1): name: cluster name 'Bad_Name': 1-32 lower-case"),
    ("- name: a\n  partitoin: x\n", "cluster 'a' (entry 1): partitoin: "),
    ("- name: a\n- name: a\n", "cluster name 'a' is declared twice"),
    ("- name: a\n  executor: local\n- name: b\n", "the local executor can only be"),
    ("name: a\n", "must be a list of clusters"),
    ("- name: a\n  transport: smoke\n", "transport"),
    ("- [1\n", "not a YAML file"),
])
def test_bad_declarations_say_where_and_how(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(InvalidInput) as exc:
        parse_clusters_file(path)
    assert message in exc.value.message and str(path) in exc.value.message
    assert exc.value.hint


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_clusters(Settings(clusters=str(tmp_path / "nope.yaml")))


# --------------------------------------------------------------------- submission


TWO = "- name: alpha\n  gpu_types: [A100-80GB]\n- name: beta\n  gpu_types: [H100]\n"


def test_a_job_names_a_declared_cluster(session: Session, clock: FakeClock,
                                        tmp_path: Path) -> None:
    settings = Settings(executor="slurm", clusters=str(_file(tmp_path, TWO)))
    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project)
    doc = {"name": "t", "project": project.slug, "command": ["true"], "gpus": 1,
           "walltime": "1h"}
    job = service.submit(session, pi, parse_spec({**doc, "cluster": "alpha"}), clock=clock,
                         settings=settings)
    assert job.requested_cluster == "alpha" and job.cluster is None
    with pytest.raises(InvalidInput) as exc:
        service.submit(session, pi, parse_spec({**doc, "cluster": "gamma"}), clock=clock,
                       settings=settings)
    assert exc.value.message == "unknown cluster 'gamma'"
    assert "alpha, beta" in (exc.value.hint or "")
    with pytest.raises(InvalidInput, match="has no GPU type 'A100-80GB'"):
        service.submit(session, pi, parse_spec({**doc, "cluster": "beta",
                                                "gpu_type": "A100-80GB"}),
                       clock=clock, settings=settings)


# --------------------------------------------------------------------- the loop


class SelfScheduling:
    """A fake Slurm: accepts jobs, reports what the test sets; can be made unreachable."""

    name = "slurm"
    capabilities = BackendCapabilities(schedules_itself=True, multi_node=True,
                                       graceful_preemption=True, imports_foreign_jobs=False)

    def __init__(self, start_in_s: float = 0.0) -> None:
        self.start_in_s = start_in_s
        self.down: str | None = None
        self.jobs: dict[str, BackendJobStatus] = {}
        self.n = 0

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable(self.down)

    def ping(self) -> None:
        self._check()

    def expected_start(self, request: LaunchRequest) -> datetime:
        self._check()
        return datetime.now().astimezone() + timedelta(seconds=self.start_in_s)

    def submit(self, request: LaunchRequest) -> str:
        self._check()
        self.n += 1
        handle = str(self.n)
        self.jobs[handle] = BackendJobStatus(handle, BackendJobState.PENDING)
        return handle

    def finish(self, handle: str) -> None:
        now = datetime.now().astimezone()
        self.jobs[handle] = BackendJobStatus(handle, BackendJobState.COMPLETED,
                                             started_at=now - timedelta(minutes=1),
                                             ended_at=now, exit_code=0)

    def cancel(self, handle: str) -> None:
        self._check()

    def preempt(self, handle: str) -> None:
        pass

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        if self.down:
            return {}  # as the Slurm backend: no news while unreachable
        return {h: self.jobs.get(h, BackendJobStatus(h, BackendJobState.UNKNOWN))
                for h in handles}

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return ReconcileReport(known=self.poll(handles))

    def close(self) -> None:
        pass


def _loop(factory: sessionmaker[Session], tmp_path: Path, backends: dict[str, SelfScheduling],
          text: str) -> tuple[SchedulerLoop, ClusterRegistry, Settings]:
    settings = Settings(executor="slurm", data_dir=tmp_path,
                        clusters=str(_file(tmp_path, text)))
    registry = ClusterRegistry.from_settings(settings, backends=backends)  # type: ignore[arg-type]
    first = registry.backend(registry.default)
    return (SchedulerLoop(factory, first, settings=settings, clusters=registry),
            registry, settings)


def _submit(factory: sessionmaker[Session], settings: Settings, slug: str,
            **kw: object) -> int:
    from sqlalchemy import select

    from rechenwerk.access.models import Project, User

    with factory() as s:
        project = s.scalars(select(Project).where(Project.slug == slug)).one()
        user = s.get(User, project.pi_id) if hasattr(project, "pi_id") else None
        if user is None:
            user = s.scalars(select(User)).first()
        assert user is not None
        doc = {"name": "t", "project": slug, "command": ["true"], "gpus": 1,
               "walltime": "1h", **kw}
        job = service.submit(s, user, parse_spec(doc), clock=FakeClock(
            datetime.now().astimezone()), settings=settings)
        s.commit()
        return job.id


def _get(factory: sessionmaker[Session], job_id: int) -> Job:
    with factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _project(factory: sessionmaker[Session], *, award_cluster: str | None = None,
             gpu_type: str = "A100-80GB") -> str:
    with factory() as s:
        pi = make_user(s)
        project = make_project(s, pi=pi)
        award = make_award(s, project, gpu_type=gpu_type,
                           starts_at=datetime.now().astimezone() - timedelta(days=1))
        award.cluster = award_cluster
        s.commit()
        return project.slug


def test_loop_routes_by_start_respects_names_and_survives_an_outage(
        session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    busy, free = SelfScheduling(start_in_s=3600), SelfScheduling(start_in_s=0)
    loop, registry, settings = _loop(session_factory, tmp_path, {"a": busy, "b": free},
                                     "- name: a\n- name: b\n")
    slug = _project(session_factory)
    routed = _submit(session_factory, settings, slug)
    named = _submit(session_factory, settings, slug, cluster="a")
    loop.cycle()
    assert (_get(session_factory, routed).cluster, _get(session_factory, named).cluster) == (
        "b", "a")
    # b goes away: marked with the reason, a job named to it waits, the others go on
    free.down = "slurmctld unreachable (connection refused)"
    loop.probe_clusters(force=True)
    assert registry.status("b").reason == "slurmctld unreachable (connection refused)"
    waits = _submit(session_factory, settings, slug, cluster="b")
    elsewhere = _submit(session_factory, settings, slug)
    busy.finish("1")
    loop.cycle()
    assert _get(session_factory, named).state == "completed"
    assert _get(session_factory, elsewhere).cluster == "a"
    job = _get(session_factory, waits)
    assert job.state == "pending" and job.reason_code == "cluster"
    assert job.reason == ("cluster b is unavailable: slurmctld unreachable "
                          "(connection refused)")
    assert _get(session_factory, routed).state in {"starting", "pending", "running"}
    # back: found by the next cycle's probe, the waiting job goes, the routed one settles
    free.down = None
    free.finish("1")
    loop.cycle()
    assert registry.status("b").available
    assert _get(session_factory, waits).cluster == "b"
    assert _get(session_factory, routed).state == "completed"


def test_an_award_valid_on_one_cluster_routes_there(
        session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    a, b = SelfScheduling(start_in_s=0), SelfScheduling(start_in_s=3600)
    loop, _registry, settings = _loop(session_factory, tmp_path, {"a": a, "b": b},
                                      "- name: a\n- name: b\n")
    slug = _project(session_factory, award_cluster="b")
    job_id = _submit(session_factory, settings, slug)
    loop.cycle()
    assert _get(session_factory, job_id).cluster == "b"  # though it starts later there


def test_a_launch_on_a_cluster_that_went_away_is_routed_elsewhere(
        session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    a, b = SelfScheduling(start_in_s=0), SelfScheduling(start_in_s=3600)
    loop, registry, settings = _loop(session_factory, tmp_path, {"a": a, "b": b},
                                     "- name: a\n- name: b\n")
    slug = _project(session_factory)
    loop.probe_clusters()
    a.down = "gone"
    # its expected start fails: marked unavailable, the job goes to b at once
    job_id = _submit(session_factory, settings, slug)
    loop.cycle()
    assert not registry.available("a")
    assert _get(session_factory, job_id).cluster == "b"
    assert b.n == 1 and a.n == 0


# --------------------------------------------------------------------- the API


@pytest.fixture
def api_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("clusters") / "clusters.yaml"
    path.write_text(TWO)
    return {"executor": "slurm", "clusters": str(path)}


def test_api_lists_clusters_and_refuses_an_unknown_one(api_client: object,
                                                       session: Session) -> None:
    from factories import bearer, make_token

    client: Any = api_client
    pi = make_user(session)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi)
    make_award(session, project)
    pi_h, op_h = bearer(make_token(session, pi)), bearer(make_token(session, op))
    session.commit()
    r = client.get("/api/v1/clusters", headers=pi_h)
    assert r.status_code == 200, r.text
    assert r.json() == {"several": True, "items": [
        {"name": "alpha", "executor": "slurm", "gpu_types": ["A100-80GB"], "partitions": []},
        {"name": "beta", "executor": "slurm", "gpu_types": ["H100"], "partitions": []}]}
    ops = client.get("/api/v1/clusters", headers=op_h).json()["items"]
    assert [(c["available"], c["reason"], c["since"]) for c in ops] == [(True, None, None)] * 2
    spec = {"name": "t", "project": project.slug, "command": ["true"], "gpus": 1,
            "walltime": "1h"}
    r = client.post("/api/v1/jobs", json={**spec, "cluster": "gamma"}, headers=pi_h)
    assert r.status_code == 422 and "unknown cluster 'gamma'" in r.text
    r = client.post("/api/v1/jobs", json={**spec, "cluster": "alpha"}, headers=pi_h)
    assert r.status_code == 201, r.text
    assert (r.json()["requested_cluster"], r.json()["cluster"]) == ("alpha", None)


def test_an_award_may_be_valid_on_one_cluster(api_client: object, session: Session) -> None:
    from factories import bearer, make_token

    client: Any = api_client
    op = make_user(session, operator=True)
    project = make_project(session, pi=make_user(session))
    op_h = bearer(make_token(session, op))
    session.commit()
    body = {"project": project.slug, "gpu_type": "A100-80GB", "gpu_hours": 10.0,
            "starts_at": "2026-01-01T00:00:00Z"}
    r = client.post("/api/v1/awards", json={**body, "cluster": "gamma"}, headers=op_h)
    assert r.status_code == 422 and "unknown cluster 'gamma'" in r.text
    r = client.post("/api/v1/awards", json={**body, "cluster": "alpha"}, headers=op_h)
    assert r.status_code == 201, r.text
    assert r.json()["cluster"] == "alpha"
    r = client.post("/api/v1/awards", json=body, headers=op_h)
    assert r.status_code == 201 and r.json()["cluster"] is None


def test_readiness_lists_each_cluster_and_holds_while_one_answers(
        session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    from rechenwerk.api.health import _backend
    from rechenwerk.app import Runtime

    up, down = SelfScheduling(), SelfScheduling()
    down.down = "slurmctld unreachable (timeout)"
    settings = Settings(executor="slurm", data_dir=tmp_path,
                        clusters=str(_file(tmp_path, "- name: a\n- name: b\n")))
    runtime = Runtime(settings, session_factory=session_factory)
    runtime._clusters = ClusterRegistry.from_settings(  # type: ignore[arg-type]
        settings, backends={"a": up, "b": down})
    check = _backend(runtime)
    assert check["ok"] is True
    a, b = check["detail"].split("; ")
    assert a == "a: answers"
    assert b.startswith("b: unreachable: ") and "slurmctld unreachable (timeout)" in b
    assert not runtime.clusters.available("b")
    up.down = "gone"
    assert _backend(runtime)["ok"] is False

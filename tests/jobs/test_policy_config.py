"""Operator settings of the live scheduler: policy parameters (inline JSON or a YAML
file, also for `rechenwerk simulate --params`) and walltime limits per QOS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from jobs_fake_backend import FakeBackend
from sqlalchemy.orm import Session, sessionmaker

from factories import make_award, make_project
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.jobs import service
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.policy_config import describe, qos_limits, scheduler_params
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.scheduling.params import PolicyParams, params_from_mapping
from rechenwerk.store.session import session_scope


def test_params_mapping_names_the_bad_key() -> None:
    p = params_from_mapping({"weight_fairshare": 20000, "qos_priority": {"high": 2},
                             "las_thresholds_gpu_s": [10, 100], "checkpoint_interval_s": None},
                            source="p.yaml")
    assert p.weight_fairshare == 20000.0 and p.qos_priority == {"high": 2.0}
    assert p.las_thresholds_gpu_s == (10.0, 100.0) and p.checkpoint_interval_s is None
    with pytest.raises(InvalidInput, match=r"p.yaml: weight_fairshre: unknown") as e:
        params_from_mapping({"weight_fairshre": 1}, source="p.yaml")
    assert e.value.field == "weight_fairshre"
    with pytest.raises(InvalidInput, match=r"p.yaml: qos_priority.high: .*number"):
        params_from_mapping({"qos_priority": {"high": "top"}}, source="p.yaml")
    with pytest.raises(InvalidInput, match="bf_max_job_test"):
        params_from_mapping({"bf_max_job_test": 2.5}, source="p.yaml")
    with pytest.raises(InvalidInput, match="fairshare_half_life_s: must be > 0"):
        params_from_mapping({"fairshare_half_life_s": 0}, source="p.yaml")


def test_scheduler_params_inline_file_and_default(tmp_path: Path) -> None:
    assert scheduler_params(Settings(scheduler_params="")) == PolicyParams()
    inline = Settings(scheduler_params='{"fairshare_half_life_s": 86400}')
    assert scheduler_params(inline).fairshare_half_life_s == 86400.0
    f = tmp_path / "params.yaml"
    f.write_text("weight_age: 5\nbf_interval_s: 10\n")
    p = scheduler_params(Settings(scheduler_params=str(f)))
    assert (p.weight_age, p.bf_interval_s) == (5.0, 10.0)
    g = tmp_path / "list.yaml"
    g.write_text("- not a mapping\n")
    with pytest.raises(InvalidInput, match="must be a mapping"):
        scheduler_params(Settings(scheduler_params=str(g)))
    with pytest.raises(InvalidInput, match="cannot read scheduling parameters"):
        scheduler_params(Settings(scheduler_params=str(tmp_path / "missing.yaml")))
    with pytest.raises(InvalidInput, match="not valid YAML"):
        scheduler_params(Settings(scheduler_params='{"weight_age": '))


def test_qos_limits_override_and_errors() -> None:
    limits = qos_limits(Settings(qos_max_walltime={"high": "12h", "low": "7d"}))
    assert limits == {"high": 12 * 3600, "normal": 48 * 3600, "low": 7 * 86400}
    assert "high <= 12h" in describe(Settings(qos_max_walltime={"high": "12h"}))
    with pytest.raises(InvalidInput, match="unknown QOS 'urgent'"):
        qos_limits(Settings(qos_max_walltime={"urgent": "1h"}))
    with pytest.raises(InvalidInput, match=r"qos_max_walltime|high"):
        qos_limits(Settings(qos_max_walltime={"high": "soon"}))


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_submission_refused_above_the_configured_qos_limit(
        session: Session, clock: FakeClock, executor: str) -> None:
    from factories import make_user

    pi = make_user(session)
    project = make_project(session, pi=pi)
    make_award(session, project, gpu_hours=1000.0)
    settings = Settings(executor=executor, local_cluster="2x8:A100-80GB",  # type: ignore[arg-type]
                        qos_max_walltime={"high": "2h"})
    ok = service.submit(session, pi, parse_spec({
        "name": "a", "project": project.slug, "command": ["true"], "gpus": 1,
        "walltime": "2h", "qos": "high"}), clock=clock, settings=settings)
    assert ok.walltime_s == 7200
    with pytest.raises(InvalidInput, match=r"above the limit of QOS 'high' \(02:00:00\)") as e:
        service.submit(session, pi, parse_spec({
            "name": "b", "project": project.slug, "command": ["true"], "gpus": 1,
            "walltime": "3h", "qos": "high"}), clock=clock, settings=settings)
    assert e.value.field == "walltime"


def test_loop_decays_usage_with_the_configured_half_life(
        session_factory: sessionmaker[Session], clock: FakeClock, tmp_path: Path) -> None:
    with session_scope(session_factory) as s:
        from factories import make_user

        pi = make_user(s)
        project = make_project(s, pi=pi)
        make_award(s, project, gpu_hours=1000.0)
        ended = clock.now()
        settle_usage(s, project_id=project.id, gpus=10,
                     started_at=ended - timedelta(hours=1), ended_at=ended, now=ended,
                     external_id="slurm-1")
        pid = project.id
    clock.advance(86400)  # one day after the usage ended
    results = {}
    for days in (1, 7):
        settings = Settings(data_dir=tmp_path / f"var{days}", scheduler_policy="multifactor",
                            scheduler_params=f'{{"fairshare_half_life_s": {days * 86400}}}')
        loop = SchedulerLoop(session_factory, FakeBackend(), settings=settings, clock=clock)
        with session_scope(session_factory) as s:
            results[days] = loop.snapshots.project_infos(s, clock.now())[pid].usage_gpu_s
    with session_scope(session_factory) as s:
        from rechenwerk.accounting.models import UsageRecord

        settled_gpu_s = sum(r.gpu_hours for r in s.query(UsageRecord).all()) * 3600.0
    assert settled_gpu_s > 0
    assert results[1] == pytest.approx(settled_gpu_s * 0.5)  # one half-life old
    assert results[7] == pytest.approx(settled_gpu_s * 0.5 ** (1 / 7))

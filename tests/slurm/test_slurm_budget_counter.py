"""GrpTRESMins against Rechenwerk's ledger on the real daemons: Slurm counts used
GPU-minutes (since its counter started) plus running jobs' remaining reservations, for
every job under the account, Rechenwerk's or not; the sync's limit accounts for the runs
Slurm's counter no longer holds after it was reset (docs/slurm.md, "Award periods")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slurm_helpers import cli, rest_unix, sh, wait_until
from sqlalchemy.orm import Session, sessionmaker
from test_platform import USER, env  # noqa: F401 - fixture re-export

from factories import make_award
from rechenwerk.access.models import Award, Project
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.accounting.slurm_sync import DESCRIPTION_PREFIX, sync
from waiting import DEADLINE_S

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


def _account_limit(slug: str) -> str:
    """GrpTRESMins of the account's own association (the one without a user)."""
    rows = sh("sacctmgr", "-n", "-P", "show", "assoc", f"accounts={slug}",
              "format=User,GrpTRESMins").splitlines()
    return next(r.split("|", 1)[1] for r in rows if r.split("|", 1)[0] == "")


def _limit_and_tag(slug: str) -> tuple[str, str]:
    limit = _account_limit(slug)
    desc = sh("sacctmgr", "-n", "-P", "show", "account", slug, "format=Description").strip()
    return limit, desc


@pytest.mark.parametrize("kind", ["cli", "rest-unix"])
def test_a_reset_counter_does_not_give_the_award_twice(
    kind: str, env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    """An award added beside one that continues changes the active periods, so sync
    resets Slurm's counter (RawUsage=0): the Slurm runs already settled in the continuing
    period would be allowed again (the limit was the whole award). The limit is lowered
    by them, and the counter's start is kept in the Description so later syncs agree."""
    factory, slug, _ = env
    t = cli() if kind == "cli" else rest_unix()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    try:
        with factory() as s:
            sync(s, t, now=start, projects=[slug])  # the account's counter starts here
            s.commit()
            limit, desc = _limit_and_tag(slug)
            assert limit == "gres/gpu=6000"
            assert desc == f"{DESCRIPTION_PREFIX}" + desc.removeprefix(DESCRIPTION_PREFIX)
            assert desc.endswith(f"@{int(start.timestamp())}"), desc
            project = s.query(Project).filter_by(slug=slug).one()
            period = s.query(Award).filter_by(project_id=project.id).one().periods[0]
            # a Slurm run of 2 GPUs for an hour after the counter started: Slurm has it
            settle_usage(s, project_id=project.id, gpus=2, started_at=start + timedelta(hours=1),
                         ended_at=start + timedelta(hours=2), now=datetime.now(UTC),
                         source="slurm", external_id=f"slurm:test:{slug}",
                         award_period_id=period.id)
            s.commit()
            assert sync(s, t, now=datetime.now(UTC), projects=[slug]).changes == []
            # a second award beside it: the periods change, the counter is reset
            make_award(s, project, gpu_hours=50.0, starts_at=start - timedelta(days=1))
            s.commit()
            plan = sync(s, t, now=datetime.now(UTC), projects=[slug])
            s.commit()
            assert {c.action for c in plan.changes} == {"new_period", "set_limit"}
            # 150 GPU-hours awarded, 2 GPU-hours of them already used on Slurm
            assert _limit_and_tag(slug)[0] == f"gres/gpu={150 * 60 - 120}"
            assert sync(s, t, now=datetime.now(UTC), projects=[slug]).changes == []
    finally:
        t.close()


def test_slurm_counts_running_jobs_outside_rechenwerk(
    env: tuple[sessionmaker[Session], str, Path],  # noqa: F811
) -> None:
    """With the limit the sync sets, a job submitted to Slurm directly under the
    project's account cannot overspend: Slurm counts a running job's whole remaining
    reservation, so a second job that does not fit waits with AssocGrpGRESMinutes."""
    factory, slug, data = env
    with factory() as s:
        project = s.query(Project).filter_by(slug=slug).one()
        award = s.query(Award).filter_by(project_id=project.id).one()
        award.periods[0].gpu_hours = 0.1  # 6 GPU-minutes
        award.gpu_hours = 0.1
        s.commit()
        sync(s, cli(), now=datetime.now(UTC), projects=[slug])
        s.commit()
    assert _account_limit(slug) == "gres/gpu=6"

    def sbatch(minutes: int) -> str:
        return sh("runuser", "-u", USER, "--", "sbatch", "--parsable", f"--account={slug}",
                  "--gres=gpu:1", f"--time={minutes}", f"--chdir={data}",
                  f"--output={data}/slurm-%j.out", "--wrap", "sleep 300").strip()

    first = sbatch(5)  # 5 of 6 GPU-minutes
    wait_until(lambda: sh("squeue", "-h", f"--jobs={first}", "-o", "%T").strip() == "RUNNING",
               DEADLINE_S, "the first job to run")
    second = sbatch(2)  # 5 running + 2 > 6

    def held() -> bool:
        return sh("squeue", "-h", f"--jobs={second}", "-o", "%T %r").split() == [
            "PENDING", "AssocGrpGRESMinutes"]

    wait_until(held, DEADLINE_S, "the second job to wait for the budget")
    sh("scancel", first, second)

"""Pay-per-use accounts: integer money, the live EUR balance (settled + committed),
submission refused with the arithmetic, precedence of awards, settling once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import T0, make_award, make_project, make_user
from rechenwerk.access.accounts import create_account
from rechenwerk.access.models import PayPerUseAccount, Project, User
from rechenwerk.accounting import pay_per_use as ppu
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.errors import BudgetExceeded, InvalidInput
from rechenwerk.execution.base import BackendJobState, BackendJobStatus
from rechenwerk.jobs import progress as job_progress
from rechenwerk.jobs import service
from rechenwerk.jobs import transitions as job_transitions
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.jobs.states import JobState

SETTINGS = Settings(local_cluster="2x8:A100-80GB", overdraft_policy="refuse")


def _spec(project: str, **kw: object) -> object:
    doc = {
        "name": "t",
        "project": project,
        "command": ["true"],
        "gpus": 4,
        "walltime": "24h",
        "gpu_type": "A100-80GB",
    }
    doc.update(kw)
    return parse_spec(doc)


def _account(
    session: Session, limit: float = 25_000.0, prices: dict[str, float] | None = None
) -> tuple[User, Project, PayPerUseAccount]:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    op = make_user(session, operator=True)
    account = create_account(
        session,
        op,
        project=project,
        credit_limit_eur=limit,
        prices=prices or {"A100-80GB": 2.10},
        now=T0,
    )
    return pi, project, account


def _finish(session: Session, job: Job, hours: float, clock: FakeClock) -> None:
    start = clock.now()
    assert job_transitions.transition(
        session,
        job,
        JobState.STARTING,
        now=start,
        values={"attempt": 1, "backend_handle": "h", "placement": [["node01", [0, 1, 2, 3]]]},
    )
    assert job_progress.apply_backend_status(
        session, job, BackendJobStatus("h", BackendJobState.RUNNING, started_at=start), now=start
    )
    end = start + timedelta(hours=hours)
    assert job_progress.apply_backend_status(
        session,
        job,
        BackendJobStatus(
            "h", BackendJobState.COMPLETED, started_at=start, ended_at=end, exit_code=0
        ),
        now=end,
    )


def test_money_is_exact_integers() -> None:
    assert ppu.price_e4(2.10) == 21_000 and ppu.price_e4(0.1) == 1_000
    assert ppu.cents(25_000) == 2_500_000 and ppu.cents(0.29) == 29
    assert ppu.job_max_cents(4, 86_400, 21_000) == 20_160  # 4 x 24 h x 2.10 = 201.60
    # half up, once: 1 GPU x 1 s x 2.10 EUR/h = 0.0583 cents -> 0; 9 s -> 0.525 -> 1
    assert ppu.job_max_cents(1, 1, 21_000) == 0 and ppu.job_max_cents(1, 9, 21_000) == 1
    # 0.1 + 0.2 in floats is 0.30000000000000004; in cents it is 30
    assert ppu.cents(0.1) + ppu.cents(0.2) == ppu.cents(0.3)
    assert ppu.run_cents(3, T0, T0 + timedelta(minutes=20), 21_000) == 210
    assert ppu.eur(2_470_000) == "24,700.00" and ppu.eur_plain(-5) == "-0.05"
    assert ppu.price_text(21_000) == "2.10" and ppu.price_text(21_250) == "2.125"
    assert ppu.hours_text(5_400) == "1.5"
    assert ppu.parse_month("2026-12") == (T0.replace(month=12), T0.replace(year=2027))
    for bad in ("11/2026", "2026-13", "9999-12", "0-01", "2026-11-01"):
        with pytest.raises(InvalidInput) as exc:
            ppu.parse_month(bad)
        assert exc.value.field == "month"


def test_submission_commits_then_settles_once(session: Session, clock: FakeClock) -> None:
    pi, project, account = _account(session)
    job = service.submit(session, pi, _spec(project.slug), clock=clock, settings=SETTINGS)
    assert job.account_id == account.id and job.award_period_id is None
    assert job.price_e4_per_gpu_hour == 21_000
    bal = ppu.account_balance(session, account, clock.now())
    assert (bal.credit_limit_cents, bal.settled_cents, bal.committed_cents) == (
        2_500_000,
        0,
        20_160,
    )
    assert bal.remaining_cents == 2_500_000 - 20_160
    _finish(session, job, 1.5, clock)  # 4 GPUs x 1.5 h x 2.10 = 12.60
    bal = ppu.account_balance(session, account, clock.now())
    assert (bal.settled_cents, bal.committed_cents) == (1_260, 0)
    assert bal.to_dict()["remaining_eur"] == "24987.40"
    # the backend reports the end again (re-poll): nothing is charged twice
    assert not job_progress.apply_backend_status(
        session,
        job,
        BackendJobStatus(
            "h",
            BackendJobState.COMPLETED,
            started_at=clock.now(),
            ended_at=clock.now() + timedelta(hours=1.5),
            exit_code=0,
        ),
        now=clock.now() + timedelta(hours=2),
    )
    assert session.scalar(select(func.count(UsageRecord.id))) == 1
    assert ppu.account_balance(session, account, clock.now()).settled_cents == 1_260
    record = session.scalars(select(UsageRecord)).one()
    assert record.award_period_id is None and record.amount_cents == 1_260


def test_short_credit_is_refused_with_the_arithmetic(session: Session, clock: FakeClock) -> None:
    pi, project, account = _account(session, limit=350.0)
    service.submit(
        session, pi, _spec(project.slug, walltime="24h", gpus=4), clock=clock, settings=SETTINGS
    )  # commits 201.60
    with pytest.raises(BudgetExceeded) as exc:
        service.submit(session, pi, _spec(project.slug), clock=clock, settings=SETTINGS)
    assert exc.value.message == (
        "this job can cost up to 4 GPUs x 24 h x 2.10 EUR = 201.60 EUR; "
        f"account {account.id} ({project.slug}) has 148.40 EUR left (limit 350.00, "
        "settled 0.00, committed 201.60)"
    )
    with pytest.raises(BudgetExceeded, match=r"array of 3 tasks can cost up to 3 x"):
        service.submit(
            session,
            pi,
            _spec(project.slug, gpus=1, walltime="24h", array="0-2"),
            clock=clock,
            settings=SETTINGS,
        )
    assert session.scalar(select(func.count(Job.id))) == 1  # nothing of them stored


def test_gpu_type_without_price_is_refused(session: Session, clock: FakeClock) -> None:
    pi, project, _ = _account(session)
    with pytest.raises(InvalidInput, match="no price for GPU type 'H100-SXM'") as exc:
        service.submit(
            session, pi, _spec(project.slug, gpu_type="H100-SXM"), clock=clock, settings=SETTINGS
        )
    assert exc.value.field == "gpu_type" and "A100-80GB 2.10 EUR" in (exc.value.hint or "")
    with pytest.raises(InvalidInput, match="must name their gpu_type"):
        service.submit(
            session, pi, _spec(project.slug, gpu_type=None), clock=clock, settings=SETTINGS
        )


def test_an_award_with_hours_pays_first_then_the_account(
    session: Session, clock: FakeClock
) -> None:
    pi, project, account = _account(session)
    make_award(session, project, gpu_hours=100.0)
    first = service.submit(
        session, pi, _spec(project.slug, walltime="24h", gpus=4), clock=clock, settings=SETTINGS
    )  # 96 of 100 GPU-hours
    assert first.award_period_id is not None and first.account_id is None
    second = service.submit(
        session, pi, _spec(project.slug, walltime="2h", gpus=4), clock=clock, settings=SETTINGS
    )  # 8 > 4 left: the account
    assert second.award_period_id is None and second.account_id == account.id
    assert project_balance(session, project, clock.now()).committed_gpu_hours == 96
    assert ppu.account_balance(session, account, clock.now()).committed_cents == 1_680


def test_an_inactive_account_pays_nothing(session: Session, clock: FakeClock) -> None:
    pi, project, account = _account(session)
    account.is_active = False
    with pytest.raises(BudgetExceeded, match="has no award of GPU-hours"):
        service.submit(session, pi, _spec(project.slug), clock=clock, settings=SETTINGS)


def test_fair_share_counts_what_the_credit_buys(session: Session, clock: FakeClock) -> None:
    """A paying project is not ranked below every award by the fair-share factor: its
    share is the GPU-hours its credit limit buys at its dearest price."""
    from rechenwerk.jobs.snapshot import SnapshotBuilder

    _, project, account = _account(
        session, limit=2_800.0, prices={"A100-80GB": 1.60, "H100-SXM": 2.80}
    )
    awarded = make_project(session)
    make_award(session, awarded, gpu_hours=500.0)
    infos = SnapshotBuilder(None, clock, 86_400.0).project_infos(  # type: ignore[arg-type]
        session, clock.now()
    )
    assert infos[project.id].share == pytest.approx(1_000.0)  # 2,800 EUR / 2.80 EUR
    assert infos[awarded.id].share == pytest.approx(500.0)
    account.is_active = False
    session.flush()
    infos = SnapshotBuilder(None, clock, 86_400.0).project_infos(  # type: ignore[arg-type]
        session, clock.now()
    )
    assert project.id not in infos


def test_money_the_integers_cannot_hold_is_refused(session: Session) -> None:
    op = make_user(session, operator=True)
    project = make_project(session)
    with pytest.raises(InvalidInput, match="more than 4 decimals") as exc:
        create_account(
            session,
            op,
            project=project,
            credit_limit_eur=100.0,
            prices={"A100-80GB": 2.12345},
            now=T0,
        )
    assert exc.value.field == "prices.A100-80GB"
    with pytest.raises(InvalidInput, match="more than 2 decimals") as exc:
        create_account(
            session,
            op,
            project=project,
            credit_limit_eur=100.001,
            prices={"A100-80GB": 2.1234},
            now=T0,
        )
    assert exc.value.field == "credit_limit_eur"
    account = create_account(
        session, op, project=project, credit_limit_eur=1e6, prices={"A100-80GB": 2.1234}, now=T0
    )
    assert ppu.price_e4(account.prices[0].eur_per_gpu_hour) == 21_234


def test_slurm_limit_adds_what_the_credit_buys(session: Session, clock: FakeClock) -> None:
    """``rechenwerk slurm sync`` gives a paying project a Slurm account: its GPU-minute
    limit is what the credit (less charges of runs on other backends) buys at the
    cheapest price, on top of its awards' hours."""
    from rechenwerk.accounting.charging import settle_usage
    from rechenwerk.accounting.slurm_sync import desired_accounts

    pi, project, account = _account(
        session, limit=160.0, prices={"A100-80GB": 1.60, "H100-SXM": 2.80}
    )
    only_award = make_project(session)
    make_award(session, only_award, gpu_hours=10.0)
    wanted = {d.account: d for d in desired_accounts(session, now=clock.now())}
    assert wanted[project.slug].gpu_minutes == 100 * 60  # 160 EUR / 1.60 EUR
    assert pi.username in wanted[project.slug].missing_unix_users  # no Unix user here
    assert wanted[only_award.slug].gpu_minutes == 10 * 60
    # a local run charged 16.00 EUR: Slurm does not count it, so the limit drops by it
    settle_usage(
        session,
        project_id=project.id,
        gpus=4,
        started_at=T0,
        ended_at=T0 + timedelta(hours=2.5),
        now=T0,
        job_id=None,
        external_id="local-1",
        account_id=account.id,
        price_e4_per_gpu_hour=16_000,
    )
    make_award(session, project, gpu_hours=5.0)
    wanted = {d.account: d for d in desired_accounts(session, now=clock.now())}
    assert wanted[project.slug].gpu_minutes == 5 * 60 + 90 * 60
    account.is_active = False
    wanted = {d.account: d for d in desired_accounts(session, now=clock.now())}
    assert wanted[project.slug].gpu_minutes == 5 * 60

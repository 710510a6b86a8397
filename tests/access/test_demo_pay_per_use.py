"""The demo's company (alpenwerk-cfd: no award, a pay-per-use account) runs jobs: its
example spec is accepted and charged to the account."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from factories import T0
from rechenwerk.access.accounts import account_for_project
from rechenwerk.access.demo import load_demo
from rechenwerk.access.models import Project, User
from rechenwerk.accounting.pay_per_use import account_balance
from rechenwerk.clock import FakeClock
from rechenwerk.config import Settings
from rechenwerk.jobs import service
from rechenwerk.jobs.specs import parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cfd-pay-per-use.yaml"


def test_demo_company_runs_a_pay_per_use_job(session: Session, clock: FakeClock) -> None:
    load_demo(session, now=T0)
    sofia = session.scalars(select(User).where(User.username == "sofia")).one()
    project = session.scalars(select(Project).where(Project.slug == "alpenwerk-cfd")).one()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["workdir"] = str(EXAMPLE.parent)
    job = service.submit(session, sofia, parse_spec(doc), clock=clock, settings=Settings())
    account = account_for_project(session, project)
    assert account is not None and job.account_id == account.id
    bal = account_balance(session, account, clock.now())
    # 2 GPUs x 10 min x 1.60 EUR per GPU-hour = 0.53 EUR committed
    assert (bal.credit_limit_cents, bal.committed_cents) == (2_500_000, 53)

"""Keep Slurm's accounts, associations and GPU-minute limits in line with Rechenwerk.

Desired state, per project with an active award period:

* a Slurm account named like the project slug;
* one association per member (roles pi/member) whose Unix account exists on this host
  (jobs run as their user), plus any ``extra_users`` (e.g. the service account);
* ``GrpTRESMins=gres/gpu=<minutes>`` where minutes = 60 x (GPU-hours awarded in the
  active periods, incl. carry-over, minus GPU-hours settled there from other backends).
  Slurm counts GPU-minutes used on Slurm itself (usage never decays in the recommended
  configuration), so a job that would exceed the rest waits with
  ``AssocGrpGRESMinutes`` instead of overdrawing the award.

Projects whose award ended keep their account with a limit of 0 (nothing new starts).
Accounts Slurm has but Rechenwerk does not know are left alone. Every difference is a
:class:`Change`; those found on accounts that already exist are *drift* (made by hand
with sacctmgr, or an award/membership changed since the last sync). ``plan`` computes,
``apply`` executes through the Slurm transport (CLI: ``sacctmgr``; REST:
``/slurmdb/<format>/...``, per data format: ``rest_transport``). Running it twice
changes nothing the second time.
"""

from __future__ import annotations

import math
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import Award, PayPerUseAccount, Project, ProjectMembership, User
from rechenwerk.accounting.balance import project_balance
from rechenwerk.accounting.models import UsageRecord
from rechenwerk.accounting.pay_per_use import cents, price_e4
from rechenwerk.errors import InvalidInput
from rechenwerk.execution.slurm.types import SlurmAccount, SlurmTransport

# The Description of an account Rechenwerk manages records its active award periods.
DESCRIPTION_PREFIX = "rechenwerk:periods="
ORGANIZATION = "rechenwerk"


@dataclass(frozen=True, slots=True)
class DesiredAccount:
    account: str
    gpu_minutes: int
    users: frozenset[str]
    missing_unix_users: tuple[str, ...] = ()
    periods: str = ""  # ids of the active award periods, e.g. "12,13"
    # when Slurm's usage counter of the account started (created, or RawUsage=0); None:
    # not known (an account tagged before this was recorded)
    counted_since: datetime | None = None

    @property
    def tag(self) -> str:
        """What the Description records: ``12,13@<unix time of the counter's start>``."""
        since = self.counted_since
        return self.periods if since is None else f"{self.periods}@{int(since.timestamp())}"

    @property
    def description(self) -> str:
        return f"{DESCRIPTION_PREFIX}{self.tag}"


@dataclass(frozen=True, slots=True)
class SlurmAccountState:
    account: str
    gpu_minutes: int | None  # None: no limit set
    users: frozenset[str]
    periods: str | None = None  # from the Description Rechenwerk wrote; None: not ours
    counted_since: datetime | None = None  # the "@<unix time>" of that Description


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # add_account | set_limit | add_user | remove_user | new_period
    account: str
    user: str | None = None
    current: str | None = None
    desired: str | None = None
    drift: bool = False  # differs on an account that already exists
    periods: str = ""  # add_account: the active award periods to record

    def describe(self) -> str:
        what = {
            "add_account": f"create account {self.account} with GrpTRESMins=gres/gpu="
            f"{self.desired}",
            "set_limit": f"set {self.account} GrpTRESMins gres/gpu {self.current} -> "
            f"{self.desired}",
            "add_user": f"associate user {self.user} with {self.account}",
            "remove_user": f"remove user {self.user} from {self.account}",
            "new_period": f"award periods of {self.account} {self.current} -> {self.desired}: "
            "reset Slurm's GPU usage counter (RawUsage=0)",
        }[self.action]
        return ("drift: " if self.drift else "") + what

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "account": self.account,
            "user": self.user,
            "current": self.current,
            "desired": self.desired,
            "drift": self.drift,
            "description": self.describe(),
        }


@dataclass
class SyncPlan:
    changes: list[Change] = field(default_factory=list)
    desired: list[DesiredAccount] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def drift(self) -> list[Change]:
        return [c for c in self.changes if c.drift]

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.to_dict() for c in self.changes],
            "drift": len(self.drift),
            "accounts": [
                {
                    "account": d.account,
                    "gpu_minutes": d.gpu_minutes,
                    "gpu_hours": round(d.gpu_minutes / 60.0, 3),
                    "users": sorted(d.users),
                    "missing_unix_users": list(d.missing_unix_users),
                }
                for d in self.desired
            ],
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------- desired state
def _unix_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def desired_accounts(
    session: Session,
    *,
    now: datetime,
    extra_users: Iterable[str] = (),
    projects: Sequence[str] | None = None,
) -> list[DesiredAccount]:
    stmt = (
        select(Project)
        .where(
            Project.id.in_(select(Award.project_id).distinct())
            | Project.id.in_(select(PayPerUseAccount.project_id))
        )
        .order_by(Project.slug)
    )
    if projects:
        wanted = set(projects)
        known = set(session.scalars(select(Project.slug).where(Project.slug.in_(wanted))))
        if wanted - known:
            raise InvalidInput(
                f"unknown project(s): {', '.join(sorted(wanted - known))}",
                field="project",
                hint="Give project slugs as `rechenwerk project list` shows them.",
            )
        stmt = stmt.where(Project.slug.in_(list(projects)))
    out: list[DesiredAccount] = []
    extra = frozenset(extra_users)
    for project in session.scalars(stmt):
        balance = project_balance(session, project, now)
        period_ids = [p.award_period_id for p in balance.periods]
        other_backends = 0.0
        if period_ids:
            other_backends = float(
                session.scalar(
                    select(func.coalesce(func.sum(UsageRecord.gpu_hours), 0.0)).where(
                        UsageRecord.award_period_id.in_(period_ids),
                        UsageRecord.source != "slurm",
                    )
                )
                or 0.0
            )
        hours = max(0.0, balance.awarded_gpu_hours - other_backends) if balance.periods else 0.0
        minutes = math.floor(hours * 60.0 + 1e-9) + _pay_per_use_gpu_minutes(session, project)
        members = session.scalars(
            select(User.username)
            .join(ProjectMembership, ProjectMembership.user_id == User.id)
            .where(
                ProjectMembership.project_id == project.id,
                ProjectMembership.role.in_(["pi", "member"]),
                User.is_active.is_(True),
            )
        ).all()
        present = {u for u in members if _unix_user_exists(u)}
        missing = tuple(sorted(set(members) - present))
        out.append(
            DesiredAccount(
                account=project.slug,
                gpu_minutes=minutes,
                users=frozenset(present) | extra,
                missing_unix_users=missing,
                periods=",".join(str(i) for i in sorted(period_ids)),
            )
        )
    return out


def _pay_per_use_gpu_minutes(session: Session, project: Project) -> int:
    """GPU-minutes an active pay-per-use account adds to the Slurm limit: what its credit
    limit, less what runs on other backends were charged, buys at its cheapest price.
    A backstop only: the exact EUR check is Rechenwerk's at submission, and the cheapest
    price makes Slurm never refuse what that check accepted."""
    account = session.scalars(
        select(PayPerUseAccount).where(PayPerUseAccount.project_id == project.id)
    ).first()
    if account is None or not account.is_active:
        return 0
    prices = [e4 for e4 in (price_e4(p.eur_per_gpu_hour) for p in account.prices) if e4 > 0]
    if not prices:
        return 0
    other_backends = int(
        session.scalar(
            select(func.coalesce(func.sum(UsageRecord.amount_cents), 0)).where(
                UsageRecord.account_id == account.id, UsageRecord.source != "slurm"
            )
        )
        or 0
    )
    credit = max(0, cents(account.credit_limit_eur) - other_backends)
    return credit * 6000 // min(prices)  # cents x 100 / e4 = GPU-hours; x 60


# ---------------------------------------------------------------------- Slurm state
def account_state(acct: SlurmAccount) -> SlurmAccountState:
    tag = (
        acct.description.removeprefix(DESCRIPTION_PREFIX)
        if acct.description.startswith(DESCRIPTION_PREFIX)
        else None
    )
    since: datetime | None = None
    periods = tag
    if tag is not None and "@" in tag:
        periods, _, stamp = tag.partition("@")
        since = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
    return SlurmAccountState(acct.name, acct.gpu_minutes, acct.users, periods, since)


def uncounted_gpu_minutes(session: Session, period_ids: Sequence[int],
                          since: datetime) -> float:
    """GPU-minutes Rechenwerk settled from Slurm in these award periods that Slurm's
    usage counter no longer holds because it started at ``since`` (the account was
    created, or RawUsage was reset, after they ran): each run's part before ``since``."""
    if not period_ids:
        return 0.0
    rows = session.execute(
        select(UsageRecord.gpus, UsageRecord.started_at, UsageRecord.ended_at).where(
            UsageRecord.award_period_id.in_(list(period_ids)),
            UsageRecord.source == "slurm",
            UsageRecord.started_at < since,
        )
    ).all()
    return sum(gpus * max(0.0, (min(ended, since) - started).total_seconds())
               for gpus, started, ended in rows) / 60.0


def counted_from(session: Session, d: DesiredAccount, cur: SlurmAccountState | None, *,
                 now: datetime) -> DesiredAccount:
    """``d`` with the limit Slurm needs given where its usage counter starts. Slurm
    checks used (since the counter's start) + running jobs' remaining reservations +
    the new job against GrpTRESMins; the award counts every Slurm run of its periods.
    Runs from before the counter's start (it starts when sync creates the account or
    resets it for changed periods, e.g. an award added beside one that continues, or
    a new quarter synced after jobs already ran in it) would be allowed a second time,
    so the limit is lowered by them. The start is recorded in the Description."""
    since = now if cur is None or cur.periods != d.periods else cur.counted_since
    if since is None:  # tagged before the start was recorded: as before
        return d
    periods = [int(i) for i in d.periods.split(",") if i.isdigit()]
    lost = math.ceil(uncounted_gpu_minutes(session, periods, since) - 1e-9)
    return replace(d, gpu_minutes=max(0, d.gpu_minutes - lost), counted_since=since)


def slurm_accounts(
    transport: SlurmTransport, accounts: Iterable[str]
) -> dict[str, SlurmAccountState]:
    names = sorted(set(accounts))
    if not names:
        return {}
    return {name: account_state(a) for name, a in transport.accounts(names).items()}


# ---------------------------------------------------------------------- plan / apply
def plan(desired: Sequence[DesiredAccount], current: dict[str, SlurmAccountState]) -> SyncPlan:
    result = SyncPlan(desired=list(desired))
    for d in desired:
        for u in d.missing_unix_users:
            result.warnings.append(
                f"user {u} of project {d.account} has no Unix account here; "
                "create it (useradd) so they can run Slurm jobs"
            )
        cur = current.get(d.account)
        if cur is None:
            result.changes.append(
                Change("add_account", d.account, desired=str(d.gpu_minutes), periods=d.tag)
            )
            result.changes.extend(Change("add_user", d.account, user=u) for u in sorted(d.users))
            continue
        if cur.periods != d.periods:
            # A new award period: Slurm's usage counter starts again from zero (the old
            # period is settled in Rechenwerk by the import).
            result.changes.append(
                Change(
                    "new_period",
                    d.account,
                    current=cur.periods if cur.periods is not None else "not managed",
                    desired=d.tag,
                    drift=cur.periods is None,
                )
            )
        if cur.gpu_minutes != d.gpu_minutes:
            result.changes.append(
                Change(
                    "set_limit",
                    d.account,
                    current="none" if cur.gpu_minutes is None else str(cur.gpu_minutes),
                    desired=str(d.gpu_minutes),
                    drift=True,
                )
            )
        for u in sorted(d.users - cur.users):
            result.changes.append(Change("add_user", d.account, user=u, drift=True))
        for u in sorted(cur.users - d.users):
            result.changes.append(Change("remove_user", d.account, user=u, drift=True))
    return result


# Rechenwerk's QOS names and their Slurm priorities. Slurm normalises QOS priority by the
# highest one, so these give 1.0 / 0.5 / 0.0: PolicyParams.qos_priority's defaults.
QOS_PRIORITY: dict[str, int] = {"high": 1000, "normal": 500, "low": 0}


def ensure_qos(transport: SlurmTransport) -> None:
    """Create Rechenwerk's QOS levels in Slurm, or fix their priority."""
    have = transport.qos_priorities()
    for name, prio in QOS_PRIORITY.items():
        if have.get(name) != prio:
            transport.set_qos_priority(name, prio)


def apply(transport: SlurmTransport, p: SyncPlan) -> None:
    if any(c.action == "add_account" for c in p.changes):
        ensure_qos(transport)
    for c in p.changes:
        if c.action == "add_account":
            transport.add_account(
                c.account,
                description=f"{DESCRIPTION_PREFIX}{c.periods}",
                organization=ORGANIZATION,
                gpu_minutes=int(c.desired or 0),
                qos=sorted(QOS_PRIORITY),
                default_qos="normal",
            )
        elif c.action == "set_limit":
            transport.set_account_gpu_minutes(c.account, int(c.desired or 0))
        elif c.action == "new_period":
            transport.set_account_description(c.account, f"{DESCRIPTION_PREFIX}{c.desired}")
            transport.reset_account_usage(c.account)
        elif c.action == "add_user" and c.user:
            transport.add_user(c.user, c.account)
        elif c.action == "remove_user" and c.user:
            transport.remove_user(c.user, c.account)


def sync(
    session: Session,
    transport: SlurmTransport,
    *,
    now: datetime,
    dry_run: bool = False,
    extra_users: Iterable[str] = (),
    projects: Sequence[str] | None = None,
) -> SyncPlan:
    desired = desired_accounts(session, now=now, extra_users=extra_users, projects=projects)
    current = slurm_accounts(transport, (d.account for d in desired))
    desired = [counted_from(session, d, current.get(d.account), now=now) for d in desired]
    p = plan(desired, current)
    if not dry_run:
        apply(transport, p)
    return p

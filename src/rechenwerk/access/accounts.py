"""Pay-per-use accounts: a project pays per GPU-hour (a price per GPU type) up to a
credit limit instead of using awarded hours. Operators create and change them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.gpu_types import validate_gpu_type
from rechenwerk.access.models import PayPerUseAccount, PayPerUsePrice, Project, User
from rechenwerk.access.paging import Page, paginate
from rechenwerk.access.projects import get_project, visible_project
from rechenwerk.access.security import require_operator
from rechenwerk.access.validation import check_positive, ref_is_id
from rechenwerk.access.visibility import can_see_project, filter_id, only_visible
from rechenwerk.errors import Conflict, InvalidInput, NotFound


def _check_places(value: float, places: int, field: str, what: str) -> None:
    """Money is charged in integers (accounting/pay_per_use.py): refuse what they cannot
    hold exactly instead of rounding it silently."""
    exponent = Decimal(repr(float(value))).as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise InvalidInput(f"{field} has more than {places} decimals ({value})", field=field,
                           hint=f"Give {what} to at most {places} decimals.")


def _check_prices(prices: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for gpu_type, price in prices.items():
        name = validate_gpu_type(gpu_type, field=f"prices.{gpu_type}")
        check_positive(price, f"prices.{gpu_type}", allow_zero=True)
        _check_places(price, 4, f"prices.{gpu_type}", "prices (EUR per GPU-hour)")
        out[name] = float(price)
    return out


def create_account(
    session: Session, actor: User, *, project: Project, credit_limit_eur: float,
    prices: Mapping[str, float], now: datetime,
) -> PayPerUseAccount:
    require_operator(actor)
    check_positive(credit_limit_eur, "credit_limit_eur", allow_zero=True)
    _check_places(credit_limit_eur, 2, "credit_limit_eur", "the credit limit (EUR)")
    checked = _check_prices(prices)
    if not checked:
        raise InvalidInput("at least one price per GPU type is required", field="prices",
                           hint='e.g. {"H100": 2.5} (EUR per GPU-hour).')
    existing = session.scalars(
        select(PayPerUseAccount).where(PayPerUseAccount.project_id == project.id)).first()
    if existing is not None:
        raise Conflict(f"project {project.slug!r} already has a pay-per-use account "
                       f"({existing.id})", field="project", hint="Update that account.")
    account = PayPerUseAccount(project_id=project.id, project=project,
                               credit_limit_eur=float(credit_limit_eur), is_active=True,
                               created_at=now)
    account.prices = [PayPerUsePrice(gpu_type=g, eur_per_gpu_hour=p)
                      for g, p in sorted(checked.items())]
    session.add(account)
    session.flush()
    record(session, actor, "account.create", "account", account.id,
           {"project": project.slug, "credit_limit_eur": account.credit_limit_eur,
            "prices": checked}, at=now)
    return account


def update_account(
    session: Session, actor: User, account: PayPerUseAccount, *, now: datetime,
    credit_limit_eur: float | None = None, prices: Mapping[str, float] | None = None,
    is_active: bool | None = None,
) -> PayPerUseAccount:
    require_operator(actor)
    # Validate everything before changing anything.
    if credit_limit_eur is not None:
        check_positive(credit_limit_eur, "credit_limit_eur", allow_zero=True)
        _check_places(credit_limit_eur, 2, "credit_limit_eur", "the credit limit (EUR)")
    checked = _check_prices(prices) if prices is not None else None
    changes: dict[str, Any] = {}
    if credit_limit_eur is not None:
        changes["credit_limit_eur"] = [account.credit_limit_eur, float(credit_limit_eur)]
        account.credit_limit_eur = float(credit_limit_eur)
    if checked is not None:
        old = {p.gpu_type: p.eur_per_gpu_hour for p in account.prices}
        by_type = {p.gpu_type: p for p in account.prices}
        for g, price in checked.items():
            if g in by_type:
                by_type[g].eur_per_gpu_hour = price
            else:
                account.prices.append(PayPerUsePrice(gpu_type=g, eur_per_gpu_hour=price))
        changes["prices"] = [old, {**old, **checked}]
    if is_active is not None:
        changes["is_active"] = [account.is_active, is_active]
        account.is_active = is_active
    session.flush()
    record(session, actor, "account.update", "account", account.id, changes, at=now)
    return account


def visible_account(session: Session, user: User, account_id: int) -> PayPerUseAccount:
    account = session.get(PayPerUseAccount, account_id)
    if account is None or not can_see_project(session, user, account.project_id):
        raise NotFound(f"pay-per-use account {account_id} not found", field="account")
    return account


def account_for_project(session: Session, project: Project) -> PayPerUseAccount | None:
    return session.scalars(
        select(PayPerUseAccount).where(PayPerUseAccount.project_id == project.id)).first()


def list_accounts(session: Session, user: User, *, project: str | int | None = None,
                  limit: int = 50, offset: int = 0) -> Page[PayPerUseAccount]:
    stmt = only_visible(select(PayPerUseAccount).order_by(PayPerUseAccount.id),
                        PayPerUseAccount.project_id, session, user)
    if project is not None:
        pid = filter_id(session, user, get_project, project)
        stmt = stmt.where(PayPerUseAccount.project_id == pid)
    return paginate(session, stmt, limit, offset)


def resolve_account(session: Session, user: User, ref: str) -> PayPerUseAccount:
    """An account the user may see by its id or by its project's slug (CLI, API)."""
    account_id = ref_is_id(ref)
    if account_id is not None:
        return visible_account(session, user, account_id)
    account = account_for_project(session, visible_project(session, user, ref))
    if account is None:
        raise NotFound(f"project {ref!r} has no pay-per-use account", field="account",
                       hint="List accounts with `rechenwerk account list`.")
    return account

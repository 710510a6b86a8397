"""Pay-per-use account page: the live EUR balance, prices, and the monthly statement
with CSV and PDF downloads and a print view. Who may see an account is the project's
visibility rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.accounts import visible_account
from rechenwerk.access.models import User
from rechenwerk.accounting import pay_per_use as ppu
from rechenwerk.api.deps import get_now, get_session
from rechenwerk.errors import NotFound
from rechenwerk.jobs.statements import Statement, account_statement
from rechenwerk.web.deps import portal_user
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _months(month: str) -> tuple[str, str]:
    """The months before and after ``month`` (``YYYY-MM``), for the page's links."""
    start, end = ppu.parse_month(month)
    year, mon = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    return f"{year:04d}-{mon:02d}", f"{end:%Y-%m}"


def _context(
    db: Session, user: User, account_id: int, month: str | None, now: datetime
) -> dict[str, Any]:
    account = visible_account(db, user, account_id)
    month = month or f"{now:%Y-%m}"
    statement = account_statement(db, account, month)
    previous, following = _months(statement.month)
    prices = [
        (p.gpu_type, ppu.price_text(ppu.price_e4(p.eur_per_gpu_hour))) for p in account.prices
    ]
    return {
        "title": f"account {account.id}",
        "section": "dashboard",
        "account": account,
        "balance": ppu.account_balance(db, account, now),
        "prices": prices,
        "st": statement,
        "previous": previous,
        "following": following,
        "eur": ppu.eur,
        "now": now,
    }


@router.get("/accounts/{account_id}")
def account_page(
    request: Request,
    account_id: int,
    month: str | None = None,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    return render(request, "accounts/detail.html", _context(db, user, account_id, month, now))


@router.get("/accounts/{account_id}/statement/print")
def statement_print(
    request: Request,
    account_id: int,
    month: str | None = None,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    return render(
        request, "accounts/statement_print.html", _context(db, user, account_id, month, now)
    )


def _csv(statement: Statement) -> bytes:
    return statement.to_csv().encode()


def _pdf(statement: Statement) -> bytes:
    from rechenwerk.jobs.statement_pdf import statement_pdf  # only when one is asked for

    return statement_pdf(statement)


# The downloads of a month's statement: file suffix -> media type and how it is written.
_DOWNLOADS: dict[str, tuple[str, Callable[[Statement], bytes]]] = {
    "csv": ("text/csv; charset=utf-8", _csv),
    "pdf": ("application/pdf", _pdf),
}


@router.get("/accounts/{account_id}/statement.{suffix}")
def statement_download(
    account_id: int,
    suffix: str,
    month: str | None = None,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    if suffix not in _DOWNLOADS:
        raise NotFound(f"no statement download as .{suffix[:16]}",
                       hint="Download the statement as .csv or .pdf.")
    account = visible_account(db, user, account_id)
    statement = account_statement(db, account, month or f"{now:%Y-%m}")
    media_type, write = _DOWNLOADS[suffix]
    name = f"statement-{statement.project}-{statement.month}.{suffix}"
    return Response(write(statement), media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

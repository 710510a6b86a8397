"""Pay-per-use account page: the live EUR balance, prices, and the monthly statement
with a CSV download and a print view (print it to PDF from the browser: no PDF library
is a dependency). Who may see an account is the project's visibility rule."""

from __future__ import annotations

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


@router.get("/accounts/{account_id}/statement.csv")
def statement_csv(
    account_id: int,
    month: str | None = None,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    account = visible_account(db, user, account_id)
    statement: Statement = account_statement(db, account, month or f"{now:%Y-%m}")
    name = f"statement-{statement.project}-{statement.month}.csv"
    return Response(
        statement.to_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/accounts/{account_id}/statement.pdf")
def statement_pdf_download(
    account_id: int,
    month: str | None = None,
    user: User = Depends(portal_user),
    db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    from rechenwerk.jobs.statement_pdf import statement_pdf

    account = visible_account(db, user, account_id)
    statement: Statement = account_statement(db, account, month or f"{now:%Y-%m}")
    name = f"statement-{statement.project}-{statement.month}.pdf"
    return Response(statement_pdf(statement), media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

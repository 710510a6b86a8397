"""The user's settings: notification preferences and the notifications sent to them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from rechenwerk.access.models import User
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.notifications import service as notifications
from rechenwerk.web.deps import form_data, operator_user, portal_user
from rechenwerk.web.forms import FormErrors, checkbox, errors_from, number
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import set_flash

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _page(request: Request, db: Session, user: User, form: dict[str, str],
          errors: FormErrors, status_code: int = 200) -> Response:
    cfg = settings_of(request)
    return render(request, "settings.html", {
        "title": "Settings", "section": "settings", "form": form, "errors": errors,
        "messages": notifications.recent_for_user(db, user),
        "transport": f"SMTP via {cfg.smtp_host}:{cfg.smtp_port}" if cfg.smtp_host
        else "log only (the centre has not configured an SMTP server)",
    }, status_code=status_code)


@router.get("/settings")
def settings_page(
    request: Request, user: User = Depends(portal_user), db: Session = Depends(get_session),
) -> Response:
    pref = notifications.get_preferences(db, user)
    form = {"job_finished": "on" if pref.job_finished else "",
            "job_failed": "on" if pref.job_failed else "",
            "low_balance_percent": str(pref.low_balance_percent)}
    return _page(request, db, user, form, FormErrors())


@router.get("/ops/notifications")
def outbox_page(
    request: Request, status: str = "", user: User = Depends(operator_user),
    db: Session = Depends(get_session),
) -> Response:
    cfg = settings_of(request)
    return render(request, "ops/outbox.html", {
        "title": "Notifications", "section": "outbox", "status": status,
        "statuses": notifications.OUTBOX_STATUSES,
        "messages": notifications.list_outbox(db, user, status=status),
        "transport": f"SMTP via {cfg.smtp_host}:{cfg.smtp_port}" if cfg.smtp_host
        else "log only (RECHENWERK_SMTP_HOST is not set)",
    })


@router.post("/ops/notifications/{message_id}/requeue")
def outbox_requeue(
    request: Request, message_id: int, user: User = Depends(operator_user),
    db: Session = Depends(get_session), now: Any = Depends(get_now),
) -> Response:
    msg = notifications.requeue(db, user, message_id, now=now)
    response = RedirectResponse("/ops/notifications", status_code=303)
    set_flash(response, settings_of(request), "success",
              f"Notification {msg.id} to {msg.to_address} queued again.")
    return response


@router.post("/settings")
def settings_save(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = FormErrors()
    percent = number(form, "low_balance_percent", errors, label="Low-balance warning",
                     integer=True)
    if not errors:
        try:
            notifications.set_preferences(
                db, user, job_finished=checkbox(form, "job_finished"),
                job_failed=checkbox(form, "job_failed"), low_balance_percent=int(percent),
                now=now)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc)
    if errors:
        return _page(request, db, user, form, errors, 422)
    response = RedirectResponse("/settings", status_code=303)
    set_flash(response, settings_of(request), "success", "Notification settings saved.")
    return response

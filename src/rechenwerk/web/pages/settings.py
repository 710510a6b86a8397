"""The user's settings: notification preferences, the notifications sent to them, and
changing one's own portal password (which ends the user's other sessions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.access.security import login_with_password
from rechenwerk.access.users import set_password
from rechenwerk.api.deps import get_now, get_session, settings_of
from rechenwerk.errors import RechenwerkError, Unauthenticated
from rechenwerk.notifications import service as notifications
from rechenwerk.web.deps import form_data, operator_user, portal_user
from rechenwerk.web.forms import FormErrors, checkbox, errors_from, number
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect, start_user_session

router = APIRouter(route_class=PortalRoute, include_in_schema=False)


def _page(request: Request, db: Session, user: User, form: dict[str, str],
          errors: FormErrors, status_code: int = 200,
          pw_errors: FormErrors | None = None) -> Response:
    cfg = settings_of(request)
    return render(request, "settings.html", {
        "title": "Settings", "section": "settings", "form": form, "errors": errors,
        "pw_errors": pw_errors or FormErrors(),
        "messages": notifications.recent_for_user(db, user),
        "transport": f"SMTP via {cfg.smtp_host}:{cfg.smtp_port}" if cfg.smtp_host
        else "log only (the centre has not configured an SMTP server)",
    }, status_code=status_code)


@router.get("/settings")
def settings_page(
    request: Request, user: User = Depends(portal_user), db: Session = Depends(get_session),
) -> Response:
    return _page(request, db, user, _notification_form(db, user), FormErrors())


def _notification_form(db: Session, user: User) -> dict[str, str]:
    pref = notifications.get_preferences(db, user)
    return {"job_finished": "on" if pref.job_finished else "",
            "job_failed": "on" if pref.job_failed else "",
            "low_balance_percent": str(pref.low_balance_percent)}


@router.post("/settings/password")
def password_change(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(portal_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    """Change one's own password: the current one is checked (throttled like a login),
    every session of the user ends (other browsers, copied cookies) and this browser
    gets a new one."""
    errors = FormErrors()
    new = form.get("new_password", "")
    if new != form.get("new_password_repeat", ""):
        errors.add("new_password_repeat", "The two new passwords differ")
    if not errors:
        try:
            login_with_password(db, user.username, form.get("current_password", ""),
                                now=now, source="portal-password-change",
                                address=request.client.host if request.client else None)
        except Unauthenticated as exc:
            message = ("Wrong current password" if exc.http_status == 401
                       else exc.message[:1].upper() + exc.message[1:])
            errors.add("current_password", message)
    if not errors:
        try:
            set_password(db, user, user, new, now=now)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, {"password": "new_password"},
                                 fields={"new_password"})
    if errors:
        # The "login.failed" audit entry of a wrong password is kept (committed).
        return _page(request, db, user, _notification_form(db, user), FormErrors(), 422,
                     pw_errors=errors)
    start_user_session(request, db, user)  # this browser only; the others are ended
    return flash_redirect(request, "/settings",
                          "Password changed: every other session of yours has ended.")


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
    return flash_redirect(request, "/ops/notifications",
                          f"Notification {msg.id} to {msg.to_address} queued again.")


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
    return flash_redirect(request, "/settings",
                          "Notification settings saved.")

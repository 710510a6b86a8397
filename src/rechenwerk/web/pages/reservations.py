"""Advance reservations in the portal: everyone sees the ones that concern them (their
projects' and maintenance windows, as ``GET /api/v1/reservations``); operators create and
delete them here. The rules are ``jobs/reservations.py``'s."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from rechenwerk.access.models import User
from rechenwerk.api.deps import backend_of, get_now, get_session, inventory_of
from rechenwerk.errors import RechenwerkError
from rechenwerk.jobs import reservations
from rechenwerk.web.deps import form_data, operator_user, portal_user
from rechenwerk.web.forms import FormErrors, checkbox, errors_from, moment, number, text
from rechenwerk.web.rendering import render
from rechenwerk.web.routing import PortalRoute
from rechenwerk.web.session import flash_redirect

router = APIRouter(route_class=PortalRoute, include_in_schema=False)
FIELDS = {"name", "start", "end", "projects", "gpus", "gpu_type", "nodes"}


def _page(request: Request, db: Session, user: User, now: Any, *,
          form: dict[str, str] | None = None, errors: FormErrors | None = None,
          status_code: int = 200) -> Response:
    return render(request, "reservations.html", {
        "title": "Reservations", "section": "reservations",
        "items": reservations.visible(db, user, now), "form": form or {},
        "errors": errors or FormErrors(), "now": now,
    }, status_code=status_code)


@router.get("/reservations")
def reservations_page(request: Request, user: User = Depends(portal_user),
                      db: Session = Depends(get_session), now: Any = Depends(get_now),
                      ) -> Response:
    return _page(request, db, user, now)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(p for p in raw.replace(",", " ").split() if p)


@router.post("/reservations")
def reservation_create(
    request: Request, form: dict[str, str] = Depends(form_data),
    user: User = Depends(operator_user), db: Session = Depends(get_session),
    now: Any = Depends(get_now),
) -> Response:
    errors = FormErrors()
    start = moment(form, "start", errors, label="Start")
    end = moment(form, "end", errors, label="End")
    gpus = number(form, "gpus", errors, label="GPUs", required=False, integer=True,
                  minimum=1)
    rec = None
    if not errors and start is not None and end is not None:
        from rechenwerk.jobs.slurm_reservations import inventory_for_reservations

        try:
            rec = reservations.create(db, reservations.ReservationRequest(
                name=text(form, "name"), starts_at=start, ends_at=end,
                projects=_names(text(form, "projects")),
                maintenance=checkbox(form, "maintenance"),
                gpus=int(gpus) if gpus is not None else None,
                gpu_type=text(form, "gpu_type") or None, nodes=_names(text(form, "nodes"))),
                inventory=inventory_of(request) or inventory_for_reservations(
                    backend_of(request)), now=now, by=user.username)
        except RechenwerkError as exc:
            db.rollback()
            errors = errors_from(exc, fields=FIELDS)
    if errors or rec is None:
        return _page(request, db, user, now, form=form, errors=errors, status_code=422)
    return flash_redirect(request, "/reservations",
                          f"Reservation {rec.name!r} created.")


@router.post("/reservations/{name}/delete")
def reservation_delete(request: Request, name: str, user: User = Depends(operator_user),
                       db: Session = Depends(get_session)) -> Response:
    reservations.delete(db, name)
    return flash_redirect(request, "/reservations",
                          f"Reservation {name!r} deleted.")

"""The Notebooks start form turns the session request's own validation into words beside
each field (through web/forms.errors_from), keeping the input."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_award, make_project, make_user
from portal_login import csrf as _csrf
from portal_login import login
from portal_login import password_hash as _hash
from rechenwerk.jobs.models import Job
from rechenwerk.web.forms import FORM_KEY, errors_from


def test_too_many_gpus_is_reported_beside_the_field(api_client: Any, session: Session) -> None:
    pi = make_user(session, username="pia", password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    make_award(session, project, gpu_hours=100.0)
    session.commit()
    login(api_client, "pia")
    form = api_client.get("/sessions").text
    r = api_client.post("/sessions", data={
        "project": "alpha", "gpus": "100001", "walltime": "2h", "qos": "normal",
        "csrf_token": _csrf(form)})
    assert r.status_code == 422, r.text
    m = re.search(r'data-testid="error-gpus">([^<]*)<', r.text)
    assert m and "less than or equal" in m.group(1), r.text
    assert 'value="100001"' in r.text  # the input is kept
    assert session.scalar(select(func.count()).select_from(Job)) == 0


class _Model(BaseModel):
    gpus: int = Field(ge=1)
    name: str = Field(min_length=1)


def test_validation_errors_map_to_fields_or_the_form() -> None:
    try:
        _Model.model_validate({"gpus": 0, "name": ""})
    except ValidationError as exc:
        errors = errors_from(exc, fields={"gpus"})
    assert set(errors) == {"gpus", FORM_KEY}
    assert "greater than or equal to 1" in errors["gpus"]
    assert errors[FORM_KEY].startswith("name: ")  # a field the form does not show

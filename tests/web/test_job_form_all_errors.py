"""The job form reports every mistake in one round, in words next to its field (it took
three round trips for four mistakes, and the name's error was a regular expression)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_award, make_project, make_user
from portal_login import PASSWORD
from portal_login import csrf as _csrf
from portal_login import password_hash as _hash
from rechenwerk.jobs.models import Job


def _error(html: str, name: str) -> str:
    m = re.search(rf'data-testid="error-{re.escape(name)}">([^<]*)<', html)
    return m.group(1) if m else ""


def test_four_mistakes_come_back_at_once_in_words(api_client: Any, session: Session) -> None:
    pi = make_user(session, username="pia", password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    make_award(session, project, gpu_hours=100.0)
    session.commit()
    page = api_client.get("/login")
    api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                    "csrf_token": _csrf(page.text)})
    form = api_client.get("/jobs/new?project=alpha").text
    r = api_client.post("/jobs/new", data={
        "name": "my run!", "project": "alpha", "kind": "command", "command": "python3 t.py",
        "gpus": "four", "walltime": "ten minutes", "qos": "normal",
        "env": "NOEQUALS", "csrf_token": _csrf(form)})
    assert r.status_code == 422
    html = r.text
    assert "is not a valid job name" in _error(html, "name") and "^[" not in html
    assert "whole number" in _error(html, "gpus")
    assert "not a duration" in _error(html, "walltime")
    assert "KEY=VALUE" in _error(html, "env")
    assert 'value="my run!"' in html  # input kept
    assert session.scalar(select(func.count()).select_from(Job)) == 0
    # The page puts the focus on the first field in error (not on <body>): only the
    # fields in error are autofocus, the browser takes the first; the summary is not.
    autofocus = re.findall(r'<(?:input|select|textarea) id="([^"]+)"[^>]*\bautofocus\b', html)
    assert autofocus == ["f-name", "f-gpus", "f-walltime", "f-env"]
    summary = re.search(r'<div[^>]*data-testid="form-errors"[^>]*>', html)
    assert summary and "autofocus" not in summary.group(0)
    assert 'tabindex="-1"' in summary.group(0)


def test_a_form_wide_error_puts_the_focus_on_the_summary() -> None:
    from rechenwerk.web.forms import FormErrors
    from rechenwerk.web.rendering import environment

    macros = environment().get_template("partials/macros.html").module
    html = str(macros.form_errors(FormErrors({"_form": "The call closed yesterday."})))
    assert "autofocus" in html and "The call closed yesterday." in html
    html = str(macros.form_errors(FormErrors({"_form": "x", "title": "Title is required"})))
    assert "autofocus" not in html  # the field in error takes the focus


def test_the_qos_walltime_limit_comes_with_the_other_mistakes(api_client: Any,
                                                              session: Session) -> None:
    """A walltime above the QOS limit is a centre check (not the spec's): it comes back in
    the same round as a missing command or a field that did not convert."""
    pi = make_user(session, username="pia", password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    make_award(session, project, gpu_hours=100.0)
    session.commit()
    page = api_client.get("/login")
    api_client.post("/login", data={"username": "pia", "password": PASSWORD,
                                    "csrf_token": _csrf(page.text)})
    base = {"name": "long", "project": "alpha", "kind": "command", "gpus": "1",
            "walltime": "3d", "qos": "high"}
    # the spec refuses (no command): the walltime is still checked against the QOS
    form = api_client.get("/jobs/new?project=alpha").text
    r = api_client.post("/jobs/new", data={**base, "command": "", "csrf_token": _csrf(form)})
    assert r.status_code == 422
    assert "give exactly one of &#39;command&#39; or &#39;script&#39;" in _error(r.text, "_form")
    assert "walltime 3-00:00:00 is above the limit of QOS &#39;high&#39; (1-00:00:00)" in _error(
        r.text, "walltime")
    assert 'aria-invalid="true" aria-describedby="err-walltime"' in r.text
    # a field that did not convert: the parsed spec is checked against the centre too
    r = api_client.post("/jobs/new", data={**base, "command": "python3 t.py",
                                           "nodes": "two", "csrf_token": _csrf(form)})
    assert r.status_code == 422
    assert "whole number" in _error(r.text, "nodes")
    assert "above the limit of QOS" in _error(r.text, "walltime")
    assert 'value="3d"' in r.text  # input kept
    assert session.scalar(select(func.count()).select_from(Job)) == 0

"""The pay-per-use account page (balance, monthly statement, CSV download, print view)
through the ASGI app, on SQLite and PostgreSQL; strangers get a 404."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from factories import T0, make_org, make_project, make_user
from portal_login import PASSWORD
from portal_login import login as _login
from rechenwerk.access.accounts import create_account
from rechenwerk.access.security import hash_password
from rechenwerk.accounting.charging import settle_usage
from rechenwerk.jobs.models import Job


def _testid(html: str, name: str) -> str:
    m = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert m, f"no {name} on the page"
    return m.group(1)


def test_account_page_statement_csv_and_print(api_client: Any, session: Session) -> None:
    sme = make_org(session, kind="enterprise")
    hashed = hash_password(PASSWORD)
    pi = make_user(session, username="sofi", org=sme, password_hash=hashed)
    make_user(session, username="nosy", org=sme, password_hash=hashed)
    op = make_user(session, operator=True)
    project = make_project(session, pi=pi, slug="acme")
    account = create_account(
        session, op, project=project, credit_limit_eur=25_000, prices={"A100-80GB": 1.60}, now=T0
    )
    job = Job(
        project_id=project.id,
        user_id=pi.id,
        name="cfd-sweep",
        spec={},
        state="completed",
        qos="normal",
        requested_qos="normal",
        over_budget=False,
        gpus=8,
        walltime_s=7200,
        attempt=1,
        attained_gpu_s=0.0,
        submitted_at=T0,
        started_at=T0,
        ended_at=T0 + timedelta(hours=2),
        updated_at=T0,
        gpu_type="A100-80GB",
        account_id=account.id,
        price_e4_per_gpu_hour=16_000,
    )
    session.add(job)
    session.flush()
    settle_usage(
        session,
        project_id=project.id,
        gpus=8,
        started_at=T0,
        ended_at=T0 + timedelta(hours=2),
        now=T0,
        job_id=job.id,
        attempt=1,
        gpu_type="A100-80GB",
        account_id=account.id,
        price_e4_per_gpu_hour=16_000,
    )
    session.commit()

    _login(api_client, "sofi")
    project_page = api_client.get("/projects/acme")
    assert project_page.status_code == 200
    assert f'href="/accounts/{account.id}"' in project_page.text
    assert 'data-testid="charged-to-account"' in project_page.text

    job_page = api_client.get(f"/jobs/{job.id}")
    assert job_page.status_code == 200, job_page.text
    assert 'data-testid="job-account"' in job_page.text
    assert (
        f"pay-per-use account {account.id}</a> at 1.60 EUR per GPU-hour (this run may "
        "cost up to 25.60 EUR)" in job_page.text
    )
    assert "credit limit 25,000.00 EUR" in project_page.text

    page = api_client.get(f"/accounts/{account.id}", params={"month": "2026-01"})
    assert page.status_code == 200, page.text
    assert _testid(page.text, "settled") == "25.60"  # 8 GPUs x 2 h x 1.60
    assert _testid(page.text, "remaining") == "24,974.40"
    assert _testid(page.text, "opening") == "25,000.00"
    assert _testid(page.text, "total") == "25.60"
    assert _testid(page.text, "closing") == "24,974.40"
    assert "cfd-sweep" in page.text and "sofi" in page.text
    assert (
        "No run was charged in 2025-12"
        in api_client.get(f"/accounts/{account.id}", params={"month": "2025-12"}).text
    )

    r = api_client.get(f"/accounts/{account.id}/statement.csv", params={"month": "2026-01"})
    assert r.status_code == 200 and "statement-acme-2026-01.csv" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[1] == [
        str(job.id),
        "cfd-sweep",
        "sofi",
        "A100-80GB",
        "8",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T02:00:00+00:00",
        "2.0000",
        "16.0000",
        "1.60",
        "25.60",
    ]
    assert rows[-1][0] == "closing_balance" and rows[-1][-1] == "24974.40"

    printed = api_client.get(f"/accounts/{account.id}/statement/print", params={"month": "2026-01"})
    assert printed.status_code == 200 and "Statement 2026-01" in printed.text
    assert "Save as PDF" in printed.text and "cfd-sweep" in printed.text
    assert api_client.get(f"/accounts/{account.id}", params={"month": "January"}).status_code == 422
    pdf = api_client.get(f"/accounts/{account.id}/statement.pdf", params={"month": "2026-01"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert "statement-acme-2026-01.pdf" in pdf.headers["content-disposition"]
    other = api_client.get(f"/accounts/{account.id}/statement.xls", params={"month": "2026-01"})
    assert other.status_code == 404 and ".csv or .pdf" in other.text

    _login(api_client, "nosy")
    assert api_client.get(f"/accounts/{account.id}").status_code == 404
    assert api_client.get(f"/accounts/{account.id}/statement.csv").status_code == 404
    assert api_client.get(f"/accounts/{account.id}/statement.pdf").status_code == 404

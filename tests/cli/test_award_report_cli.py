"""``rechenwerk award reports|report-submit|report-review|report-get`` against a real
server (SQLite and PostgreSQL), with the PDF upload behind them: the body limit of the
upload route is the centre's ``report_max_bytes`` (413 above it), everything else keeps
the 1 MiB limit, and a non-PDF is refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from factories import make_org, make_project, make_token, make_user
from live_server import run_cli
from rechenwerk.access.awards import create_award

PDF = b"%PDF-1.4\n" + b"0" * 3000 + b"\n%%EOF\n"


@pytest.fixture
def api_settings() -> dict[str, Any]:
    return {"report_max_bytes": 2 * 1024 * 1024}


def test_reports_through_the_cli(live_server: str, session: Session, tmp_path: Path) -> None:
    org = make_org(session, kind="university")
    op_user = make_user(session, username="olga", operator=True)
    pi_user = make_user(session, username="pia", org=org)
    project = make_project(session, pi=pi_user, slug="alpha")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=200)
    award = create_award(session, op_user, project=project, gpu_hours=1000, starts_at=start,
                         gpu_type="A100-80GB", period_count=2, period_months=3, now=start)
    op, pi = make_token(session, op_user), make_token(session, pi_user)
    outsider = make_token(session, make_user(session))
    session.commit()

    def rw(token: str, *args: str, code: int = 0) -> Any:
        return run_cli(live_server, tmp_path, token, *args, code=code)

    tasks = rw(pi, "award", "reports", "--award", str(award.id), "--json")["items"]
    assert [t["kind"] for t in tasks] == ["status", "final"]
    assert tasks[0]["overdue"] is True  # the first period ended months ago
    assert rw(op, "award", "reports", "--overdue", "--json")["total"] == 1
    final = str(tasks[1]["id"])
    pdf = tmp_path / "final.pdf"
    pdf.write_bytes(PDF)
    bad = rw(pi, "award", "report-submit", final, "--summary", "Done.", "--publication",
             "10.1234/x", code=2)
    assert "give the DOI, a space and the title" in bad.stderr
    done = rw(pi, "award", "report-submit", final, "--summary", "We trained the model.",
              "--publication", "10.1234/abc.1 Scaling it", "--file", str(pdf), "--json")
    assert done["state"] == "submitted" and done["document_bytes"] == len(PDF)
    assert done["publications"] == [{"doi": "10.1234/abc.1", "title": "Scaling it"}]
    rw(pi, "award", "report-review", final, "accept", code=4)
    returned = rw(op, "award", "report-review", final, "return", code=2)
    assert "say what to change" in returned.stderr
    rw(op, "award", "report-review", final, "accept", "--note", "Thank you.")
    out = tmp_path / "got.pdf"
    rw(op, "award", "report-get", final, "--out", str(out))
    assert out.read_bytes() == PDF
    rw(outsider, "award", "report-get", final, "--out", str(out), code=3)

    # the upload route's own limit, and only that route's
    base, auth = f"{live_server}/api/v1", {"Authorization": f"Bearer {pi}"}
    status = tasks[0]["id"]
    r = httpx.put(f"{base}/report-tasks/{status}/document", headers={
        **auth, "Content-Type": "application/pdf"}, content=b"%PDF-" + b"0" * (1536 * 1024))
    assert r.status_code == 200, r.text  # 1.5 MiB: above 1 MiB, within report_max_bytes
    r = httpx.put(f"{base}/report-tasks/{status}/document", headers={
        **auth, "Content-Type": "application/pdf"}, content=b"%PDF-" + b"0" * (3 << 20))
    assert r.status_code == 413
    r = httpx.post(f"{base}/report-tasks/{status}/submit", headers=auth,
                   json={"summary": "x" * (1536 * 1024)})
    assert r.status_code == 413  # JSON bodies keep the 1 MiB limit
    r = httpx.put(f"{base}/report-tasks/{status}/document", headers={
        **auth, "Content-Type": "application/pdf"}, content=b"GIF89a")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "document"
    r = httpx.put(f"{base}/report-tasks/{status}/document", headers={
        **auth, "Content-Type": "text/plain"}, content=PDF)
    assert r.status_code == 422

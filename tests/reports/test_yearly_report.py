"""The yearly report: every funder section for a calendar year with its basis and source;
as JSON, HTML and PDF through the API (operators only) and `rechenwerk report yearly`
writing both files; bad years refused in one line (CLI exit 2, HTTP 422)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from funder_data import build, operator_and_pi_tokens
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from factories import bearer
from rechenwerk.cli.main import app as cli
from rechenwerk.errors import InvalidInput
from rechenwerk.reports import funder, yearly
from rechenwerk.web.yearly_document import document_html, document_pdf, summary

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def pdf_pages(data: bytes) -> int:
    """Page objects of a PDF (``/Type /Page``, not ``/Pages``), without a PDF library."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def test_every_section_has_a_basis_and_a_source() -> None:
    assert set(yearly.FIGURES) == set(funder.SECTIONS)
    assert {k for k, (basis, _) in yearly.FIGURES.items() if basis == "estimated"} == {
        "energy", "capacity"}
    assert all(len(src.splitlines()) == 1 and src for _, src in yearly.FIGURES.values())


def test_years() -> None:
    assert yearly.year_range(2026) == (datetime(2026, 1, 1, tzinfo=UTC),
                                       datetime(2027, 1, 1, tzinfo=UTC))
    for bad in ("20x6", "1899", "9999", "", "-5", 0):
        with pytest.raises(InvalidInput) as exc:
            yearly.parse_year(bad)
        assert exc.value.field == "year"


def test_the_document_holds_every_figure(session: Session) -> None:
    build(session)
    rep = yearly.yearly_report(session, 2026, total_gpus=8)
    assert [f.table.grouping for f in rep.figures] == list(funder.SECTIONS)
    kind = next(f for f in rep.figures if f.table.grouping == "kind")
    # the hand-built centre: 1500 awarded, 220 used in Q1 (nothing else in 2026 but the
    # run ending Apr 1 (5 GPU-h) and beta's April half (200))
    assert kind.table.totals["awarded_gpu_hours"] == pytest.approx(1700.0)
    assert kind.table.totals["used_gpu_hours"] == pytest.approx(225.0)
    cap = next(f for f in rep.figures if f.table.grouping == "capacity")
    assert [r["period"] for r in cap.table.rows] == ["2026-Q1", "2026-Q2", "2026-Q3",
                                                     "2026-Q4"]
    assert cap.table.totals["capacity_gpu_hours"] == pytest.approx(8 * 365 * 24)
    assert summary(cap).startswith("70,080.0 GPU-hours of capacity (8 GPUs)")
    html = document_html(rep, NOW)
    assert html.startswith("<!doctype html>") and "Rechenwerk yearly report 2026" in html
    for name in funder.SECTIONS:
        assert f'data-testid="yearly-{name}"' in html
        assert f'data-testid="source-{name}"' in html
    assert 'data-testid="basis-energy">estimated<' in html
    assert 'data-testid="basis-country">measured<' in html
    assert "Energy is estimated today" in html and "<svg" in html
    data = document_pdf(rep, NOW)
    assert data.startswith(b"%PDF") and pdf_pages(data) == 1 + len(funder.SECTIONS)
    d = rep.to_dict()
    assert d["report"] == "yearly" and d["year"] == 2026
    assert d["figures"]["energy"]["basis"] == "estimated"


def test_an_empty_year_still_renders(session: Session) -> None:
    rep = yearly.yearly_report(session, 1999)
    data = document_pdf(rep, NOW)
    assert pdf_pages(data) == 1 + len(funder.SECTIONS)
    assert "No data in this year." in document_html(rep, NOW)


def test_api_formats_and_refusals(session: Session, api_client: Any) -> None:
    op, pi = operator_and_pi_tokens(session)
    url = "/api/v1/reports/yearly"
    r = api_client.get(url, params={"year": "2026"}, headers=bearer(op))
    assert r.status_code == 200, r.text
    assert r.json()["figures"]["capacity"]["basis"] == "estimated"
    r = api_client.get(url, params={"year": "2026", "format": "pdf"}, headers=bearer(op))
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    r = api_client.get(url, params={"year": "2026", "format": "html"}, headers=bearer(op))
    assert r.headers["content-type"].startswith("text/html") and "<svg" in r.text
    r = api_client.get(url, params={"year": "twenty"}, headers=bearer(op))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "year"
    assert "calendar year" in r.json()["detail"]
    assert api_client.get(url, params={"year": "2026"}, headers=bearer(pi)).status_code == 403


@pytest.fixture
def cli_env(session: Session, api_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from rechenwerk.cli import client

    op, _ = operator_and_pi_tokens(session)
    client.use_transport(api_client._transport)
    monkeypatch.setenv("RECHENWERK_API_URL", "http://testserver")
    monkeypatch.setenv("RECHENWERK_TOKEN", op)
    yield CliRunner()
    client.use_transport(None)


def test_cli_writes_html_and_pdf(cli_env: CliRunner, tmp_path: Path) -> None:
    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    r = cli_env.invoke(cli, ["report", "yearly", "--year", "2026", "--out", str(html),
                             "--pdf", str(pdf)])
    assert r.exit_code == 0, r.output
    assert "wrote the HTML" in r.output and "wrote the PDF" in r.output
    text = html.read_text(encoding="utf-8")
    assert "Rechenwerk yearly report 2026" in text and 'data-testid="yearly-deadlines"' in text
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and pdf_pages(data) > 1
    r = cli_env.invoke(cli, ["report", "yearly", "--year", "2026", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["year"] == 2026


@pytest.mark.parametrize(("args", "words"), [
    (["--year", "20x6", "--out", "r.html"], "--year must be a calendar year"),
    (["--year", "1800", "--out", "r.html"], "year must be a calendar year"),
    (["--year", "2026"], "needs --out"),
    (["--year", "2026", "--out", "r.html", "--from", "2026-01-01"], "no --from"),
])
def test_cli_bad_input_is_one_line(cli_env: CliRunner, args: list[str], words: str,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli_env.invoke(cli, ["report", "yearly", *args])
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output
    lines = r.output.strip().splitlines()  # the error, and the hint on its own line
    assert len(lines) <= 2 and lines[0].startswith("error: ")
    assert not (tmp_path / "r.html").exists()
    r = cli_env.invoke(cli, ["report", "funder", "--year", "2026"])
    assert r.exit_code == 2 and "no --year" in r.output

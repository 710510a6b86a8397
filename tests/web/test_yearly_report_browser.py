"""The yearly report in a browser on the demo centre: an operator reaches it from Reports,
every section is there with its basis and source, its charts are drawn in the page, and
the PDF downloads; a PI is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from browser_helpers import login, shot

from rechenwerk.reports.funder import SECTIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def test_operator_opens_the_yearly_report(new_page: Any) -> None:
    year = datetime.now(UTC).year
    page = new_page()
    login(page, "operator")
    page.goto("/reports")
    page.click("[data-testid=yearly-link]")
    page.wait_for_url("**/reports/yearly")
    assert page.inner_text("h1") == f"Yearly report {year}"
    headings = page.locator("main section h2").all_inner_texts()
    assert len(headings) == len(SECTIONS)
    assert any(h.startswith("GPU-hours by organisation country") for h in headings)
    assert any(h.startswith("Energy per month (measured and estimated)") and h.endswith("estimated")
               for h in headings)
    assert page.inner_text("[data-testid=basis-energy]") == "estimated"
    assert page.inner_text("[data-testid=basis-kind]") == "measured"
    # one figure: the SME + startup share of the demo's awarded GPU-hours, and a table
    assert "SME + startup share:" in page.inner_text("[data-testid=summary-kind]")
    assert "DE" in page.inner_text("[data-testid=yearly-table-country]")
    # fair access: the demo's SME and university projects both had demand this year
    assert "periods with demand received" in page.inner_text(
        "[data-testid=summary-fair-access]")
    kinds = page.inner_text("[data-testid=yearly-table-fair-access-kind]")
    assert "sme" in kinds and "university" in kinds
    assert page.inner_text("[data-testid=source-energy]").startswith("Source: ")
    assert page.locator("[data-testid^=yearly-chart-] svg").count() >= 5
    href = page.get_attribute("[data-testid=yearly-pdf]", "href")
    assert href == f"/reports/yearly.pdf?year={year}"
    pdf = page.request.get(href)
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    shot(page, "yearly-report")

    pi = new_page()
    login(pi, "greta")
    assert pi.goto("/reports/yearly").status == 403

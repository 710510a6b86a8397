"""The funder report in a browser on the demo centre: an operator reaches it from
Reports, its charts draw, a section's CSV downloads; a PI is refused."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def test_operator_opens_the_funder_report(new_page: Any) -> None:
    page = new_page()
    login(page, "operator")
    page.goto("/reports")
    page.click("[data-testid=funder-link]")
    page.wait_for_url("**/reports/funder")
    page.wait_for_load_state("networkidle")
    assert page.locator(".chart-loading").count() == 0  # every chart was drawn
    assert page.locator("[data-testid^=chart-funder-] svg").count() == 6
    main = page.inner_text("main")
    assert "Computer and information sciences" in main  # nordlicht-llm's field
    assert "SME + startup share" in main and "estimated" in main
    country = page.inner_text("[data-testid=funder-table-country]")
    assert "DE" in country
    href = page.get_attribute("[data-testid=funder-kind] p.small a[download]", "href")
    assert href is not None and href.startswith("/reports/funder/kind.csv?")
    csv = page.request.get(href)
    assert csv.ok and csv.text().splitlines()[0].startswith("Organisation kind,Awarded")
    shot(page, "funder-report")

    pi = new_page()
    login(pi, "greta")
    pi.goto("/reports")
    assert pi.locator("[data-testid=funder-link]").count() == 0
    assert pi.goto("/reports/funder").status == 403

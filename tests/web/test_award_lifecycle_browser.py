"""An award's life in Chromium on the demo centre (issue 15 "Done when", the award
part): the PI asks for an extension on the award's page, the operator approves it on
the requests page with a note, the PI sees version 2 and submits the final report with
its PDF, the operator accepts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_helpers import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def test_extension_request_and_final_report(new_page: Any, portal: Any,
                                            tmp_path: Path) -> None:
    awards = portal.api("GET", "/api/v1/awards?project=nordlicht-llm", "greta").json()
    award = awards["items"][0]
    pi = new_page()
    login(pi, "greta")
    pi.goto("/projects/nordlicht-llm")
    pi.click(f"[data-testid=award-{award['id']}] [data-testid=award-changes-link]")
    pi.wait_for_url(f"**/awards/{award['id']}")
    pi.select_option("#f-kind", "extension")
    end = award["expires_at"][:10]
    year, rest = int(end[:4]), end[4:]
    pi.fill("#f-until", f"{year + 1}{rest}")
    pi.fill("#f-reason", "Two weeks of cluster maintenance stopped the runs.")
    pi.click("[data-testid=change-form] button[type=submit]")
    pi.wait_for_load_state()
    assert "Request sent" in pi.inner_text("main")
    assert "Two weeks of cluster maintenance" in pi.inner_text("[data-testid=change-requests]")

    op = new_page()
    login(op, "operator")
    op.goto("/")
    op.click("text=award change request waits for a decision")
    op.wait_for_url("**/award-changes")
    card = op.locator("[data-testid^=change-]").filter(has_text="nordlicht-llm").first
    card.locator("textarea[name=note]").fill("Agreed: the maintenance was ours.")
    card.locator("button[value=approved]").click()
    op.wait_for_load_state()
    assert "approved" in op.inner_text("main")

    pi.goto(f"/awards/{award['id']}")
    main = pi.inner_text("main")
    assert "version 2" in main and "Agreed: the maintenance was ours." in main
    final = pi.locator("details", has_text="Submit the final report")
    final.locator("summary").click()
    final.locator("textarea[name=summary]").fill("Continued pre-training finished; the "
                                                 "model is in production.")
    final.locator("textarea[name=publications]").fill(
        "10.5555/nordlicht.2026 A maintenance LLM for German industry")
    pdf = tmp_path / "final-report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% final report\n%%EOF\n")
    final.locator("input[name=document]").set_input_files(str(pdf))
    final.locator("button[type=submit]").click()
    pi.wait_for_load_state()
    assert "Final report submitted" in pi.inner_text("main")
    assert "final-report.pdf" in pi.inner_text("[data-testid=report-tasks]")
    shot(pi, "award-page")

    op.goto("/report-tasks")
    report = op.locator("[data-testid^=report-]").filter(has_text="nordlicht-llm").first
    assert "A maintenance LLM for German industry" in report.inner_text()
    report.locator("button[value=accepted]").click()
    op.wait_for_load_state()
    assert "accepted" in op.inner_text("main")

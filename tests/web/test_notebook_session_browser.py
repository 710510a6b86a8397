"""A notebook session in Chromium, as a researcher would: start JupyterLab from the portal's
Notebooks page, open it through the portal, run a cell that prints the GPUs the session
got, stop it after confirming, and find its run charged."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import login, shot
from test_accessibility_browser import axe_available  # noqa: F401 - the fixture

from waiting import DEADLINE_S, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]
pytest.importorskip("jupyterlab", reason="JupyterLab is the extra rechenwerk[sessions]")
MS = DEADLINE_S * 1000


def _no_violations(page: Any) -> None:
    from test_accessibility_browser import _axe, _describe

    found = _axe(page)
    assert not found, "\n".join(_describe(page.url, found))


@pytest.mark.usefixtures("axe_available")
def test_start_open_run_a_cell_and_stop_a_notebook(new_page: Any, portal: Any) -> None:
    page = new_page()
    login(page, "greta")
    page.get_by_role("link", name="Notebooks").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Notebooks"
    _no_violations(page)
    page.select_option("#f-project", "nordlicht-llm")
    page.fill("#f-gpus", "2")
    page.fill("#f-walltime", "30m")
    page.get_by_test_id("start-session").click()
    page.wait_for_load_state()
    assert "/sessions/" in page.url
    session_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    try:
        # the page updates by itself until JupyterLab can be opened
        open_link = page.get_by_test_id("open-session")
        open_link.wait_for(timeout=MS)
        shot(page, "notebook-session-ready")
        _no_violations(page)  # WCAG 2.1 A/AA, as every portal page
        with page.context.expect_page(timeout=MS) as popup:
            open_link.click()
        lab = popup.value
        lab.wait_for_load_state()
        assert lab.url.startswith(f"{portal.url}/jupyter/{session_id}/lab")
        # a new notebook from the launcher, one cell, run with Shift+Enter
        lab.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=MS)
        editor = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
        editor.wait_for(timeout=MS)
        # a cell run before the notebook's kernel is connected is dropped by JupyterLab:
        # wait until the status bar says the kernel is idle
        lab.locator("#jp-main-statusbar").get_by_text(re.compile(r"ipykernel\) \| Idle")
                                                      ).wait_for(timeout=MS)
        editor.click()
        lab.keyboard.type("import os; print('GPUS', os.environ['CUDA_VISIBLE_DEVICES'])")
        lab.keyboard.press("Shift+Enter")
        output = lab.locator(".jp-OutputArea-output").first
        try:
            output.wait_for(timeout=MS)
        except Exception:
            shot(lab, "notebook-cell-no-output")
            log = portal.api("GET", f"/api/v1/jobs/{session_id}/logs?stream=stderr", "greta")
            print("JupyterLab's log:\n", log.json()["data"][-6000:])
            raise
        wait_for(lambda: "GPUS" in output.inner_text(), "the cell's output")
        gpus = output.inner_text().split()[1].split(",")
        assert len(gpus) == 2 and all(g.isdigit() for g in gpus), output.inner_text()
        shot(lab, "notebook-cell-output")
        lab.close()
        # stop, after a confirmation
        page.get_by_test_id("stop-session").click()
        page.wait_for_load_state()
        assert "Stop this session?" in page.inner_text("main")
        _no_violations(page)
        page.get_by_test_id("confirm-stop").click()
        page.get_by_test_id("session-ended").wait_for(timeout=MS)
    finally:
        state = portal.api("GET", f"/api/v1/sessions/{session_id}", "greta").json()["state"]
        if state not in ("cancelled", "completed", "failed", "timeout"):
            portal.api("DELETE", f"/api/v1/sessions/{session_id}", "greta")
    # charged: the job page of the session shows its GPU-hours
    page.get_by_test_id("session-job").click()
    page.wait_for_load_state()
    assert "interactive session" in page.get_by_test_id("job-kind").inner_text()
    charged = float(page.get_by_test_id("charged").get_attribute("data-value") or 0)
    assert charged > 0

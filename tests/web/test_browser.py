"""The portal in a real browser (Debian's chromium through Playwright) against a real
server with the scheduler loop and the local executor: login, a PI's dashboard with the
burn-down chart, submitting a job and seeing it finish with the balance dropping, a
reviewer scoring a proposal, the operator's cluster view, and authorisation through the
browser and by direct URL. Each page is saved as a screenshot artifact."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from browser_helpers import login, shot

from waiting import DEADLINE_S, wait_for

# One worker runs them all (pytest -n 2 --dist loadgroup), sharing one server and browser.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def _value(page: Any, testid: str) -> float:
    return float(page.get_attribute(f"[data-testid={testid}]", "data-value"))


def test_login_wrong_password_then_logout(new_page: Any) -> None:
    page = new_page()
    page.goto("/jobs")
    assert "/login" in page.url  # not logged in: sent to the login form
    shot(page, "01-login")
    login(page, "greta", "not-her-password")
    assert page.locator(".flash.error").inner_text().startswith("Wrong username or password")
    assert page.input_value("input[name=username]") == "greta"  # input kept
    login(page, "greta")
    assert page.locator("[data-testid=whoami]").inner_text().startswith("Greta Hansen")
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/login$"))
    assert "logged out" in page.locator(".flash").inner_text()
    page.goto("/")
    assert "/login" in page.url


def test_pi_dashboard_shows_balance_and_burndown(new_page: Any) -> None:
    page = new_page()
    login(page, "greta")
    card = page.locator("[data-testid=project-nordlicht-llm]")
    assert card.is_visible()
    assert "GPU-hours" in card.inner_text()
    assert _value(page, "used-nordlicht-llm") > 0  # the history was charged
    charts = card.locator("figure[data-testid^=chart-burndown] svg")
    assert charts.count() >= 1
    svg = charts.first.inner_html()
    assert "GPU-hours remaining" in svg and "forecast" in svg
    # The chart's data as CSV, with the session cookie.
    href = card.locator("figure[data-testid^=chart-burndown] a[download]").first \
        .get_attribute("href")
    csv = page.request.get(href)
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text().splitlines()[0] == "series,date (UTC),GPU-hours remaining"
    shot(page, "02-pi-dashboard")
    page.click("a[href='/projects/nordlicht-llm']")
    assert page.locator("[data-testid=members-table]").inner_text().count("jonas") == 1
    shot(page, "03-project")


def test_submit_job_from_form_runs_and_balance_drops(new_page: Any, portal: Any) -> None:
    page = new_page()
    login(page, "greta")
    # Opt in to "job finished" mails first.
    page.goto("/settings")
    page.check("input[name=job_finished]")
    page.click("form[data-testid=notification-form] button[type=submit]")
    assert "saved" in page.locator(".flash").inner_text()
    page.goto("/")
    used_before = _value(page, "used-nordlicht-llm")
    available_before = _value(page, "available-nordlicht-llm")

    page.goto("/jobs/new?project=nordlicht-llm")
    page.fill("#f-name", "browser-demo")
    # It runs until the test releases it (once the server has seen it running), not for
    # a fixed time a loaded machine could let pass before the scheduler looks.
    released = portal.data_dir.parent / "shared" / f"release-{uuid.uuid4().hex}"
    page.fill("#f-command", "python3 -c \"import os,time; print('step 1', flush=True); "
                            f"any(os.path.exists('{released}') or time.sleep(0.05) "
                            "for _ in iter(int, 1)); print('done')\"")
    page.fill("#f-gpus", "0")
    page.fill("#f-walltime", "ten minutes")
    page.click("form[data-testid=submit-form] button[type=submit]")
    # Field errors beside the fields, input kept.
    assert "at least 1" in page.inner_text("[data-testid=error-gpus]")
    assert "not a duration" in page.inner_text("[data-testid=error-walltime]")
    assert page.input_value("#f-name") == "browser-demo"
    shot(page, "04-submit-errors")

    page.fill("#f-gpus", "4")
    page.fill("#f-walltime", "10m")
    before = time.monotonic()
    page.click("form[data-testid=submit-form] button[type=submit]")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    assert "submitted" in page.locator(".flash").inner_text()
    try:
        wait_for(lambda: portal.api("GET", f"/api/v1/jobs/{job_id}", "greta")
                 .json()["state"] == "running", "the job to run", step=0.2)
    finally:
        released.touch()
    # The page refreshes itself (htmx) until the job has ended.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-state]')"
        ".innerText.includes('completed')", timeout=DEADLINE_S * 1000)
    window_s = time.monotonic() - before
    # the log box follows on its own 2 s poll (static/log-follow.js), not with the state
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stdout]').textContent.includes('done')",
        timeout=DEADLINE_S * 1000)
    assert "running" in page.inner_text("[data-testid=job-events]")
    charged = _value(page, "charged")
    assert 0 < charged <= 4 * window_s / 3600  # 4 GPUs for as long as it ran, no more
    shot(page, "05-job-finished")

    page.goto("/")
    assert _value(page, "used-nordlicht-llm") == pytest.approx(used_before + charged, abs=1e-6)
    assert _value(page, "available-nordlicht-llm") == pytest.approx(
        available_before - charged, abs=1e-6)
    page.goto("/jobs?mine=1")
    assert f"/jobs/{job_id}" in page.inner_html("[data-testid=jobs-table]")
    shot(page, "06-job-list")
    # The server's notifier (started with it) queues and sends the mail; run a round now
    # instead of waiting for its next one.
    portal.app.state.runtime.notifier.run_once()
    page.goto("/settings")
    row = page.locator("tr", has_text=f"Job {job_id} (browser-demo) completed")
    assert "sent" in row.inner_text()
    shot(page, "15-settings-notifications")


def test_reviewer_scores_a_proposal(new_page: Any) -> None:
    page = new_page()
    login(page, "henrik")
    page.click("nav >> text=Reviews")
    row = page.locator("[data-testid=review-table] tr",
                       has_text="Self-supervised pre-training on warehouse video")
    assert "none" in row.inner_text()  # no conflict of interest
    row.locator("a.button").click()
    assert "No conflict of interest" in page.inner_text("[data-testid=coi]")
    # the assignment is an invitation: accept it, then the review form appears
    page.click("form[data-testid=invitation-form] button[value=accept]")
    page.wait_for_selector("form[data-testid=review-form]")
    page.click("form[data-testid=review-form] button[type=submit]")  # no scores yet
    assert "required" in page.inner_text("[data-testid=error-technical_score]")
    page.goto(page.url)  # a fresh form for the screenshot
    page.select_option("#f-technical_score", "4")
    page.select_option("#f-scientific_score", "5")
    page.fill("#f-comment", "Clear plan; the data pipeline is ready.")
    shot(page, "07-review-form")
    page.click("form[data-testid=review-form] button[type=submit]")
    page.wait_for_url(re.compile(r".*/reviews$"))
    assert "submitted" in page.locator(".flash").inner_text()
    assert "submitted" in page.locator("[data-testid=review-table] tr",
                                       has_text="Self-supervised").inner_text()
    # The operator sees the score on the proposal and may decide.
    op = new_page()
    login(op, "operator")
    op.goto("/proposals?state=under_review")
    op.click("text=Self-supervised pre-training on warehouse video")
    assert "Clear plan" in op.inner_text("main")
    shot(op, "08-proposal-operator")


def test_operator_cluster_view_queue_and_reports(new_page: Any, portal: Any) -> None:
    r = portal.api("POST", "/api/v1/jobs", "jonas", json={
        "name": "cluster-view", "project": "nordlicht-llm", "gpus": 4, "walltime": "30m",
        # It runs until the test cancels it, however long the pages take.
        "command": ["python3", "-c", "import time; time.sleep(3600)"]})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    try:
        wait_for(lambda: portal.api("GET", f"/api/v1/jobs/{job_id}", "jonas")
                 .json()["state"] == "running", "the job to run", step=0.3)
        page = new_page()
        login(page, "operator")
        page.click("nav >> text=Cluster")
        assert int(page.inner_text("[data-testid=busy-gpus]")) >= 4
        assert page.locator(f".gpu.busy[href='/jobs/{job_id}']").count() == 4
        assert page.locator("[data-testid=nodes] .node").count() == 2
        shot(page, "09-operator-cluster")
        page.click("nav >> text=Queue")
        shot(page, "10-operator-queue")
        page.click("nav >> text=Calls & awards")
        assert "Open Research Call" in page.inner_text("[data-testid=calls-table]")
        shot(page, "11-operator-calls-awards")
        page.click("nav >> text=Reports")
        for name in ("usage", "utilisation", "waits", "energy"):  # drawn on load (htmx)
            page.wait_for_selector(f"figure[data-testid=chart-{name}] svg")
        assert "nordstadt-climate" in page.inner_text("[data-testid=table-usage]")
        assert "PUE" in page.inner_text("[data-testid=energy-assumptions]")
        shot(page, "12-operator-reports")
        csv = page.request.get("/reports/usage.csv?by=kind")
        assert csv.status == 200 and csv.text().startswith("Organisation kind,GPU-hours")
        page.click("nav >> text=Audit log")
        assert "proposal.review" in page.inner_text("[data-testid=audit-table]") or \
            "award.create" in page.inner_text("[data-testid=audit-table]")
        shot(page, "13-operator-audit")
    finally:
        portal.api("POST", f"/api/v1/jobs/{job_id}/cancel", "jonas")


def test_waiting_job_shows_its_forecast_and_priority(new_page: Any, portal: Any) -> None:
    """A job behind a full cluster: its page and the queue say when it should start."""
    hold = {"project": "nordlicht-llm", "walltime": "30m",
            "command": ["python3", "-c", "import time; time.sleep(3600)"]}
    blocker = portal.api("POST", "/api/v1/jobs", "jonas",
                         json={**hold, "name": "blocker", "gpus": 8}).json()["id"]
    waiting = None
    try:
        wait_for(lambda: portal.api("GET", f"/api/v1/jobs/{blocker}", "jonas")
                 .json()["state"] == "running", "the blocker to run", step=0.3)
        r = portal.api("POST", "/api/v1/jobs", "jonas",
                       json={**hold, "name": "behind", "gpus": 4, "walltime": "10m"})
        waiting = r.json()["id"]
        page = new_page()
        login(page, "jonas")
        page.goto(f"/jobs/{waiting}")
        # The forecast companion runs every 0.5 s here; the page refreshes itself (htmx).
        page.wait_for_selector("[data-testid=expected-start]", timeout=DEADLINE_S * 1000)
        text = page.inner_text("[data-testid=expected-start]")
        assert "UTC" in text and re.search(r"in (\d+ min|\d+ h)", text), text
        assert "walltime limit" in text
        assert "Queue position:" in page.inner_text("[data-testid=queue-position]")
        shot(page, "16-job-forecast")
        forecast = portal.api("GET", f"/api/v1/jobs/{waiting}", "jonas").json()
        started = portal.api("GET", f"/api/v1/jobs/{blocker}", "jonas").json()["started_at"]
        from datetime import datetime, timedelta

        # The blocker holds every GPU for at most its 30 min walltime (less where the
        # project's recent jobs ran shorter than theirs): then "behind" starts.
        expected = datetime.fromisoformat(forecast["expected_start"])
        limit = datetime.fromisoformat(started) + timedelta(minutes=30)
        assert datetime.fromisoformat(started) < expected <= limit + timedelta(seconds=5)
    finally:
        for job in (waiting, blocker):
            if job is not None:
                portal.api("POST", f"/api/v1/jobs/{job}/cancel", "jonas")


def test_users_never_see_other_projects(new_page: Any, portal: Any) -> None:
    # A job of nordstadt-climate (Jan's project), which Greta does not belong to.
    jobs = portal.api("GET", "/api/v1/jobs?project=nordstadt-climate&limit=1", "jan").json()
    other = jobs["items"][0]["id"]
    page = new_page()
    login(page, "greta")
    for url in (f"/jobs/{other}", "/projects/nordstadt-climate",
                "/projects/nordstadt-climate/burndown/1.csv"):
        response = page.goto(url)
        assert response.status == 404, url
        assert "not found" in page.inner_text("[data-testid=error-message]")
    shot(page, "14-not-found")
    # Her job list and reports never contain the other project.
    page.goto("/jobs")
    assert "nordstadt-climate" not in page.inner_text("main")
    page.goto("/reports")
    assert "nordstadt-climate" not in page.inner_text("main")
    # Operator pages are refused.
    assert page.goto("/ops/cluster").status == 403
    # The same through the API with her token.
    for path in (f"/api/v1/jobs/{other}", f"/api/v1/jobs/{other}/logs",
                 "/api/v1/projects/nordstadt-climate/balance"):
        assert portal.api("GET", path, "greta").status_code == 404, path
    # A viewer (Clara) sees the project but cannot submit.
    viewer = new_page()
    login(viewer, "clara")
    assert viewer.goto("/projects/nordstadt-climate").status == 200
    viewer.goto("/jobs/new")
    assert "You cannot submit jobs yet" in viewer.inner_text("main")


def test_forms_are_csrf_protected(portal: Any) -> None:
    import httpx

    with httpx.Client(base_url=portal.url) as c:
        c.get("/login")
        r = c.post("/login", data={"username": "greta", "password": "greta-demo",
                                   "csrf_token": "forged"})
        assert r.status_code == 403
        assert "security token" in r.text


def test_job_filters_update_the_list_in_place(new_page: Any) -> None:
    page = new_page()
    login(page, "jan")
    page.goto("/jobs")
    total_text = page.inner_text("[data-testid=pagination]")
    page.select_option("form[data-testid=job-filters] select[name=state]", "failed")
    page.wait_for_url(re.compile(r".*state=failed.*"))  # htmx pushed the filtered URL
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=jobs-table] tbody tr')]"
        ".every(r => r.innerText.includes('failed'))")
    assert page.inner_text("[data-testid=pagination]") != total_text
    rows = page.locator("[data-testid=jobs-table] tbody tr")
    assert rows.count() >= 1
    shot(page, "16-job-filters")

"""The access process in Chromium on the demo centre (issue 15 "Done when"): a Fast
Lane proposal from submission to award within its deadline, and a Large Scale proposal
through every review step: eligibility check, technical assessment, an invited external
reviewer who accepts and reviews, the applicant's reply, the ranking against the call,
and a decision granting part of the request, with its letter."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from browser_helpers import login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def choose(page: Any, select: str, text: str) -> None:
    """Pick the option of ``select`` whose text contains ``text``."""
    value = page.evaluate(
        "([sel, text]) => [...document.querySelector(sel).options]"
        ".find(o => o.textContent.includes(text)).value", [select, text])
    page.select_option(select, value)


def propose(page: Any, *, call: str, project: str, title: str, hours: int,
            months: int) -> int:
    page.goto("/proposals/new")
    choose(page, "#f-call", call)
    choose(page, "#f-project", project)
    page.fill("#f-title", title)
    page.fill("#f-requested_gpu_hours", str(hours))
    page.fill("#f-duration_months", str(months))
    page.click("form#proposal-form button[value=submit]")
    page.wait_for_url(re.compile(r".*/proposals/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def assess(page: Any, pid: int, note: str) -> None:
    page.goto(f"/proposals/{pid}")
    form = page.locator("[data-testid=assessment-form]")
    form.locator("select[name=outcome]").select_option("pass")
    form.locator("textarea[name=note]").fill(note)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()


def decide(page: Any, pid: int, *, granted: int | None, comment: str) -> None:
    page.goto(f"/proposals/{pid}")
    form = page.locator("form[action$=decide]")
    form.locator("select[name=decision]").select_option("accepted")
    if granted is not None:
        form.locator("input[name=granted_gpu_hours]").fill(str(granted))
    form.locator("textarea[name=comment]").fill(comment)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()


def test_fast_lane_from_submission_to_award_within_its_deadline(new_page: Any,
                                                                portal: Any) -> None:
    pi = new_page()
    login(pi, "amelie")
    pid = propose(pi, call="Fast Lane", project="lumen-vision", hours=1500, months=2,
                  title="Fine-tuning a grasp detector")
    due = pi.inner_text("[data-testid=due-on]")[:10]
    op = new_page()
    login(op, "operator")
    assess(op, pid, "Startup in FR: eligible.")
    assess(op, pid, "Fits one A100 node; the data pipeline is ready.")
    decide(op, pid, granted=None, comment="Accepted in full.")
    p = portal.api("GET", f"/api/v1/proposals/{pid}", "amelie").json()
    assert p["state"] == "accepted", op.inner_text("main")[:3000]
    href = op.get_attribute("a:has-text('create the award')", "href")
    assert href is not None and href.startswith("/ops/calls?award_project=lumen-vision")
    op.goto(href)
    form = op.locator("[data-testid=award-form]")
    assert form.locator("input[name=gpu_hours]").input_value() == "1500"  # the grant
    form.locator("input[name=starts_at]").fill(datetime.now(UTC).date().isoformat())
    form.locator("button[type=submit]").click()
    op.wait_for_load_state()
    award = portal.api("GET", "/api/v1/awards?project=lumen-vision", "amelie").json()
    assert any(a["proposal_id"] == pid for a in award["items"])
    p = portal.api("GET", f"/api/v1/proposals/{pid}", "amelie").json()
    assert p["state"] == "accepted" and p["decided_at"][:10] <= due  # within its deadline


def test_large_scale_through_every_review_step(new_page: Any, portal: Any) -> None:
    pi = new_page()
    login(pi, "jan")
    pid = propose(pi, call="Large Scale", project="nordstadt-climate", hours=60_000,
                  months=6, title="A km-scale climate emulator")
    op = new_page()
    login(op, "operator")
    assess(op, pid, "University in DE: eligible.")
    assess(op, pid, "Scales to 64 GPUs in the benchmark.")
    op.goto(f"/proposals/{pid}")
    assign = op.locator("form[action$=assign]")
    assign.locator("input[name=reviewer][value=lucia]").check()
    assign.locator("button[type=submit]").click()
    op.wait_for_load_state()

    rev = new_page()
    login(rev, "lucia")
    rev.goto(f"/reviews/{pid}")
    rev.click("button[value=accept]")
    rev.wait_for_load_state()
    rev.select_option("#f-technical_score", "4")
    rev.select_option("#f-scientific_score", "5")
    rev.fill("#f-comment", "Ambitious and well planned; the validation needs more detail.")
    rev.click("form button:has-text('Submit review')")
    rev.wait_for_load_state()

    pi.goto(f"/proposals/{pid}")
    assert "validation needs more detail" in pi.inner_text("main")  # no reviewer name
    assert "lucia" not in pi.inner_text("main")
    reply = pi.locator("[data-testid=reply-form]")
    reply.locator("textarea[name=text]").fill("We add a held-out decade for validation.")
    reply.locator("button[type=submit]").click()
    pi.wait_for_load_state()
    assert "held-out decade" in pi.inner_text("[data-testid=reply]")

    op.goto(f"/proposals/{pid}")
    op.click("[data-testid=ranking-link]")
    op.wait_for_url("**/ranking")
    assert "A km-scale climate emulator" in op.inner_text("[data-testid=ranking-table]")
    op.click("[data-testid=confirm-ranking]")
    op.wait_for_load_state()
    assert "confirmed" in op.inner_text("main")
    decide(op, pid, granted=55_000, comment="Granted 55,000 of 60,000 GPU-hours.")
    main = op.inner_text("main")
    assert "Granted: 55,000 of 60,000" in main
    shot(op, "large-scale-decided")
    p = portal.api("GET", f"/api/v1/proposals/{pid}", "jan").json()
    assert p["state"] == "accepted"

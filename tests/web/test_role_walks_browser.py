"""Each role's main flow walked in Chromium as a user would (issue 18 "Done when"): from
the login page only links and buttons are followed, no URL is typed. Every full page load
is counted (``PageLoads``); each flow must stay within its budget, the count measured
when the walk was written (docs/portal.md "Main flows and their page loads"), so a change
that makes a flow longer fails here.

- PI (pieter) and operator, one story: the PI creates a project (the centre approves new
  projects here) and adds a member; the operator finds it on the worklist and approves
  it; the PI writes and submits a Fast Lane proposal; the operator finds it on the
  worklist, records both checks, accepts it and makes the award; the PI sees the
  project's balance. The operator then drains and resumes a node and reads both in words
  in the audit log.
- Reviewer (margot): the review due on the dashboard, accepted and scored.
- Member (jonas): a job submitted from the dashboard's form, followed to its log and its
  result.

The walks found that the cluster view's 5 s refresh replaced the drain forms under a
reason being typed; test_the_cluster_view_keeps_a_drain_reason_being_typed holds it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from browser_helpers import PageLoads, login

from waiting import DEADLINE_S

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]

# Page loads per flow, login included (the login page and the dashboard it leads to are
# 2), measured when the walks were written (2026-12); lower a budget when its flow gets
# shorter, never raise it without a reason in docs/portal.md.
PI_BUDGET = 8  # login 2, new project 2, add member 1, write (from the project page) and
#                submit 2, the dashboard's balance 1; 9 before the project page offered
#                "Write a proposal" (the PI went through Proposals)
OPERATOR_BUDGET = 16  # login 2, worklist -> approve 2, dashboard -> worklist -> the
#                       proposal 3, two checks 2, decision 1, award form and award 2,
#                       cluster, drain, resume 3, audit log 1
REVIEWER_BUDGET = 6  # login 2, worklist 1, the review 1, accept 1, submit 1
MEMBER_BUDGET = 5  # login 2, the form 1, its error 1, the job page 1 (it follows the job
#                    to its end, log and result, without a reload)


def choose(select: Any, text: str) -> None:
    """Pick the option of ``select`` (a locator) whose text contains ``text``."""
    label = next(o for o in select.locator("option").all_inner_texts() if text in o)
    select.select_option(label=label)


@pytest.fixture
def approval_on(portal: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The centre approves new projects (``project_approval``) during the test."""
    monkeypatch.setattr(portal.app.state.runtime.settings, "project_approval", True)


def test_pi_and_operator_from_a_new_project_to_its_balance(new_page: Any, portal: Any,
                                                           approval_on: None) -> None:
    slug = f"tide-{uuid.uuid4().hex[:6]}"
    title = f"Storm-surge emulator {slug}"
    pi, op = new_page(), new_page()
    pi_loads, op_loads = PageLoads(pi), PageLoads(op)

    # PI: a new project from the dashboard; it waits for the centre's approval.
    login(pi, "pieter")
    pi_loads.follow("main >> text=New project")
    pi.locator("#f-slug").fill(slug)
    pi.locator("#f-title").fill("Storm-surge emulator for the North Sea")
    pi_loads.follow("main form button:has-text('Create project')")
    assert pi.url.endswith(f"/projects/{slug}")
    assert "waits for approval" in pi.inner_text("[data-testid=project-approval]")

    # Operator: the new project on the worklist, approved.
    login(op, "operator")
    op_loads.follow("[data-testid=work-projects-pending] a")
    op_loads.follow(f"[data-testid=approve-{slug}] button[value=approved]")
    assert op.locator(f"[data-testid=approve-{slug}]").count() == 0

    # PI: a member added; the approved project's page offers a proposal for it, a Fast
    # Lane one is written and submitted.
    members = pi.locator("[data-testid=member-form]")
    members.locator("input[name=username]").fill("clara")
    members.locator("select[name=role]").select_option("member")
    pi_loads.follow(members.locator("button[type=submit]"))
    assert "clara" in pi.inner_text("[data-testid=members-table]")
    pi_loads.follow("[data-testid=write-proposal]")
    form = pi.locator("[data-testid=proposal-form]")
    assert form.locator("#f-project").input_value() == slug  # the project chosen
    choose(form.locator("#f-call"), "Fast Lane")
    form.locator("#f-title").fill(title)
    form.locator("#f-abstract").fill("A neural emulator of storm surges for coastal warnings.")
    form.locator("#f-requested_gpu_hours").fill("1200")
    form.locator("#f-duration_months").fill("2")
    pi_loads.follow(form.locator("button[value=submit]"))
    assert re.search(r"/proposals/\d+$", pi.url), pi.inner_text("main")[:2000]
    proposal_id = int(pi.url.rsplit("/", 1)[1])

    # Operator: back on the dashboard, the proposal on the worklist; both checks, the
    # decision and the award.
    op_loads.follow("header >> a.brand")
    op_loads.follow("[data-testid=work-to-check] a")  # Fast Lane: its checks first
    op_loads.follow(f"main a[href='/proposals/{proposal_id}'] >> text={title}")
    for note in ("University in DE: eligible.", "Fits one A100 node."):
        check = op.locator("[data-testid=assessment-form]")
        check.locator("select[name=outcome]").select_option("pass")
        check.locator("textarea[name=note]").fill(note)
        op_loads.follow(check.locator("button[type=submit]"))
    decide = op.locator("form[action$=decide]")
    decide.locator("select[name=decision]").select_option("accepted")
    decide.locator("textarea[name=comment]").fill("Accepted in full.")
    op_loads.follow(decide.locator("button[type=submit]"))
    op_loads.follow(f"main >> text=create the award for {slug}")
    award = op.locator("[data-testid=award-form]")
    assert award.locator("input[name=gpu_hours]").input_value() == "1200"  # the grant
    op_loads.follow(award.locator("button[type=submit]"))
    assert "award" in op.inner_text(".flash").lower(), op.inner_text("main")[:2000]

    # PI: the balance on the dashboard: the first of the award's 4 quarterly periods.
    pi_loads.follow("header >> a.brand")
    available = pi.get_attribute(f"[data-testid=available-{slug}]", "data-value")
    assert available is not None and float(available) == pytest.approx(300)
    pi_loads.within(PI_BUDGET, "the PI's flow")

    # Operator: a node drained and resumed, both in words in the audit log.
    op_loads.follow("nav >> text=Cluster")
    node = op.locator("[data-testid=nodes] .node:has(input[name=reason])").first  # in service
    name = node.locator(".name").inner_text()
    reason = f"walk {slug}: fan check"
    node.locator("input[name=reason]").fill(reason)
    op_loads.follow(node.locator("button:has-text('Drain')"))
    node = op.locator(f"[data-testid=node-{name}]")
    assert reason in node.inner_text()
    op_loads.follow(node.locator("button:has-text('Resume')"))
    assert "drained" not in op.locator(f"[data-testid=node-{name}]").inner_text()
    op_loads.follow("nav >> text=Audit log")
    rows = op.locator("[data-testid=audit-table] tbody tr")
    drained = rows.filter(has_text=reason).first.inner_text()  # the reason in the changes
    assert "drained a node" in drained and f"node {name}" in drained
    resumed = rows.filter(has_text="returned a node to service").first.inner_text()
    assert f"node {name}" in resumed
    op_loads.within(OPERATOR_BUDGET, "the operator's flow")


def test_reviewer_scores_the_review_due_on_the_dashboard(new_page: Any, portal: Any) -> None:
    title = f"Convection-permitting ensembles {uuid.uuid4().hex[:6]}"
    r = portal.api("POST", "/api/v1/proposals", "jan", json={
        "call": _research_call(portal), "project": "nordstadt-climate",
        "title": title, "gpu_type": "A100-80GB", "requested_gpu_hours": 3000})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert portal.api("POST", f"/api/v1/proposals/{pid}/submit", "jan").status_code == 200
    r = portal.api("POST", f"/api/v1/proposals/{pid}/reviewers", "operator",
                   json={"reviewer": "margot"})
    assert r.status_code == 201, r.text

    page = new_page()
    loads = PageLoads(page)
    login(page, "margot")
    loads.follow("[data-testid=work-reviews] a")
    row = page.locator("[data-testid=review-table] tr", has_text=title)
    loads.follow(row.locator("a.button"))
    loads.follow("form[data-testid=invitation-form] button[value=accept]")
    page.select_option("#f-technical_score", "4")
    page.select_option("#f-scientific_score", "3")
    page.fill("#f-comment", "Sound plan; the ensemble size needs a justification.")
    loads.follow("form[data-testid=review-form] button[type=submit]")
    assert "submitted" in page.inner_text(".flash")
    assert "submitted" in page.locator("[data-testid=review-table] tr",
                                       has_text=title).inner_text()
    loads.within(REVIEWER_BUDGET, "the reviewer's flow")


def _research_call(portal: Any) -> str:
    calls = portal.api("GET", "/api/v1/calls", "jan").json()["items"]
    return next(c["slug"] for c in calls if c["slug"].startswith("research-"))


def test_member_submits_a_job_and_follows_it_to_its_result(new_page: Any) -> None:
    page = new_page()
    loads = PageLoads(page)
    login(page, "jonas")
    card = page.locator("[data-testid=project-nordlicht-llm]")
    loads.follow(card.locator("a:has-text('Submit a job')"))
    name = f"walk-{uuid.uuid4().hex[:6]}"
    page.fill("#f-name", name)
    page.fill("#f-command", "python3 -c \"print('walk: step 1'); print('walk: done')\"")
    page.fill("#f-gpus", "1")
    page.fill("#f-walltime", "5 minutes")  # a mistake a user makes
    loads.follow("form[data-testid=submit-form] button[type=submit]")
    assert "not a duration" in page.inner_text("[data-testid=error-walltime]")
    assert page.input_value("#f-name") == name  # input kept
    page.fill("#f-walltime", "5m")
    loads.follow("form[data-testid=submit-form] button[type=submit]")
    assert re.search(r"/jobs/\d+$", page.url), page.inner_text("main")[:2000]
    # The page follows the job on its own (htmx) to its end, the log as it grows.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-state]')"
        ".innerText.includes('completed')", timeout=DEADLINE_S * 1000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stdout]').textContent"
        ".includes('walk: done')", timeout=DEADLINE_S * 1000)
    assert page.inner_text("[data-testid=exit-code]") == "0"
    assert page.locator("[data-testid=run-time]").is_visible()
    assert float(page.get_attribute("[data-testid=charged]", "data-value")) > 0
    loads.within(MEMBER_BUDGET, "the member's flow")


POLLS = """() => {
  window.polls = []; window.answered = 0;
  document.body.addEventListener('htmx:configRequest',
                                 e => window.polls.push(e.detail.path));
  document.body.addEventListener('htmx:afterRequest', () => window.answered += 1);
}"""


def test_the_cluster_view_keeps_a_drain_reason_being_typed(new_page: Any) -> None:
    """The node squares refresh every 5 s (htmx); a refresh replaced the drain forms and
    lost a reason being typed (and the focus). The page's clock is Playwright's, so the
    5 s pass without waiting for them."""
    page = new_page()
    login(page, "operator")
    page.clock.install()
    page.goto("/ops/cluster")
    page.evaluate(POLLS)
    page.clock.run_for(5_500)  # idle: the view refreshes
    page.wait_for_function("() => window.answered === 1", polling=100)
    assert page.evaluate("window.polls") == ["/ops/cluster"]
    reason = page.locator("[data-testid=nodes] .node input[name=reason]").first
    reason.focus()
    page.keyboard.type("fan")
    page.clock.run_for(5_500)  # typing a reason: no refresh
    assert page.evaluate("window.polls") == ["/ops/cluster"]
    page.evaluate("document.activeElement.blur()")
    page.clock.run_for(5_500)  # a reason typed, the focus elsewhere: still none
    assert page.evaluate("window.polls") == ["/ops/cluster"]
    assert reason.input_value() == "fan"
    reason.fill("")
    page.evaluate("document.activeElement.blur()")
    page.clock.run_for(5_500)  # the form left empty: the refreshes go on
    page.wait_for_function("() => window.answered === 2", polling=100)

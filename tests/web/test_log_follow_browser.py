"""A running job's log in Chromium: the page opens at the newest lines, follows new output,
pauses when the reader scrolls up and resumes at the end; the filter shows only matching
lines; the whole log downloads; a failed job shows its run time and last stderr lines."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from browser_helpers import login, shot

from waiting import DEADLINE_S, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("portal-browser")]


def _submit(portal: Any, name: str, command: str) -> int:
    r = portal.api("POST", "/api/v1/jobs", "greta", json={
        "name": name, "project": "nordlicht-llm", "command": command, "gpus": 1,
        "walltime": "10m"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _scrolled_to_end(page: Any, stream: str) -> bool:
    return bool(page.evaluate(
        f"() => {{ const b = document.getElementById('log-{stream}');"
        " return b.scrollHeight - b.scrollTop - b.clientHeight < 8; }"))


def test_running_log_follows_pauses_filters_and_downloads(new_page: Any, portal: Any) -> None:
    go_on = portal.data_dir.parent / "shared" / f"more-{uuid.uuid4().hex}"
    stop = portal.data_dir.parent / "shared" / f"stop-{uuid.uuid4().hex}"
    program = (
        "import os,time\n"
        "for i in range(300): print(f'line {i} loss {1/(i+1):.4f}', flush=True)\n"
        f"while not os.path.exists('{go_on}'): time.sleep(0.05)\n"
        "for i in range(300, 320): print(f'line {i} later', flush=True)\n"
        f"while not os.path.exists('{stop}'): time.sleep(0.05)\n")
    job_id = _submit(portal, "log-follow", f"python3 -c \"{program}\"")
    try:
        wait_for(lambda: "line 299" in portal.api(
            "GET", f"/api/v1/jobs/{job_id}/logs", "greta").json()["data"],
            "the job to print its first 300 lines", step=0.2)
        page = new_page()
        login(page, "greta")
        page.goto(f"/jobs/{job_id}")
        box = page.locator("#log-stdout")
        assert "line 299" in box.inner_text()
        assert _scrolled_to_end(page, "stdout"), "the newest lines are hidden below the box"
        # the reader scrolls up: following pauses (the text still grows)
        page.evaluate("() => { document.getElementById('log-stdout').scrollTop = 0; }")
        page.wait_for_function("() => document.querySelector('[data-log-status]')"
                               ".innerText.includes('Paused')", timeout=DEADLINE_S * 1000)
        go_on.touch()
        page.wait_for_function("() => document.getElementById('log-stdout')"
                               ".textContent.includes('line 319 later')",
                               timeout=DEADLINE_S * 1000)
        assert page.evaluate("() => document.getElementById('log-stdout').scrollTop") == 0
        shot(page, "log-follow-paused")
        # back at the end: following again
        page.evaluate("() => { const b = document.getElementById('log-stdout');"
                      " b.scrollTop = b.scrollHeight; }")
        page.wait_for_function("() => document.querySelector('[data-log-status]')"
                               ".innerText.includes('Following the end again')",
                               timeout=DEADLINE_S * 1000)
        page.fill("[data-log-filter]", "later")
        lines = box.inner_text().strip().splitlines()
        assert len(lines) == 20 and all("later" in line for line in lines)
        page.fill("[data-log-filter]", "")
        assert "line 0 loss" in box.inner_text()
        download = page.request.get(f"/jobs/{job_id}/log/stdout/download")
        assert download.status == 200
        assert "attachment" in download.headers["content-disposition"]
        assert download.text().count("\n") == 320
    finally:
        go_on.touch()
        stop.touch()
    page.wait_for_function("() => document.querySelector('[data-log-status]')"
                           ".innerText.includes('complete')", timeout=DEADLINE_S * 1000)


def test_failed_job_shows_run_time_exit_code_and_last_stderr_lines(new_page: Any,
                                                                    portal: Any) -> None:
    program = ("import sys\n"
               "for i in range(40): print(f'warning {i}', file=sys.stderr)\n"
               "sys.exit('CUDA error: out of memory')\n")
    job_id = _submit(portal, "log-fails", f"python3 -c \"{program}\"")
    wait_for(lambda: portal.api("GET", f"/api/v1/jobs/{job_id}", "greta").json()["state"]
             == "failed", "the job to fail", step=0.2)
    page = new_page()
    login(page, "greta")
    page.goto(f"/jobs/{job_id}")
    assert page.inner_text("[data-testid=exit-code]") == "1"
    assert page.locator("[data-testid=run-time]").is_visible()
    tail = page.inner_text("[data-testid=stderr-tail]").splitlines()
    assert tail[-1] == "CUDA error: out of memory" and len(tail) == 12
    shot(page, "log-failed-job")

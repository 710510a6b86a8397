"""The queue views serve the scheduler loop's last order instead of computing it per
request: the operator's queue page, a job's page and the REST API show the cycle's
order "as of" its time; jobs that left the queue since are dropped, jobs that joined it
since follow without a position; without a cycle (or with a stale one) the order is
computed as before."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobs_fake_backend import FakeBackend
from sqlalchemy.orm import Session

from factories import bearer, make_award, make_project, make_token, make_user
from portal_login import login as _login
from portal_login import password_hash as _hash
from rechenwerk.access.models import User
from rechenwerk.clock import FakeClock
from rechenwerk.jobs import queue_order, service
from rechenwerk.jobs.loop import ORDER_MIN_S, ORDER_REFRESH_S, SchedulerLoop
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.queue_order import MAX_AGE_S, QueueOrderBoard
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.scheduling.model import QueuedJob, QueueView


def _rows(html: str) -> list[tuple[str, int]]:
    """(position or "—", job id) of each queue row, in page order."""
    return [(p, int(j)) for p, j in re.findall(
        r'<tr>\s*<td class="num">([^<]+)</td>\s*<td><a href="/jobs/(\d+)"', html)]


def _submit(session: Session, user: User, clock: FakeClock, settings: Any, slug: str,
            name: str) -> int:
    job = service.submit(session, user, parse_spec(
        {"name": name, "project": slug, "command": ["true"], "gpus": 8, "walltime": "1h"}),
        clock=clock, settings=settings)
    session.commit()
    return job.id


def _centre(api_client: Any, session: Session) -> dict[str, Any]:
    make_user(session, username="op", operator=True, password_hash=_hash())
    pi = make_user(session, username="pia", password_hash=_hash())
    project = make_project(session, pi=pi, slug="alpha")
    make_award(session, project, gpu_hours=1e6)
    session.commit()
    runtime = api_client.app.state.runtime
    return {"pi": pi, "slug": project.slug, "runtime": runtime,
            "settings": runtime.settings}


def _no_computing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> QueueView:
        raise AssertionError("the order was computed, not taken from the cycle")

    monkeypatch.setattr(queue_order, "core_view", refuse)


def _count_computing(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = queue_order.core_view

    def counted(*a: Any, **k: Any) -> QueueView:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(queue_order, "core_view", counted)
    return calls


def test_queue_page_serves_the_cycles_order_and_handles_later_changes(
        api_client: Any, session: Session, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = _centre(api_client, session)
    ids = [_submit(session, c["pi"], clock, c["settings"], c["slug"], f"j{i}")
           for i in range(4)]
    # one 8-GPU node: the cycle starts one job, three wait in its order
    loop = SchedulerLoop(c["runtime"].session_factory, FakeBackend("1x8:A100-80GB"),
                         settings=c["settings"], clock=clock,
                         queue_orders=c["runtime"].queue_orders)
    loop.cycle()
    published = c["runtime"].queue_orders.latest(clock.now())
    assert published is not None and published.at == clock.now()
    order = [int(q.job_id) for q in published.view.jobs]
    assert len(order) == 3 and set(order) < set(ids)
    started = (set(ids) - set(order)).pop()
    assert session.get(Job, started).state != "pending"  # type: ignore[union-attr]

    _no_computing(monkeypatch)
    clock.advance(30)
    client = _login(api_client, "op")
    page = client.get("/ops/queue").text
    assert "Order as of 00:00:00 UTC" in page  # the cycle's time, not the page's
    assert _rows(page) == [(str(i), jid) for i, jid in enumerate(order, start=1)]

    # after the cycle: one waiting job is cancelled, a new one is submitted
    service.cancel(session, c["pi"], order[0], clock=clock)
    session.commit()
    late = _submit(session, c["pi"], clock, c["settings"], c["slug"], "late")
    rows = _rows(client.get("/ops/queue").text)
    assert rows == [("2", order[1]), ("3", order[2]), ("—", late)]
    assert _rows(client.get("/ops/queue?q=late").text) == [("—", late)]

    # the job's page and the API give the same place, with the order's time
    job_page = client.get(f"/jobs/{order[1]}").text
    assert "Queue position:</strong> 2 of 3" in job_page and "as of 00:00:00 UTC" in job_page
    api = api_client.get("/api/v1/queue",
                         headers=bearer(make_token(session, c["pi"]))).json()
    assert [(j["id"], j["position"]) for j in api["items"]] == [
        (order[1], 2), (order[2], 3), (late, None)]
    assert api["as_of"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat()

    # the late job is not in the cycle's order: its own page computes its place
    monkeypatch.undo()
    calls = _count_computing(monkeypatch)
    late_page = client.get(f"/jobs/{late}").text
    assert "Queue position:</strong> 3 of 3" in late_page and "as of" not in late_page
    assert calls == [1]


def test_without_a_fresh_cycle_the_order_is_computed(
        api_client: Any, session: Session, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = _centre(api_client, session)
    ids = [_submit(session, c["pi"], clock, c["settings"], c["slug"], f"j{i}")
           for i in range(3)]
    client = _login(api_client, "op")
    page = client.get("/ops/queue").text  # no cycle has run: computed for the page
    assert "Order computed for this page" in page
    assert sorted(j for _, j in _rows(page)) == ids
    assert [p for p, _ in _rows(page)] == ["1", "2", "3"]
    assert api_client.get("/api/v1/queue", headers=bearer(make_token(
        session, c["pi"]))).json()["as_of"] is None

    # an order older than MAX_AGE_S (the loop stopped) is not served either
    c["runtime"].queue_orders.publish(
        QueueView("fifo", "by submit time", tuple(QueuedJob(str(j), i) for i, j in
                                                  enumerate(reversed(ids), start=1))),
        clock.now())
    assert "Order as of" in client.get("/ops/queue").text
    clock.advance(MAX_AGE_S + 1)
    calls = _count_computing(monkeypatch)
    assert "Order computed for this page" in client.get("/ops/queue").text
    assert calls == [1]


def test_the_board_keeps_the_last_order_until_it_is_stale() -> None:
    board = QueueOrderBoard()
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert board.latest(t) is None
    board.publish(QueueView("fifo", "rule", (QueuedJob("7", 1),)), t)
    got = board.latest(t)
    assert got is not None and got.ids == frozenset({"7"}) and got.at == t
    assert board.latest(t, max_age_s=0.0) is not None
    assert board.latest(t + timedelta(seconds=11), max_age_s=10.0) is None


def test_the_loop_republishes_when_the_order_changes_or_it_ages(
        api_client: Any, session: Session, clock: FakeClock) -> None:
    c = _centre(api_client, session)
    for i in range(3):
        _submit(session, c["pi"], clock, c["settings"], c["slug"], f"j{i}")
    board = c["runtime"].queue_orders
    loop = SchedulerLoop(c["runtime"].session_factory, FakeBackend("1x8:A100-80GB"),
                         settings=c["settings"], clock=clock, queue_orders=board)
    loop.cycle()
    first = board.latest(clock.now())
    assert first is not None and len(first.view.jobs) == 2
    clock.advance(1)
    loop.cycle()  # the same order a second later: not recomputed
    assert board.latest(clock.now()) is first
    late = _submit(session, c["pi"], clock, c["settings"], c["slug"], "late")
    loop.cycle()  # a new job in the queue, but within ORDER_MIN_S of the last order
    assert board.latest(clock.now()) is first
    clock.advance(ORDER_MIN_S)
    loop.cycle()  # published now
    second = board.latest(clock.now())
    assert second is not None and second.at == clock.now() and str(late) in second.ids
    clock.advance(ORDER_REFRESH_S)
    loop.cycle()  # unchanged, but old enough: fresh priorities (the age term moved)
    third = board.latest(clock.now())
    assert third is not None and third.at == clock.now() and third.ids == second.ids


def test_a_process_without_the_loop_serves_the_order_the_leader_stored(
        api_client: Any, session: Session, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = _centre(api_client, session)
    ids = [_submit(session, c["pi"], clock, c["settings"], c["slug"], f"j{i}")
           for i in range(4)]
    # the leader is another process: its own board; only the table is shared
    leader_board = QueueOrderBoard()
    loop = SchedulerLoop(c["runtime"].session_factory, FakeBackend("1x8:A100-80GB"),
                         settings=c["settings"], clock=clock, queue_orders=leader_board)
    loop.cycle()
    published = leader_board.latest(clock.now())
    assert published is not None
    order = [int(q.job_id) for q in published.view.jobs]
    assert len(order) == 3 and set(order) < set(ids)
    assert c["runtime"].queue_orders.latest(clock.now()) is None  # this process: no cycle

    _no_computing(monkeypatch)
    clock.advance(5)
    client = _login(api_client, "op")
    page = client.get("/ops/queue").text
    assert "Order as of 00:00:00 UTC" in page
    assert _rows(page) == [(str(i), jid) for i, jid in enumerate(order, start=1)]
    api = api_client.get("/api/v1/queue",
                         headers=bearer(make_token(session, c["pi"]))).json()
    mine = {j["id"]: j for j in api["items"]}
    first = published.view.jobs[0].priority
    assert first is not None and mine[order[0]]["priority"]["fairshare"] == pytest.approx(
        first.fairshare, abs=1e-3)
    assert api["as_of"] == datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    # read again only when the leader stores a newer order
    stored = c["runtime"].queue_orders.fresh(session, clock.now())
    assert stored is not None and c["runtime"].queue_orders.fresh(
        session, clock.now()) is stored

    monkeypatch.undo()
    calls = _count_computing(monkeypatch)
    clock.advance(MAX_AGE_S)  # the leader went away: its order gets too old
    assert "Order computed for this page" in client.get("/ops/queue").text
    assert calls == [1]

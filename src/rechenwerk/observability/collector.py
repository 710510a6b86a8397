"""Gauges of the centre's state, read from the database when Prometheus scrapes.

A few aggregate queries per scrape (jobs by project and state, the queue, running
placements, active award periods, the notifier's outbox) rather than counters kept in
memory: several server processes (``--workers``) then report the same values, and a
restart loses nothing.

Label values are bounded by what the centre has, never by what clients send: ``project``
by the projects (slugs), ``award`` by the awards with an active period, ``node`` and
``gpu_type`` by the backend's inventory, ``state`` by the job states. No user, job or
token appears in a label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from rechenwerk import __version__
from rechenwerk.access.models import Project
from rechenwerk.accounting.balance import Balance, balances_at
from rechenwerk.clock import Clock
from rechenwerk.execution.base import NodeInventory
from rechenwerk.jobs.models import Job
from rechenwerk.jobs.nodes import list_nodes
from rechenwerk.jobs.states import JobState
from rechenwerk.notifications.models import OutboxMessage
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.metrics")

# The states of jobs not ended (the pending and running ones, and preempted ones about to
# be requeued); ended jobs grow without bound, so they are counted as they end instead.
LIVE_JOB_STATES = tuple(s.value for s in (JobState.PENDING, JobState.STARTING,
                                           JobState.RUNNING, JobState.PREEMPTED))
GPU_STATES = ("used", "free", "drained")

# Every family this collector yields (the Grafana dashboard's test checks against them).
STATE_METRICS = (
    "rechenwerk_build_info",
    "rechenwerk_jobs",
    "rechenwerk_queue_jobs",
    "rechenwerk_queue_gpus",
    "rechenwerk_queue_oldest_wait_seconds",
    "rechenwerk_node_gpus",
    "rechenwerk_cluster_gpus",
    "rechenwerk_award_awarded_gpu_hours",
    "rechenwerk_award_settled_gpu_hours",
    "rechenwerk_award_committed_gpu_hours",
    "rechenwerk_award_available_gpu_hours",
    "rechenwerk_notification_outbox_messages",
    "rechenwerk_notification_outbox_oldest_age_seconds",
    "rechenwerk_metrics_collect_duration_seconds",
)


class StateCollector:
    """A prometheus_client collector over the runtime's database and inventory."""

    def __init__(self, session_factory: sessionmaker[Session],
                 inventory: Callable[[], Sequence[NodeInventory]], clock: Clock) -> None:
        self.session_factory = session_factory
        self.inventory = inventory
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """The gauges, read in a transaction of their own."""
        with session_scope(self.session_factory) as session:
            families = self.families(session)
        yield from families

    def bound(self, session: Session) -> _Bound:
        """The gauges read in ``session`` (a request's transaction, which on SQLite holds
        the database lock a second transaction would wait for)."""
        return _Bound(self, session)

    def families(self, session: Session) -> list[Metric]:
        t0 = time.perf_counter()
        now = self.clock.now()
        info = InfoMetricFamily("rechenwerk_build", "The running Rechenwerk's version.")
        info.add_metric([], {"version": __version__})
        families: list[Metric] = [info]
        balances = balances_at(session, now)
        families += _jobs(session, {b.project for b in balances})
        families += _queue(session, now)
        families += self._gpus(session)
        families += _awards(balances)
        families += _outbox(session, now)
        took = GaugeMetricFamily("rechenwerk_metrics_collect_duration_seconds",
                                 "Time this scrape spent reading the state gauges.",
                                 value=time.perf_counter() - t0)
        families.append(took)
        return families

    def _gpus(self, session: Session) -> list[Metric]:
        try:
            inventory = self.inventory()
        except Exception:  # the backend's own error is counted (backend_errors_total)
            log.warning("node inventory unavailable for metrics", exc_info=True)
            return []
        per_node = GaugeMetricFamily(
            "rechenwerk_node_gpus",
            "GPUs of each node by state: used (by starting/running jobs), free, drained "
            "(idle GPUs of a drained node).",
            labels=["node", "gpu_type", "state"])
        cluster = dict.fromkeys(GPU_STATES, 0)
        for node in list_nodes(session, inventory):
            used = min(node.used_gpus, node.gpus)
            idle = node.gpus - used
            values = {"used": used, "free": 0 if node.drained else idle,
                      "drained": idle if node.drained else 0}
            for state in GPU_STATES:
                per_node.add_metric([node.name, node.gpu_type, state], values[state])
                cluster[state] += values[state]
        total = GaugeMetricFamily("rechenwerk_cluster_gpus",
                                  "GPUs of the whole inventory by state (the nodes' sum).",
                                  labels=["state"])
        for state in GPU_STATES:
            total.add_metric([state], cluster[state])
        return [per_node, total]


class _Bound:
    def __init__(self, collector: StateCollector, session: Session) -> None:
        self.collector = collector
        self.session = session

    def collect(self) -> Iterator[Metric]:
        yield from self.collector.families(self.session)


def _jobs(session: Session, active_projects: set[str]) -> list[Metric]:
    """Live jobs by project and state: only live rows are read (ended jobs are counted
    as they end, ``rechenwerk_job_state_changes_total``), and every project with live
    jobs or an active award has all live states, zeros included, so its series do not
    vanish when its last job ends."""
    counts: dict[int, dict[str, int]] = {}
    for project_id, state, n in session.execute(
        select(Job.project_id, Job.state, func.count())
        .where(Job.state.in_(LIVE_JOB_STATES)).group_by(Job.project_id, Job.state)
    ):
        counts.setdefault(int(project_id), {})[str(state)] = int(n)
    by_slug: dict[str, dict[str, int]] = {slug: {} for slug in active_projects}
    if counts:
        for project_id, slug in session.execute(
                select(Project.id, Project.slug).where(Project.id.in_(list(counts)))):
            by_slug[str(slug)] = counts[int(project_id)]
    family = GaugeMetricFamily("rechenwerk_jobs",
                               "Live jobs (pending, starting, running, preempted) by project "
                               "and state.", labels=["project", "state"])
    for slug, by_state in sorted(by_slug.items()):
        for state in LIVE_JOB_STATES:
            family.add_metric([slug, state], by_state.get(state, 0))
    return [family]


def _queue(session: Session, now: datetime) -> list[Metric]:
    n, gpus, oldest = session.execute(
        select(func.count(), func.coalesce(func.sum(Job.gpus), 0), func.min(Job.submitted_at))
        .where(Job.state == JobState.PENDING.value)
    ).one()
    jobs = GaugeMetricFamily("rechenwerk_queue_jobs",
                             "Jobs waiting in the queue (state pending).", value=int(n))
    wanted = GaugeMetricFamily("rechenwerk_queue_gpus",
                               "GPUs requested by the jobs waiting in the queue.",
                               value=int(gpus))
    wait = GaugeMetricFamily(
        "rechenwerk_queue_oldest_wait_seconds",
        "How long the longest-waiting pending job has waited since submission (0: none).",
        value=_age_s(now, oldest))
    return [jobs, wanted, wait]


def _awards(balances: Sequence[Balance]) -> list[Metric]:
    names = {
        "awarded": ("rechenwerk_award_awarded_gpu_hours",
                    "GPU-hours of the award's current period (with carry-over)."),
        "settled": ("rechenwerk_award_settled_gpu_hours",
                    "GPU-hours used (settled) in the award's current period; its rate is "
                    "the burn."),
        "committed": ("rechenwerk_award_committed_gpu_hours",
                      "GPU-hours the award's pending and running jobs may still use."),
        "available": ("rechenwerk_award_available_gpu_hours",
                      "GPU-hours left in the award's current period: awarded - settled - "
                      "committed."),
    }
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for balance in balances:
        for p in balance.periods:
            key = (balance.project, str(p.award_id), p.gpu_type)
            v = values.setdefault(key, dict.fromkeys(names, 0.0))
            v["awarded"] += p.awarded_gpu_hours
            v["settled"] += p.settled_gpu_hours
            v["committed"] += p.committed_gpu_hours
            v["available"] += p.available_gpu_hours
    out: list[Metric] = []
    for what, (name, doc) in names.items():
        family = GaugeMetricFamily(name, doc, labels=["project", "award", "gpu_type"])
        for key, v in sorted(values.items()):
            family.add_metric(list(key), v[what])
        out.append(family)
    return out


def _outbox(session: Session, now: datetime) -> list[Metric]:
    depth = {"queued": 0, "gave_up": 0}
    oldest: Any = None
    for gave_up, n, first in session.execute(
        select(OutboxMessage.gave_up, func.count(), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.sent_at.is_(None)).group_by(OutboxMessage.gave_up)
    ):
        depth["gave_up" if gave_up else "queued"] += int(n)
        if not gave_up:
            oldest = first
    family = GaugeMetricFamily(
        "rechenwerk_notification_outbox_messages",
        "Notifications not sent: queued (waiting or retrying) or gave_up (retries used up).",
        labels=["state"])
    for state, n in depth.items():
        family.add_metric([state], n)
    age = GaugeMetricFamily(
        "rechenwerk_notification_outbox_oldest_age_seconds",
        "Age of the oldest queued notification (0: none).", value=_age_s(now, oldest))
    return [family, age]


def _age_s(now: datetime, since: datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0

"""What a server process counts as it works: HTTP request latency, job submissions and
state changes, scheduler cycle phases, backend errors (docs/operations.md, "Metrics").

These live in the process. With ``rechenwerk server --workers N`` (N > 1) the server sets
``PROMETHEUS_MULTIPROC_DIR`` before its workers start, and prometheus_client's
multiprocess mode sums them over the workers, so whichever worker answers a scrape
reports the same totals. The centre's state (jobs, queue, GPUs, balances) is not counted
here: ``collector.py`` reads it from the database at scrape time.

Labels take values from small fixed sets only (HTTP method, route TEMPLATE, status
class, phase, backend, operation, outcome): never a raw path, user, job or token.

This module imports nothing of Rechenwerk, so every layer may use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# No ``*_created`` series beside every counter and histogram: they double the series and
# no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]
# The process's own instruments (not prometheus_client's global REGISTRY: nothing a
# library registers there ends up on /metrics by accident).
INSTRUMENTS = CollectorRegistry(auto_describe=True)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # no route matched (404): the path itself is never a label
SUBMISSION_OUTCOMES = ("accepted", "over_budget", "duplicate", "refused")

HTTP_REQUEST_SECONDS = Histogram(
    "rechenwerk_http_request_duration_seconds",
    "Time from a request's arrival until its response was sent, by route template.",
    ["method", "route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=INSTRUMENTS,
)
SUBMISSION_SECONDS = Histogram(
    "rechenwerk_job_submission_duration_seconds",
    "Job submissions (API and portal) by outcome, and the time the service took to "
    "decide (authorise, balance check, insert).",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=INSTRUMENTS,
)
_PHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                  2.5, 5.0, 10.0)
SCHEDULER_PHASE_SECONDS = Histogram(
    "rechenwerk_scheduler_phase_duration_seconds",
    "Time of each phase of the scheduler loop's cycles.",
    ["phase"],
    buckets=_PHASE_BUCKETS,
    registry=INSTRUMENTS,
)
SCHEDULER_CYCLE_SECONDS = Histogram(
    "rechenwerk_scheduler_cycle_duration_seconds",
    "Time of whole scheduler cycles (the leader's loop).",
    buckets=_PHASE_BUCKETS,
    registry=INSTRUMENTS,
)
SCHEDULER_LAST_CYCLE = Gauge(
    "rechenwerk_scheduler_last_cycle_timestamp_seconds",
    "Unix time at which the last scheduler cycle ended.",
    multiprocess_mode="max",
    registry=INSTRUMENTS,
)
SCHEDULER_CYCLE_FAILURES = Counter(
    "rechenwerk_scheduler_cycle_failures_total",
    "Scheduler cycles that raised (logged; the next cycle retries).",
    registry=INSTRUMENTS,
)
JOB_STATE_CHANGES = Counter(
    "rechenwerk_job_state_changes_total",
    "Jobs that entered each state (ends, preemptions, requeues, starts; a submission's "
    "first pending is a submission), counted when the change is written.",
    ["state"],
    registry=INSTRUMENTS,
)
BACKEND_ERRORS = Counter(
    "rechenwerk_backend_errors_total",
    "Calls of the execution backend that raised, by backend and operation.",
    ["backend", "operation"],
    registry=INSTRUMENTS,
)

for _outcome in SUBMISSION_OUTCOMES:  # series exist (at 0) before the first submission
    SUBMISSION_SECONDS.labels(_outcome)
SCHEDULER_CYCLE_FAILURES.inc(0)


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """One HTTP request: ``route`` is the matched route's template (``/api/v1/jobs/{job_id}``)
    or None when nothing matched; methods outside the standard ones count as ``other``."""
    status_class = f"{status // 100}xx" if 100 <= status <= 599 else "other"
    HTTP_REQUEST_SECONDS.labels(method if method in HTTP_METHODS else "other",
                                route or UNMATCHED_ROUTE, status_class).observe(seconds)


def observe_submission(outcome: str, seconds: float) -> None:
    if outcome not in SUBMISSION_OUTCOMES:
        raise ValueError(f"unknown submission outcome {outcome!r}")
    SUBMISSION_SECONDS.labels(outcome).observe(seconds)


def init_phases(phases: Iterable[str]) -> None:
    """Create the phases' series (at 0), so a dashboard shows every phase from the start."""
    for phase in phases:
        SCHEDULER_PHASE_SECONDS.labels(phase)


def observe_phase(phase: str, seconds: float) -> None:
    SCHEDULER_PHASE_SECONDS.labels(phase).observe(seconds)


def observe_cycle(seconds: float) -> None:
    SCHEDULER_CYCLE_SECONDS.observe(seconds)
    SCHEDULER_LAST_CYCLE.set(time.time())


def count_cycle_failure() -> None:
    SCHEDULER_CYCLE_FAILURES.inc()


def init_job_states(states: Iterable[str]) -> None:
    for state in states:
        JOB_STATE_CHANGES.labels(state)


def count_state_change(state: str) -> None:
    JOB_STATE_CHANGES.labels(state).inc()


def count_backend_error(backend: str, operation: str) -> None:
    BACKEND_ERRORS.labels(backend, operation).inc()


# --- exposition ----------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Forward:
    """A registry's metrics, forwarded into another registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """What one scrape shows: this process's instruments (summed over every worker in
    multiprocess mode; with the process's CPU, memory and GC metrics otherwise) and
    ``collectors`` (the database state)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(INSTRUMENTS))
        for default in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(default)
    for collector in collectors:
        registry.register(collector)
    return registry

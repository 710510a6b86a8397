"""Small fluent builders for scheduler tests: ``job("a").gpus(8).project("p")``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from rechenwerk.scheduling import Node, PendingJob, ProjectInfo, RunningJob, Snapshot


class JobBuilder:
    def __init__(self, job_id: str) -> None:
        self._id = job_id
        self._kw: dict[str, object] = {}

    def gpus(self, n: int) -> JobBuilder:
        self._kw["gpus"] = n
        return self

    def project(self, p: str) -> JobBuilder:
        self._kw["project"] = p
        return self

    def qos(self, q: str) -> JobBuilder:
        self._kw["qos"] = q
        return self

    def shape(self, nodes: int, gpus_per_node: int) -> JobBuilder:
        self._kw.update(nodes=nodes, gpus_per_node=gpus_per_node, gpus=nodes * gpus_per_node)
        return self

    def walltime(self, s: float) -> JobBuilder:
        self._kw["walltime_s"] = s
        return self

    def submit(self, t: float) -> JobBuilder:
        self._kw["submit_time"] = t
        return self

    def gpu_type(self, t: str) -> JobBuilder:
        self._kw["gpu_type"] = t
        return self

    def attained(self, gpu_s: float) -> JobBuilder:
        self._kw["attained_gpu_s"] = gpu_s
        return self

    def pinned(self) -> JobBuilder:
        self._kw["preemptible"] = False
        return self

    def build(self) -> PendingJob:
        return PendingJob(self._id, **self._kw)  # type: ignore[arg-type]

    def running(self, start: float, *on: tuple[str, Iterable[int]]) -> RunningJob:
        p = self.build()
        placement = tuple((n, tuple(g)) for n, g in on)
        assert sum(len(g) for _, g in placement) == p.gpus, "placement must match gpus"
        return RunningJob(
            p.job_id,
            p.project,
            p.gpus,
            placement,
            start,
            p.walltime_s,
            p.qos,
            p.submit_time,
            p.attained_gpu_s,
            p.preemptible,
        )


def job(job_id: str) -> JobBuilder:
    return JobBuilder(job_id)


def cluster(
    n: int,
    gpus: int = 8,
    *,
    per_block: int | None = None,
    gpu_type: str = "gpu",
    prefix: str = "node",
    down: Iterable[str] = (),
) -> tuple[Node, ...]:
    down = set(down)
    return tuple(
        Node(
            f"{prefix}{i}",
            gpus,
            gpu_type,
            f"b{(i - 1) // per_block}" if per_block else "b0",
            f"{prefix}{i}" not in down,
        )
        for i in range(1, n + 1)
    )


def snap(
    now: float,
    nodes: tuple[Node, ...],
    running: Iterable[RunningJob] = (),
    pending: Iterable[JobBuilder | PendingJob] = (),
    projects: Mapping[str, ProjectInfo] | None = None,
) -> Snapshot:
    pend = tuple(p.build() if isinstance(p, JobBuilder) else p for p in pending)
    return Snapshot(now, nodes, tuple(running), pend, dict(projects or {}))


def gpus_of(placement: tuple[tuple[str, tuple[int, ...]], ...]) -> set[tuple[str, int]]:
    return {(n, g) for n, gs in placement for g in gs}


INF = math.inf

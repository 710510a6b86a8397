"""Which cluster a job goes to (several clusters: execution/clusters.py).

A pure choice, made at hand-over for a job that names no cluster: the candidates are the
available clusters that offer the job's GPU type and where its project has an award valid
there (an award without a cluster is valid on every cluster offering its GPU type); of
them the one where the job is expected to start soonest, then by name. A job that names
a cluster goes there or waits for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Expected starts this close count as the same (Slurm's estimates move by seconds
# between two calls): then the first cluster by name.
START_GRAIN_S = 60.0


@dataclass(frozen=True, slots=True)
class ClusterOption:
    """What the choice knows about one cluster for one job."""

    name: str
    available: bool
    reason: str | None = None  # why not available
    offers_gpu_type: bool = True
    budget: bool = True  # the job's project has an award valid on this cluster
    # Seconds from now to the job's expected start there (0: at once); None: unknown,
    # sorted after every known figure.
    expected_start_s: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    cluster: str | None  # None: the job waits
    reason: str | None = None  # why it waits


def choose_cluster(options: Sequence[ClusterOption], requested: str | None = None) -> Route:
    """The cluster for one job, or why it waits."""
    if requested is not None:
        chosen = next((o for o in options if o.name == requested), None)
        if chosen is None:
            return Route(None, f"cluster {requested} is not declared any more")
        if not chosen.available:
            return Route(None, f"cluster {requested} is unavailable: {chosen.reason or '?'}")
        return Route(requested)
    fitting = [o for o in options if o.offers_gpu_type]
    if not fitting:
        return Route(None, "no cluster offers the job's GPU type")
    funded = [o for o in fitting if o.budget]
    if not funded:
        return Route(None, "the project has no award valid on a cluster that offers the "
                           "job's GPU type")
    up = [o for o in funded if o.available]
    if not up:
        why = "; ".join(f"{o.name}: {o.reason or '?'}" for o in funded)
        return Route(None, f"every cluster the job fits is unavailable ({why})")
    best = min(up, key=lambda o: (o.expected_start_s is None,
                                  math.ceil((o.expected_start_s or 0.0) / START_GRAIN_S),
                                  o.name))
    return Route(best.name)

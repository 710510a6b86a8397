"""A Slurm job's consumed energy (``ConsumedEnergy``, joules) from ``sacct --json`` /
slurmdbd ``/jobs`` documents, v0.0.38 to v0.0.42.

Slurm measures it only where an ``AcctGatherEnergyType`` plugin runs (IPMI, RAPL, the GPU
plugin); without one it reports 0 or leaves it unset. Where it is, read from Slurm's own
source (read, not copied):

* the job's figure is the ``energy`` TRES of its allocation (``tres.allocated``,
  ``{"type": "energy", "count": <J>}``): slurmctld adds each finished step's consumed
  energy to it (stepmgr), and ``sacct``'s ConsumedEnergy of the job line is that count;
* each step's own figure is ``statistics.energy.consumed`` (v0.0.38: a plain number;
  v0.0.40 and later: ``{"set", "infinite", "number"}``); the job's figure is their sum,
  which is read when the allocation carries none (slurmdbd documents with steps).

Not the steps' ``tres.consumed.total``: jobacct_gather keeps the energy in the *read*
usage (``tres.requested``, TRESUsageIn*) and the current power in watts in the *write*
usage (``tres.consumed``, TRESUsageOut*). A count at or above 2^63 is Slurm's NO_VAL64 /
INFINITE64: none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rechenwerk.execution.slurm import slurm_numbers as num

_NONE_FROM = 1 << 63  # NO_VAL64 / INFINITE64 and the like


def _joules(value: Any) -> float | None:
    n = num.number(value)
    if n is None or n <= 0 or n >= _NONE_FROM:
        return None
    return float(n)


def _allocated_energy(tres: Any) -> float | None:
    if not isinstance(tres, Mapping):
        return None
    for t in tres.get("allocated") or []:
        if isinstance(t, Mapping) and t.get("type") == "energy":
            return _joules(t.get("count"))
    return None


def _step_energy(step: Mapping[str, Any]) -> float | None:
    stats = step.get("statistics")
    energy = stats.get("energy") if isinstance(stats, Mapping) else None
    return _joules(energy.get("consumed")) if isinstance(energy, Mapping) else None


def consumed_energy_j(job: Mapping[str, Any]) -> float | None:
    """The job's consumed energy in joules; None when the cluster recorded none."""
    allocated = _allocated_energy(job.get("tres"))
    if allocated is not None:
        return allocated
    steps = [s for s in job.get("steps") or [] if isinstance(s, Mapping)]
    per_step = [e for e in (_step_energy(s) for s in steps) if e is not None]
    return sum(per_step) if per_step else None

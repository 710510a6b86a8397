"""The scheduling settings of a ``slurm.conf``, for configuring the simulator like a real
Slurm controller (``rechenwerk twin validate``; docs/scheduling.md "Fidelity").

Reads only what decides *when* jobs start: ``SchedulerType`` / ``PriorityType`` (which
policy), the multifactor weights, ``PriorityMaxAge`` / ``PriorityDecayHalfLife`` /
``PriorityCalcPeriod``, ``SchedulerParameters`` (``bf_interval``, ``bf_max_job_test``,
``bf_resolution``, ``sched_interval``, ``sched_min_interval``, ``batch_sched_delay``) and
the nodes' CPUs and GPUs (``Gres=gpu[:TYPE]:N``). Where a key is absent, Slurm 22.05's
documented default applies (``DEFAULTS``). Pure: text in, settings out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.model import ClusterSpec, Node
from rechenwerk.scheduling.params import PolicyParams

DEFAULT_PATH = Path("/etc/slurm/slurm.conf")

# Slurm 22.05 defaults (slurm.conf(5)) of every key read here, as the file would spell them.
DEFAULTS: dict[str, str] = {
    "schedulertype": "sched/backfill",
    "prioritytype": "priority/basic",
    "priorityweightage": "0",
    "priorityweightfairshare": "0",
    "priorityweightjobsize": "0",
    "priorityweightqos": "0",
    "prioritymaxage": "7-0",
    "prioritydecayhalflife": "7-0",
    "prioritycalcperiod": "5",
}
# SchedulerParameters defaults (seconds, counts); sched_min_interval is in microseconds.
SCHED_DEFAULTS: dict[str, float] = {
    "bf_interval": 30.0,
    "bf_max_job_test": 500.0,
    "bf_resolution": 60.0,
    "sched_interval": 60.0,
    "sched_min_interval": 2.0,
    "batch_sched_delay": 3.0,
}

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_GPU_GRES = re.compile(r"^gpu(?::([A-Za-z0-9_.\-]+))?:(\d+)")


def slurm_duration_s(text: str, *, key: str) -> float:
    """Slurm's time format (``minutes``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in
    seconds. A bare number means minutes, as for PriorityCalcPeriod and PriorityMaxAge."""
    m = _TIME.match(text.strip())
    if not m:
        raise InvalidInput(
            f"slurm.conf: {key}={text!r} is not a Slurm time",
            field="slurm_conf",
            hint="use minutes, MM:SS, HH:MM:SS or D-HH:MM:SS",
        )
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        return int(days) * 86400.0 + int(a) * 3600.0 + int(b or 0) * 60.0 + int(c or 0)
    if c is not None:
        return int(a) * 3600.0 + int(b) * 60.0 + int(c)
    if b is not None:
        return int(a) * 60.0 + int(b)
    return int(a) * 60.0


def _expand_nodes(expr: str) -> list[str]:
    """``node[1-2,5]`` -> node1, node2, node5 (one bracket group per name suffices for
    NodeName lines; anything else is refused with the expression named)."""
    out: list[str] = []
    for item in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", expr):
        m = re.fullmatch(r"([^\[]*)\[([^\]]+)\](.*)", item)
        if not m:
            out.append(item)
            continue
        prefix, body, tail = m.groups()
        for rng in body.split(","):
            lo, _, hi = rng.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise InvalidInput(f"slurm.conf: bad node range {expr!r}", field="slurm_conf")
            out.extend(f"{prefix}{i:0{len(lo)}d}{tail}" for i in range(int(lo), int(hi or lo) + 1))
    return out


@dataclass(frozen=True, slots=True)
class SlurmNode:
    name: str
    cpus: int
    gpus: int
    gpu_type: str | None


@dataclass(frozen=True, slots=True)
class SlurmConf:
    """``keys``: every ``Key=Value`` outside NodeName/PartitionName lines (lower-case keys,
    last one wins, as in Slurm); ``defaulted``: the keys read here that the file lacks."""

    source: str
    keys: dict[str, str]
    nodes: tuple[SlurmNode, ...]
    sched: dict[str, float] = field(default_factory=dict)
    defaulted: tuple[str, ...] = ()

    def get(self, key: str) -> str:
        return self.keys.get(key.lower(), DEFAULTS.get(key.lower(), ""))

    @property
    def policy(self) -> str:
        """The simulator's policy for SchedulerType x PriorityType. Slurm's sched/backfill
        plans a reservation for every job it tests: conservative backfill."""
        ordering = "multifactor" if self.get("PriorityType") == "priority/multifactor" else ""
        sched = self.get("SchedulerType")
        if sched == "sched/backfill":
            return f"{ordering}+conservative-backfill" if ordering else "conservative-backfill"
        if sched == "sched/builtin":
            return ordering or "fifo"
        raise InvalidInput(
            f"{self.source}: SchedulerType={sched!r} has no simulator equivalent",
            field="slurm_conf",
            hint="sched/backfill and sched/builtin are modelled",
        )

    def params(self) -> PolicyParams:
        """PolicyParams with Slurm's values. PriorityDecayHalfLife=0 means no decay (usage
        accumulates until PriorityUsageResetPeriod): an infinite half-life here."""
        half = slurm_duration_s(self.get("PriorityDecayHalfLife"), key="PriorityDecayHalfLife")
        return PolicyParams(
            bf_interval_s=self.sched["bf_interval"],
            bf_max_job_test=int(self.sched["bf_max_job_test"]),
            weight_age=float(self.get("PriorityWeightAge")),
            weight_fairshare=float(self.get("PriorityWeightFairshare")),
            weight_jobsize=float(self.get("PriorityWeightJobSize")),
            weight_qos=float(self.get("PriorityWeightQOS")),
            max_age_s=slurm_duration_s(self.get("PriorityMaxAge"), key="PriorityMaxAge"),
            fairshare_half_life_s=half if half > 0 else math.inf,
            priority_calc_period_s=slurm_duration_s(
                self.get("PriorityCalcPeriod"), key="PriorityCalcPeriod"
            ),
            checkpoint_interval_s=None,
        )

    def nodes_with_gpus(self) -> list[SlurmNode]:
        gpu_nodes = [n for n in self.nodes if n.gpus > 0]
        if not gpu_nodes:
            raise InvalidInput(
                f"{self.source}: no NodeName line with Gres=gpu:N", field="slurm_conf"
            )
        return gpu_nodes

    def cluster(self) -> ClusterSpec:
        gpu_nodes = self.nodes_with_gpus()
        return ClusterSpec(
            tuple(Node(n.name, n.gpus, n.gpu_type or "gpu", "b0") for n in gpu_nodes)
        )


def _weights_numeric(keys: dict[str, str], source: str) -> None:
    for k in (
        "priorityweightage",
        "priorityweightfairshare",
        "priorityweightjobsize",
        "priorityweightqos",
    ):
        v = keys.get(k)
        if v is not None and not v.isdigit():
            raise InvalidInput(
                f"{source}: {k}={v!r} is not a non-negative integer", field="slurm_conf"
            )


def parse_slurm_conf(text: str, source: str = "slurm.conf") -> SlurmConf:
    keys: dict[str, str] = {}
    nodes: list[SlurmNode] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pairs: dict[str, str] = {}
        for tok in line.split():
            k, sep, v = tok.partition("=")
            if not sep:
                raise InvalidInput(
                    f"{source}:{lineno}: expected Key=Value, got {tok!r}", field="slurm_conf"
                )
            pairs[k.lower()] = v
        if "nodename" in pairs:
            if pairs["nodename"].upper() == "DEFAULT":
                continue
            gpus, gtype = 0, None
            for g in pairs.get("gres", "").split(","):
                m = _GPU_GRES.match(g)
                if m:
                    gtype, gpus = m.group(1), int(m.group(2))
            cpus = pairs.get("cpus", "1")
            if not cpus.isdigit():
                raise InvalidInput(
                    f"{source}:{lineno}: CPUs={cpus!r} is not a number", field="slurm_conf"
                )
            nodes.extend(
                SlurmNode(n, int(cpus), gpus, gtype) for n in _expand_nodes(pairs["nodename"])
            )
        elif "partitionname" in pairs:
            continue
        else:
            keys.update(pairs)
    _weights_numeric(keys, source)
    sched = dict(SCHED_DEFAULTS)
    for opt in filter(None, keys.get("schedulerparameters", "").split(",")):
        k, _, v = opt.partition("=")
        if k in sched and v:
            try:
                sched[k] = float(v)
            except ValueError:
                raise InvalidInput(
                    f"{source}: SchedulerParameters {k}={v!r} is not a number", field="slurm_conf"
                ) from None
    defaulted = tuple(sorted({*DEFAULTS} - set(keys)))
    return SlurmConf(source, keys, tuple(nodes), sched, defaulted)


def read_slurm_conf(path: Path = DEFAULT_PATH) -> SlurmConf:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror}", field="slurm_conf", hint="pass --slurm-conf PATH"
        ) from exc
    return parse_slurm_conf(text, str(path))

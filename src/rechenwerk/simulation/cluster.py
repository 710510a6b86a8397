"""Cluster descriptions for the simulator: ``"56x8"``, ``"56x8:H100"`` or a YAML file.

Shorthand ``NxG[:TYPE]``: N nodes named ``node1..nodeN`` with G GPUs each, all in one
topology block. A YAML file describes groups of identical nodes and/or single nodes::

    groups:
      - count: 32          # nodes
        gpus: 8            # GPUs per node
        gpu_type: H100     # optional, default "gpu"
        nodes_per_block: 8 # optional: leaf-switch size; default: the group is one block
        prefix: node       # optional, default "node"; numbering continues across groups
    nodes:
      - {name: fat1, gpus: 8, gpu_type: H200, block: fat}
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.model import ClusterSpec, Node

# Upper bounds on a simulated cluster (docs/scheduling.md, docs/security.md): far above
# any real centre, low enough that building the node list cannot exhaust memory.
MAX_CLUSTER_NODES = 100_000
MAX_GPUS_PER_NODE = 256
MAX_CLUSTER_GPUS = 1_000_000

_SHORT = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?::\s*([A-Za-z0-9_.\-]+))?\s*$")
_HINT = (
    'use "NODESxGPUS" such as "56x8", "56x8:H100", or a YAML file with `groups:` '
    "(count, gpus, gpu_type, nodes_per_block) and/or `nodes:` (name, gpus, gpu_type, block)"
)


def uniform_cluster(nodes: int, gpus: int, gpu_type: str = "gpu") -> ClusterSpec:
    return ClusterSpec(tuple(Node(f"node{i}", gpus, gpu_type, "b0") for i in range(1, nodes + 1)))


def load_cluster(spec: str) -> ClusterSpec:
    m = _SHORT.match(spec)
    if m:
        # more digits than any bound: refuse before int() (which refuses 4,300+ digits)
        n, g = (int(x) if len(x) <= 12 else 10**12 for x in (m.group(1), m.group(2)))
        # (10**12 only stands for "too many"; the message names the limit, not the value)
        if n < 1 or g < 1:
            raise InvalidInput(
                f"cluster {spec!r} needs at least 1 node and 1 GPU per node",
                field="cluster",
                hint=_HINT,
            )
        _check_size(n, g, n * g, f"cluster {spec!r}")
        return uniform_cluster(n, g, m.group(3) or "gpu")
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(
            f"cluster {spec!r} is neither NODESxGPUS nor an existing YAML file",
            field="cluster",
            hint=_HINT,
        )
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"cannot read cluster file {path}: {exc}", field="cluster", hint=_HINT
        ) from exc
    except RecursionError:
        raise InvalidInput(
            f"cluster file {path} is nested too deeply", field="cluster", hint=_HINT
        ) from None
    return _from_yaml(data, str(path))


def _check_size(nodes: int, gpus_per_node: int, total_gpus: int, where: str) -> None:
    """Refuse clusters beyond the documented bounds, naming the bound."""
    for value, limit, what in (
        (nodes, MAX_CLUSTER_NODES, "nodes"),
        (gpus_per_node, MAX_GPUS_PER_NODE, "GPUs per node"),
        (total_gpus, MAX_CLUSTER_GPUS, "GPUs in total"),
    ):
        if value > limit:
            raise InvalidInput(
                f"{where} has more {what} than the limit of {limit:,}",
                field="cluster",
                hint=f"a simulated cluster has at most {MAX_CLUSTER_NODES:,} nodes, "
                f"{MAX_GPUS_PER_NODE} GPUs per node and {MAX_CLUSTER_GPUS:,} GPUs",
            )


def _int(d: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidInput(
            f"{where}: '{key}' must be a positive integer, got {v!r}", field="cluster", hint=_HINT
        )
    return v


def _str(d: dict[str, Any], key: str, where: str, default: str) -> str:
    v = d.get(key, default)
    if not isinstance(v, (str, int)) or str(v).strip() == "":
        raise InvalidInput(
            f"{where}: '{key}' must be a non-empty string, got {v!r}", field="cluster", hint=_HINT
        )
    return str(v)


def _from_yaml(data: Any, where: str) -> ClusterSpec:
    if not isinstance(data, dict) or not (data.get("groups") or data.get("nodes")):
        raise InvalidInput(
            f"{where}: expected a mapping with 'groups' and/or 'nodes'", field="cluster", hint=_HINT
        )
    unknown = set(data) - {"groups", "nodes", "name"}
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)}", field="cluster", hint=_HINT)
    nodes: list[Node] = []
    total = 0  # GPUs so far
    counters: dict[str, int] = {}
    for gi, grp in enumerate(data.get("groups") or []):
        w = f"{where}: groups[{gi}]"
        if not isinstance(grp, dict):
            raise InvalidInput(f"{w}: expected a mapping", field="cluster", hint=_HINT)
        count = _int(grp, "count", w)
        gpus = _int(grp, "gpus", w)
        gtype = _str(grp, "gpu_type", w, "gpu")
        prefix = _str(grp, "prefix", w, "node")
        per_block = _int(grp, "nodes_per_block", w, count)
        total += count * gpus
        _check_size(len(nodes) + count, gpus, total, w)
        for k in range(count):
            counters[prefix] = counters.get(prefix, 0) + 1
            block = f"g{gi}-b{k // per_block}"
            nodes.append(Node(f"{prefix}{counters[prefix]}", gpus, gtype, block))
    for ni, nd in enumerate(data.get("nodes") or []):
        w = f"{where}: nodes[{ni}]"
        if not isinstance(nd, dict):
            raise InvalidInput(f"{w}: expected a mapping", field="cluster", hint=_HINT)
        total += _int(nd, "gpus", w)
        _check_size(len(nodes) + 1, _int(nd, "gpus", w), total, w)
        nodes.append(
            Node(
                _str(nd, "name", w, ""),
                _int(nd, "gpus", w),
                _str(nd, "gpu_type", w, "gpu"),
                _str(nd, "block", w, "b0"),
            )
        )
    counts = Counter(n.name for n in nodes)  # (list.count per name was quadratic)
    dup = sorted(x for x, c in counts.items() if c > 1)
    if dup:
        raise InvalidInput(
            f"{where}: duplicate node names {dup[:5]}",
            field="cluster",
            hint="give every node a unique name (or distinct group prefixes)",
        )
    return ClusterSpec(tuple(nodes))

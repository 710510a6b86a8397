"""Advance reservations of a simulated cluster, from a YAML file (``rechenwerk simulate
--reservations FILE``)::

    reservations:
      - name: rack-maintenance
        start: 2d            # from the trace start: seconds or 90m / 4h / 2d
        duration: 6h         # or end: 2d6h
        nodes: [node1, node2]
        maintenance: true
      - name: hero
        start: 86400
        end: 3d
        gpus: 32             # a count (optionally gpu_type: H100), packed on few nodes
        projects: [vision]

Trace jobs name no reservation, so in a replay every reservation holds its GPUs against
the whole trace (as maintenance does): what the scheduler loses to them is measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput
from rechenwerk.scheduling.model import ClusterSpec, Reservation
from rechenwerk.scheduling.reservations import ReservationError, resolve_gpus

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_HINT = "see docs/scheduling.md, 'Advance reservations in the simulator'"


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: expected seconds or a duration like 4h", field="reservations")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    parts = _PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise InvalidInput(f"{where}: cannot read {value!r} as a time (seconds, 90m, 4h, 2d)",
                           field="reservations", hint=_HINT)
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_reservations(data: Any, cluster: ClusterSpec, where: str) -> tuple[Reservation, ...]:
    items = data.get("reservations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InvalidInput(f"{where}: expected a mapping with a list 'reservations'",
                           field="reservations", hint=_HINT)
    out: list[Reservation] = []
    allowed = {"name", "start", "end", "duration", "nodes", "gpus", "gpu_type", "projects",
               "maintenance"}
    for k, item in enumerate(items):
        w = f"{where}: reservations[{k}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{w}: expected a mapping", field="reservations", hint=_HINT)
        unknown = set(item) - allowed
        if unknown:
            raise InvalidInput(f"{w}: unknown keys {sorted(unknown)}", field="reservations",
                               hint=_HINT)
        name = str(item.get("name") or f"resv{k}")
        if any(r.name == name for r in out):
            raise InvalidInput(f"{w}: the name {name!r} is used twice", field="reservations")
        start = _seconds(item.get("start", 0), f"{w}.start")
        if ("end" in item) == ("duration" in item):
            raise InvalidInput(f"{w}: give either 'end' or 'duration'", field="reservations",
                               hint=_HINT)
        end = (_seconds(item["end"], f"{w}.end") if "end" in item
               else start + _seconds(item["duration"], f"{w}.duration"))
        projects = item.get("projects") or []
        maintenance = bool(item.get("maintenance", False))
        if not isinstance(projects, list) or (maintenance == bool(projects)):
            raise InvalidInput(f"{w}: give either a list of 'projects' or 'maintenance: true'",
                               field="reservations", hint=_HINT)
        nodes = item.get("nodes") or []
        gpus = item.get("gpus")
        if not isinstance(nodes, list) or (gpus is not None and (
                isinstance(gpus, bool) or not isinstance(gpus, int))):
            raise InvalidInput(f"{w}: 'nodes' is a list of names, 'gpus' a whole number",
                               field="reservations", hint=_HINT)
        try:
            held = resolve_gpus(cluster.nodes, out, start, end, count=gpus,
                                gpu_type=item.get("gpu_type"),
                                node_names=[str(n) for n in nodes])
        except ReservationError as exc:
            raise InvalidInput(f"{w}: {exc}", field="reservations", hint=_HINT) from None
        out.append(Reservation(name, start, end, held, frozenset(map(str, projects)),
                               maintenance))
    return tuple(out)


def load_reservations(path: Path, cluster: ClusterSpec) -> tuple[Reservation, ...]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise InvalidInput(f"cannot read reservations file {path}: {exc}",
                           field="reservations", hint=_HINT) from None
    return parse_reservations(data, cluster, str(path))

"""The Grafana dashboard in deploy/grafana/ as its tests read it: every PromQL
expression (panels' targets, template variables) and the metric names they use."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "rechenwerk.json"
# What Grafana fills in before it sends a query
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$project": ".*"}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def as_sent(expr: str) -> str:
    """``expr`` with Grafana's variables filled in, as Prometheus receives it."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"label_values\((\w+), \w+\)", r"\1", expr)


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\brechenwerk_[a-z0-9_]+", expr))

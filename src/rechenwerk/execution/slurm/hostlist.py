"""Slurm hostlist expressions (``node[1-3,7],gpu-a[01-02]``) to node names."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top(expr: str) -> list[str]:
    """Split at commas that are not inside brackets."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def _expand_one(item: str) -> list[str]:
    open_at = item.find("[")
    if open_at < 0:
        return [item]
    close_at = item.index("]", open_at)
    prefix, body, rest = item[:open_at], item[open_at + 1 : close_at], item[close_at + 1 :]
    tails = _expand_one(rest) if rest else [""]
    names: list[str] = []
    for rng in body.split(","):
        m = _RANGE.match(rng.strip())
        if not m:
            raise ValueError(f"bad hostlist range {rng!r} in {item!r}")
        lo_s, hi_s = m.group(1), m.group(2) or m.group(1)
        width = len(lo_s)
        for i in range(int(lo_s), int(hi_s) + 1):
            names.extend(f"{prefix}{i:0{width}d}{tail}" for tail in tails)
    return names


def expand_hostlist(expr: str | None) -> tuple[str, ...]:
    """``"node[1-2],gpu5"`` -> ``("node1", "node2", "gpu5")``; empty/None -> ``()``."""
    if not expr or expr in ("(null)", "None assigned"):
        return ()
    out: list[str] = []
    for item in _split_top(expr):
        out.extend(_expand_one(item))
    return tuple(out)

"""Nodes as operators see them (GPUs, what runs there, drained or not) and draining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rechenwerk.access.audit import record
from rechenwerk.access.models import User
from rechenwerk.errors import NotFound
from rechenwerk.jobs.models import Job, NodeState
from rechenwerk.jobs.states import ACTIVE_STATES
from rechenwerk.jobs.wakeup import wake_after_commit


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    gpus: int
    gpu_type: str
    block: str
    used_gpus: int
    drained: bool
    drain_reason: str | None
    jobs: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        state = "drained" if self.drained else ("busy" if self.used_gpus else "idle")
        return {"name": self.name, "gpus": self.gpus, "gpu_type": self.gpu_type,
                "block": self.block, "used_gpus": self.used_gpus,
                "free_gpus": 0 if self.drained else self.gpus - self.used_gpus,
                "state": state, "drained": self.drained, "drain_reason": self.drain_reason,
                "jobs": list(self.jobs)}


def list_nodes(session: Session, inventory: Sequence[Any]) -> list[NodeView]:
    """GPU usage per node of the backend's inventory, with the operator's drain state."""
    drains = {n.name: n for n in session.scalars(select(NodeState))}
    used: dict[str, int] = {}
    jobs_on: dict[str, list[int]] = {}
    for job_id, placement in session.execute(
        select(Job.id, Job.placement).where(Job.state.in_([s.value for s in ACTIVE_STATES]))
    ):
        for node, idx in placement or ():
            used[node] = used.get(node, 0) + len(idx)
            jobs_on.setdefault(node, []).append(int(job_id))
    out = []
    for n in inventory:
        d = drains.get(n.name)
        out.append(NodeView(n.name, n.gpus, n.gpu_type, n.block, used.get(n.name, 0),
                            bool(d and d.drained), d.reason if d else None,
                            tuple(jobs_on.get(n.name, ()))))
    return out


def set_drained(session: Session, actor: User, name: str, *, drained: bool,
                reason: str | None, inventory: Sequence[Any], now: datetime) -> NodeView:
    """Drain (nothing new starts there; running jobs finish) or resume a node."""
    if not actor.is_operator:
        from rechenwerk.errors import PermissionDenied

        raise PermissionDenied("draining and resuming nodes is for operators",
                               hint="Ask an operator of the centre.")
    names = [n.name for n in inventory]
    if name not in names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise NotFound(f"node {name!r} not found", field="node",
                       hint=f"Known nodes: {shown}. List them with `rechenwerk nodes`.")
    row = session.get(NodeState, name)
    if row is None:
        row = NodeState(name=name, drained=drained, updated_at=now)
        session.add(row)
    row.drained = drained
    row.reason = (reason or "drained by operator") if drained else None
    row.updated_at = now
    row.updated_by = actor.username
    record(session, actor, "node.drain" if drained else "node.resume", "node", name,
           {"reason": row.reason} if drained else None, at=now)
    session.flush()
    wake_after_commit(session)
    return next(v for v in list_nodes(session, inventory) if v.name == name)

"""Keep Slurm's advance reservations in line with Rechenwerk's: by the scheduler loop
(``ReservationAutoSync``, every cycle that changed them and every
``RECHENWERK_SLURM_RESERVATION_SYNC_S``) and by hand (``rechenwerk slurm
sync-reservations [--dry-run]``), as ``accounting/slurm_sync.py`` does for accounts.

Desired state: for every reservation that has not ended, a Slurm reservation named
``rw-<name>`` (``execution/slurm/script.py: RESERVATION_PREFIX``) on the nodes it holds
(Slurm reserves whole nodes, not GPUs), for the projects' accounts, or with
``Users=root Flags=MAINT,IGNORE_JOBS`` for maintenance. Slurm reservations with the prefix
that Rechenwerk no longer has are deleted; others are never touched. Running it twice
changes nothing the second time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.clock import Clock, ensure_utc
from rechenwerk.errors import BackendError
from rechenwerk.execution.base import NodeInventory
from rechenwerk.execution.slurm.script import RESERVATION_PREFIX, check_account
from rechenwerk.execution.slurm.types import SlurmReservation, SlurmTransport
from rechenwerk.jobs import reservations
from rechenwerk.store.session import session_scope

log = logging.getLogger("rechenwerk.scheduler")


@dataclass(frozen=True, slots=True)
class ReservationChange:
    action: str  # create | update | replace (kind changed) | delete
    name: str
    desired: SlurmReservation | None = None
    current: SlurmReservation | None = None

    def describe(self) -> str:
        r = self.desired or self.current
        assert r is not None
        who = "maintenance" if r.maintenance else "accounts " + ",".join(r.accounts)
        return (f"{self.action} reservation {self.name}: {','.join(r.nodes)} for {who}, "
                f"{r.start.isoformat()} to {r.end.isoformat()}")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "name": self.name, "what": self.describe()}


def desired(session: Session, now: datetime) -> list[SlurmReservation]:
    slugs = reservations.project_slugs(session)
    out = []
    for rec in reservations.current(session, now):
        out.append(SlurmReservation(
            name=RESERVATION_PREFIX + rec.name,
            start=ensure_utc(rec.starts_at), end=ensure_utc(rec.ends_at),
            nodes=tuple(sorted({str(n) for n, _ in rec.gpus})),
            accounts=tuple(sorted(check_account(slugs[p]) for p in rec.project_ids
                                  if p in slugs)),
            maintenance=rec.maintenance))
    return out


def plan(want: Sequence[SlurmReservation], have: Sequence[SlurmReservation],
         now: datetime, only: Collection[str] | None = None) -> list[ReservationChange]:
    """The changes that make Slurm's ``rw-`` reservations (``only``: just these Slurm
    names) what Rechenwerk wants."""
    if only is not None:
        want = [r for r in want if r.name in only]
        have = [r for r in have if r.name in only]
    ours = {r.name: r for r in have if r.name.startswith(RESERVATION_PREFIX)}
    changes: list[ReservationChange] = []
    for d in want:
        c = ours.pop(d.name, None)
        if c is None:
            # a window that has begun is created from now (Slurm refuses a past start)
            changes.append(ReservationChange("create", d.name, d if d.start > now else
                                             _from(d, now)))
            continue
        if c.maintenance != d.maintenance:
            changes.append(ReservationChange("replace", d.name, _from(d, now)
                                             if d.start <= now else d, c))
            continue
        if c.start <= now:  # active in Slurm: its start stays
            d = _from(d, c.start)
        if (c.start, c.end, c.nodes, c.accounts) != (d.start, d.end, d.nodes, d.accounts):
            changes.append(ReservationChange("update", d.name, d, c))
    changes += [ReservationChange("delete", name, current=c) for name, c in ours.items()]
    return changes


def _from(r: SlurmReservation, start: datetime) -> SlurmReservation:
    return SlurmReservation(r.name, start, r.end, r.nodes, r.accounts, r.maintenance)


def apply(transport: SlurmTransport, changes: Sequence[ReservationChange]) -> None:
    for c in changes:
        if c.action in ("delete", "replace"):
            transport.delete_reservation(c.name)
        if c.action in ("create", "replace") and c.desired is not None:
            transport.create_reservation(c.desired)
        elif c.action == "update" and c.desired is not None:
            transport.update_reservation(c.desired)


def sync(session: Session, transport: SlurmTransport, *, now: datetime,
         dry_run: bool = False, only: Collection[str] | None = None,
         ) -> list[ReservationChange]:
    changes = plan(desired(session, now), transport.reservations(), now, only)
    if not dry_run:
        apply(transport, changes)
    return changes


def inventory_for_reservations(backend: Any) -> Sequence[NodeInventory]:
    """The nodes a reservation may hold: the backend's inventory, or for backends that
    place jobs themselves (Slurm) their cluster's nodes."""
    inv: Sequence[NodeInventory] = backend.inventory()
    if inv:
        return inv
    nodes = getattr(backend, "reservable_nodes", None)
    return tuple(nodes()) if callable(nodes) else ()


class ReservationAutoSync:
    """The scheduler loop's sync on backends that schedule themselves (Slurm): Slurm's
    ``rw-`` reservations follow Rechenwerk's within a cycle of a change, and every
    ``interval_s`` anyway (a reservation deleted in Slurm by hand comes back). A Slurm
    that does not answer is retried at the next cycle; nothing of Rechenwerk's changes."""

    def __init__(self, session_factory: sessionmaker[Session], transport: SlurmTransport,
                 clock: Clock, *, interval_s: float) -> None:
        self.session_factory = session_factory
        self.transport = transport
        self.clock = clock
        self.interval_s = interval_s
        self._applied: list[SlurmReservation] | None = None
        self._due = -math.inf  # time.monotonic() of the next sync regardless of changes
        self.last_error: str | None = None

    def run(self) -> int:
        """Changes applied in Slurm (0: in step, or the sync is off or failed)."""
        if self.interval_s <= 0:
            return 0
        now = self.clock.now()
        with session_scope(self.session_factory) as session:
            want = desired(session, now)
        tick = time.monotonic()
        if want == self._applied and tick < self._due:
            return 0
        self._applied, self._due = want, tick + self.interval_s
        try:
            changes = plan(want, self.transport.reservations(), now)
            apply(self.transport, changes)
        except BackendError as exc:
            # tried again at the next change or after ``interval_s``, not every cycle
            self.last_error = str(exc)
            log.warning("Slurm reservation sync failed (tried again in %.0f s): %s",
                        self.interval_s, exc)
            return 0
        self.last_error = None
        for c in changes:
            log.info("Slurm reservation sync: %s", c.describe())
        return len(changes)

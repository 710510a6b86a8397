"""The skeleton both axes of a queue-ordered policy plug into.

Slurm splits a policy into a *priority plugin* (how the pending queue is ordered:
``priority/basic`` = submit order, ``priority/multifactor``) and a *scheduler plugin*
(``sched/builtin`` = main pass only, ``sched/backfill``). Here each axis is a mixin on
``QueueScheduler`` (``ordering.py``, ``backfill.py``), and ``policies.compose`` builds
one class per (ordering, backfill) pair with the ordering first in the MRO::

    class MultifactorEasyBackfill(MultifactorOrdering, EasyBackfill): ...

The choice is thus resolved once, when the class is built; no cycle or job asks which
policy it runs. The hooks run once per event or job, so they avoid ``super()`` chains
(a ``super()`` call costs about as much as the hook's own work):

- ``_passes``: the backfill axis's passes (the main pass, then its backfill pass if it
  has one); it is also the backfill mixin's ``_cycle``. An ordering that refreshes
  priorities overrides ``_cycle`` and calls ``self._passes`` after refreshing;
- ``_on_start`` / ``_on_stop`` (from ``Scheduler``): both axes track running jobs. A
  mixin's hook does only its own axis's work; when both axes have one, ``compose``
  gives the class a hook that calls the backfill's, then the ordering's;
- ``_order_changed``: the ordering tells the backfill mixin that its queue was
  reordered (a priority recalculation), so the next backfill pass must look again.
"""

from __future__ import annotations

from rechenwerk.scheduling.cycle import CycleResult, Scheduler


class QueueScheduler(Scheduler):
    """One queue in some order, a main pass, optionally a backfill pass. On its own:
    submit order without backfill (``fifo``)."""

    def _order_changed(self) -> None:
        """The queue order changed other than by a submit (a priority recalculation)."""

    def _passes(self, now: float, res: CycleResult, full: bool) -> None:
        """The scheduler plugin's passes; without backfill only the main pass (the same
        as ``Scheduler._cycle``, which this class keeps as its ``_cycle``)."""
        self._main_pass(now, res)

"""The skeleton both axes of a queue-ordered policy plug into.

Slurm splits a policy into a *priority plugin* (how the pending queue is ordered:
``priority/basic`` = submit order, ``priority/multifactor``) and a *scheduler plugin*
(``sched/builtin`` = main pass only, ``sched/backfill``). Here each axis is a mixin on
``QueueScheduler`` (``ordering.py``, ``backfill.py``), and ``policies.compose`` builds
one class per (ordering, backfill) pair with the ordering first in the MRO::

    class MultifactorEasyBackfill(MultifactorOrdering, EasyBackfill): ...

The choice is thus resolved once, when the class is built; no cycle or job asks which
policy it runs. Hooks the axes override (each chains with ``super()``):

- ``_cycle``: an ordering may refresh priorities first, then the backfill mixin runs the
  main pass and, if it has one, its backfill pass;
- ``_on_start`` / ``_on_stop`` (from ``Scheduler``): both axes track running jobs;
- ``_order_changed``: the ordering tells the backfill mixin that its queue was
  reordered (a priority recalculation), so the next backfill pass must look again.
"""

from __future__ import annotations

from rechenwerk.scheduling.cycle import Scheduler


class QueueScheduler(Scheduler):
    """One queue in some order, a main pass, optionally a backfill pass. On its own:
    submit order without backfill (``fifo``)."""

    def _order_changed(self) -> None:
        """The queue order changed other than by a submit (a priority recalculation)."""

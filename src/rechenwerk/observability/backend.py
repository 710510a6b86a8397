"""The execution backend with its errors counted (``rechenwerk_backend_errors_total``).

``app.py`` wraps whatever backend it runs, so every caller (the scheduler loop, the API's
node list) is counted, and no backend or domain module needs to know about metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from rechenwerk.errors import BackendError
from rechenwerk.execution.base import (
    ArraySubmitting,
    BackendCapabilities,
    BackendJobStatus,
    ExecutionBackend,
    LaunchRequest,
    NodeInventory,
    Pingable,
    ReconcileReport,
)
from rechenwerk.observability.instruments import count_backend_error

T = TypeVar("T")


class InstrumentedBackend:
    """Forwards every call to ``inner``; a call that raises is counted, then re-raised.
    ``inner`` is the backend itself (``/readyz`` names it)."""

    def __init__(self, inner: ExecutionBackend) -> None:
        self.inner = inner

    # read through (a backend may set them late), as the protocol's plain attributes
    @property
    def name(self) -> str:
        return self.inner.name

    @name.setter
    def name(self, value: str) -> None:
        self.inner.name = value

    @property
    def capabilities(self) -> BackendCapabilities:
        return self.inner.capabilities

    @capabilities.setter
    def capabilities(self, value: BackendCapabilities) -> None:
        self.inner.capabilities = value

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception:
            count_backend_error(self.name, operation)
            raise

    def submit(self, request: LaunchRequest) -> str:
        return self._call("submit", lambda: self.inner.submit(request))

    def submit_array(self, requests: Sequence[LaunchRequest]) -> Mapping[str, str]:
        inner = self.inner
        if not isinstance(inner, ArraySubmitting):
            raise BackendError(f"the {inner.name} backend cannot submit job arrays")
        return self._call("submit", lambda: inner.submit_array(requests))

    def cancel(self, handle: str) -> None:
        self._call("cancel", lambda: self.inner.cancel(handle))

    def preempt(self, handle: str) -> None:
        self._call("preempt", lambda: self.inner.preempt(handle))

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        return self._call("poll", lambda: self.inner.poll(handles))

    def inventory(self) -> Sequence[NodeInventory]:
        return self._call("inventory", self.inner.inventory)

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return self._call("reconcile", lambda: self.inner.reconcile(handles))

    def close(self) -> None:
        self._call("close", self.inner.close)


class PingableInstrumentedBackend(InstrumentedBackend):
    """The same for a backend that answers ``ping()`` (``/readyz``), so the wrapper is
    :class:`Pingable` exactly when the backend is."""

    def ping(self) -> None:
        inner = self.inner
        assert isinstance(inner, Pingable)
        self._call("ping", inner.ping)


def instrumented(backend: ExecutionBackend) -> ExecutionBackend:
    if isinstance(backend, InstrumentedBackend):
        return backend
    if isinstance(backend, Pingable):
        return PingableInstrumentedBackend(backend)
    return InstrumentedBackend(backend)

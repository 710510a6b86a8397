"""An in-memory execution backend for deterministic scheduler-loop tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rechenwerk.errors import BackendError
from rechenwerk.execution.base import (
    BackendCapabilities,
    BackendJobState,
    BackendJobStatus,
    LaunchRequest,
    ReconcileReport,
)
from rechenwerk.execution.local import NodeInventory, parse_local_cluster


class FakeBackend:
    """Remembers launches; tests set statuses by hand."""

    name = "fake"
    capabilities = BackendCapabilities(schedules_itself=False, multi_node=True,
                                       graceful_preemption=True, imports_foreign_jobs=False)

    def __init__(self, cluster: str = "2x8:A100-80GB") -> None:
        self.nodes = parse_local_cluster(cluster)
        self.launched: list[LaunchRequest] = []
        self.status: dict[str, BackendJobStatus] = {}
        self.fail_next: str | None = None
        self.preempted: list[str] = []
        self.cancelled: list[str] = []

    def inventory(self) -> Sequence[NodeInventory]:
        return self.nodes

    def submit(self, request: LaunchRequest) -> str:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise BackendError(msg)
        handle = f"{request.job_id}.{request.attempt}"
        if handle not in self.status:
            self.launched.append(request)
            self.status[handle] = BackendJobStatus(handle, BackendJobState.PENDING)
        return handle

    def cancel(self, handle: str) -> None:
        self.cancelled.append(handle)

    def preempt(self, handle: str) -> None:
        self.preempted.append(handle)

    def poll(self, handles: Sequence[str]) -> Mapping[str, BackendJobStatus]:
        return {h: self.status.get(h, BackendJobStatus(h, BackendJobState.UNKNOWN))
                for h in handles}

    def reconcile(self, handles: Sequence[str]) -> ReconcileReport:
        return ReconcileReport(known=self.poll(handles))

    def close(self) -> None:
        pass

"""Stable salted hashes that replace project/account names, user names and job ids, so a trace of a
centre's own history can be shared (docs/traces.md "Your centre's own history")."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace

from rechenwerk.simulation.traces.base import Trace, TraceJob


def new_salt() -> str:
    return secrets.token_hex(16)


class Anonymiser:
    """Same salt and name, same hash; without the salt the names cannot be guessed by
    hashing candidate names (HMAC-SHA256, 12 hex digits)."""

    def __init__(self, salt: str) -> None:
        self._key = salt.encode()

    def _h(self, kind: str, name: str) -> str:
        return hmac.new(self._key, f"{kind}\0{name}".encode(), hashlib.sha256).hexdigest()[:12]

    def project(self, name: str) -> str:
        return f"p{self._h('project', name)}"

    def user(self, name: str) -> str:
        return f"u{self._h('user', name)}"

    def job_id(self, job_id: str, array_id: str | None = None) -> str:
        if array_id is not None:  # keep the task index: <hashed array>_<index>
            return f"{self.job_id(array_id)}_{job_id.removeprefix(f'{array_id}_')}"
        return f"j{self._h('job', job_id)}"

    def job(self, job: TraceJob) -> TraceJob:
        return replace(
            job,
            job_id=self.job_id(job.job_id, job.array_id),
            project=self.project(job.project),
            user=None if job.user is None else self.user(job.user),
            array_id=None if job.array_id is None else self.job_id(job.array_id),
            depends_on=tuple((k, self._dep(d)) for k, d in job.depends_on),
        )

    def _dep(self, dep: str) -> str:
        base, sep, index = dep.partition("_")
        return f"{self.job_id(base)}_{index}" if sep and index.isdigit() else self.job_id(dep)

    def trace(self, trace: Trace) -> Trace:
        return Trace(jobs=tuple(self.job(j) for j in trace.jobs), skipped=trace.skipped,
                     source=f"{trace.source.split(':', 1)[0]}:anonymised")

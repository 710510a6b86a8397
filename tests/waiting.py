"""Waiting for events in tests without racing the machine's speed.

CI machines are loaded and slow, so a test never asserts on state after a fixed sleep
and never relies on a job's ``sleep N`` outlasting its own steps. It waits for the
event it needs with :func:`wait_for` (which returns as soon as the event happens; the
deadline is only a failure guard, generous on purpose), and a job that must keep
running while the test looks at it runs until the test releases it
(:func:`hold_command` + :func:`release`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# A job that must handle SIGTERM itself starts with it blocked (``env --block-signal``,
# before Python even starts) and unblocks it once its handler is in place, so a short
# walltime or a quick stop cannot hit it while a loaded machine still starts the
# interpreter: ``(*BLOCK_TERM, sys.executable, "-c", "...set handler..." + UNBLOCK_TERM)``.
BLOCK_TERM = ("env", "--block-signal=TERM")
UNBLOCK_TERM = "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})\n"

# A failure guard, not an expected duration: waits return as soon as their event happens.
DEADLINE_S = 120.0
# A job that waits for its release file gives up after this long, so a failed test
# leaves no process behind for long.
HOLD_GUARD_S = 600.0


def wait_for(cond: Callable[[], T], what: str, timeout: float = DEADLINE_S,
             step: float = 0.05) -> T:
    """Call ``cond`` until it returns something truthy and return that; fail with
    ``what`` in the message after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def hold_code(release_file: Path, *, before: str = "", after: str = "",
              guard_s: float = HOLD_GUARD_S) -> str:
    """Python source that runs ``before``, waits until ``release_file`` exists (exit 3
    after ``guard_s`` seconds), then runs ``after``."""
    return (f"import os, sys, time\n{before}\n"
            f"_guard = time.monotonic() + {guard_s!r}\n"
            f"while not os.path.exists({str(release_file)!r}):\n"
            "    if time.monotonic() > _guard:\n"
            "        sys.exit(3)\n"
            "    time.sleep(0.05)\n"
            f"{after}\n")


def hold_command(release_file: Path, *, before: str = "", after: str = "",
                 guard_s: float = HOLD_GUARD_S) -> list[str]:
    """A job command that keeps running until the test calls ``release(release_file)``
    (instead of ``sleep N``, which a slow machine can outrun)."""
    return [sys.executable, "-c",
            hold_code(release_file, before=before, after=after, guard_s=guard_s)]


def release(release_file: Path) -> None:
    release_file.parent.mkdir(parents=True, exist_ok=True)
    release_file.touch()

"""Isolation of local jobs from each other and from the server (docs/security.md).

The local executor runs jobs of users who do not trust each other on the server's own
machine. Each node process of a job runs inside a bubblewrap (``bwrap``) sandbox:

- a new mount namespace that shows the system read-only (``/usr``, ``/etc``, ``/opt``,
  the Python installation and Rechenwerk's own code), the job's working directory and
  log directory read-write, a private ``/tmp`` and ``/dev/shm``, and what the operator
  adds; never the data directory (database, tokens, other jobs' runs and logs);
- a new PID namespace with its own ``/proc``: no other process, and so no other
  process's environment, is visible;
- a scrubbed environment: the job gets an allowlist of the server's variables (PATH,
  locale, CUDA/NCCL settings, ...) plus its own, never the server's settings or secrets;
- when the server runs as root, a Unix account of its own: the job of Rechenwerk user
  ``u`` in project ``p`` runs as uid ``UID_BASE + u`` and gid ``GID_BASE + p`` (numeric
  accounts from ranges the operator reserves), with no capabilities and
  ``no_new_privs``, so file permissions hold even for paths the operator shares.

The network is shared (node processes of one job meet on 127.0.0.1, as on a real node):
services on the machine must authenticate their clients (docs/security.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rechenwerk.errors import BackendError, InvalidInput

# The server's variables a job may see: none of them carries a secret. Everything else
# (database URLs, keys, tokens, cloud credentials) stays with the server.
PASS_ENV = frozenset({"PATH", "PYTHONPATH", "LANG", "LANGUAGE", "TZ", "TERM",
                      "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"})
PASS_ENV_PREFIXES = ("LC_", "CUDA_", "NCCL_", "NVIDIA_")
# Read-only system paths shown to every job (absent ones are skipped; on a merged-/usr
# system /bin, /lib ... are symlinks into /usr and are recreated as such).
SYSTEM_PATHS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                "/libx32")
# GPU device nodes passed through when present.
DEVICE_GLOBS = ("nvidia*", "dri")
# Default ranges of numeric job accounts (below 2**31: some tools treat uids as signed;
# far above the ranges adduser, systemd and subuid allocations use).
DEFAULT_UID_RANGE = (1_900_000_000, 1_999_999_999)


@dataclass(frozen=True, slots=True)
class IdRange:
    first: int
    last: int

    def pick(self, offset: int, what: str) -> int:
        if offset < 0 or self.first + offset > self.last:
            raise BackendError(
                f"{what} {offset} is outside the job account range {self.first}-{self.last}",
                hint="Widen RECHENWERK_LOCAL_JOB_UIDS / RECHENWERK_LOCAL_JOB_GIDS.")
        return self.first + offset


def parse_id_range(text: str, setting: str) -> IdRange:
    first_s, sep, last_s = text.strip().partition("-")
    try:
        first, last = int(first_s), int(last_s)
    except ValueError:
        first = last = -1
    if not sep or not 1000 <= first <= last <= 2**32 - 2:
        raise InvalidInput(
            f"{setting} {text!r} is not a range FIRST-LAST of Unix ids from 1000 to {2**32 - 2}",
            field=setting.removeprefix("RECHENWERK_").lower(),
            hint=f"e.g. {setting}={DEFAULT_UID_RANGE[0]}-{DEFAULT_UID_RANGE[1]}, reserved for "
                 "Rechenwerk's jobs (no other account may use these ids).")
    return IdRange(first, last)


@dataclass(frozen=True, slots=True)
class Account:
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How the local executor wraps every node process of a job."""

    bwrap: str
    data_dir: Path  # never visible inside
    uids: IdRange | None  # None: jobs keep the server's account (a non-root server)
    gids: IdRange | None
    read_only: tuple[str, ...] = ()  # operator's extra paths (datasets, software)
    read_write: tuple[str, ...] = ()  # operator's extra paths (shared scratch)
    pass_env: frozenset[str] = frozenset()  # operator's extra variables to pass

    def account(self, user_id: int | None, project_id: int | None) -> Account | None:
        if self.uids is None:
            return None
        if user_id is None or project_id is None:
            raise BackendError("a job without a user or project cannot get a job account")
        gids = self.gids or self.uids
        return Account(self.uids.pick(user_id, "user id"), gids.pick(project_id, "project id"))

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The allowlisted part of the server's environment."""
        return {k: v for k, v in env.items()
                if k in PASS_ENV or k in self.pass_env or k.startswith(PASS_ENV_PREFIXES)}

    def wrap(self, argv: Sequence[str], *, node: str, workdir: str, log_dir: str,
             account: Account | None, files: Sequence[str] = ()) -> list[str]:
        """``argv`` run in the sandbox (the command line of one node process).

        ``log_dir`` is the job's own folder (its logs of every attempt, checkpoints);
        ``files`` are extra files shown read-only at their own path (the job's script)."""
        out = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--hostname", node or "localhost"]
        if account is None:
            # Unprivileged bwrap needs a user namespace; no capabilities inside it.
            out += ["--unshare-user", "--cap-drop", "ALL"]
        for path in SYSTEM_PATHS:
            target = Path(path)
            if target.is_symlink():
                out += ["--symlink", os.readlink(target), path]
            elif target.is_dir():
                out += ["--ro-bind", path, path]
        out += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        for dev in _devices():
            out += ["--dev-bind", dev, dev]
        out += ["--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp"]
        for path in _python_paths() + list(self.read_only):
            out += [*_parents(path), "--ro-bind-try", path, path]
        # Nothing of the data directory, even where a bound path contains it; the job's
        # own directories inside it are mounted over this empty one.
        # Mounts outside it come first (a workdir above it must not reveal it), then the
        # empty stand-in, then what lies inside it.
        mounts = [*(("--bind-try", p) for p in self.read_write),
                  *(("--bind", p) for p in dict.fromkeys((workdir, log_dir))),
                  *(("--ro-bind", p) for p in files)]
        data = str(self.data_dir)
        hidden = [(k, p) for k, p in mounts if _within(p, data)]
        for kind, path in [m for m in mounts if m not in hidden]:
            out += [*_parents(path), kind, path, path]
        out += [*_parents(data), "--tmpfs", data]
        for kind, path in hidden:
            out += [*_parents(path), kind, path, path]
        out += ["--chdir", workdir, "--"]
        if account is not None:
            out += [_setpriv(), f"--reuid={account.uid}", f"--regid={account.gid}",
                    "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                    "--no-new-privs", "--"]
        return out + list(argv)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _parents(path: str) -> list[str]:
    """Create the folders above a mount point as 0755 before anything is mounted below
    them (bwrap would make them 0700, which a job account could not pass); the system
    trees are mounted whole."""
    out: list[str] = []
    for parent in reversed(Path(path).parents):
        p = str(parent)
        if p != "/" and not any(_within(p, s) for s in SYSTEM_PATHS):
            out += ["--perms", "0755", "--dir", p]
    return out


def _python_paths() -> list[str]:
    """The Python installation and Rechenwerk's code, which recipes run from."""
    code = Path(__file__).resolve().parents[2]  # src/ of a checkout, or site-packages
    paths = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parents[1]),
             str(code)}
    return sorted(paths)


def _devices() -> list[str]:
    found: list[str] = []
    for pattern in DEVICE_GLOBS:
        found += sorted(str(p) for p in Path("/dev").glob(pattern))
    return found


def _setpriv() -> str:
    return shutil.which("setpriv") or "/usr/bin/setpriv"


def is_root() -> bool:
    return os.geteuid() == 0


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def probe(sandbox: Sandbox) -> str | None:
    """None when the sandbox can run a process here, else why not (one line)."""
    account = sandbox.account(0, 0) if sandbox.uids is not None else None
    # A folder of its own as workdir: mount points made below a bound host folder would
    # appear on the host (the data directory, for one).
    with tempfile.TemporaryDirectory(prefix="rechenwerk-probe-") as work:
        argv = sandbox.wrap(["/bin/sh", "-c", "exit 0"], node="probe", workdir=work,
                            log_dir=work, account=account)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        text = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap failed: {text[-1] if text else f'exit code {done.returncode}'}"
    return None

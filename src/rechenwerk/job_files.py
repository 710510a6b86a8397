"""Opening files in a job's own folder without trusting the job.

A job's folder ``<data_dir>/logs/<job>/`` and its attempts' folders ``<job>/<attempt>/``
belong to the job's account (the job writes checkpoints there; on Slurm a requeued run
makes its own attempt's folder). Anything in them may have been planted by an earlier run
of the same job: ``2 -> /etc/cron.d`` before a requeue, ``stdout.log ->
<data_dir>/rechenwerk.db``, a hard link, a FIFO. The server (often root) must never
follow such a thing: it would chown a system directory to the user, append job output to
a system file, or show the user a secret as "the log".

So every component below the trusted root (``<data_dir>/logs``, the server's own) is
opened with ``O_NOFOLLOW`` relative to the descriptor of its parent, which also defeats a
swap between check and use; a file must be a regular file with one link. Creating a
file removes what is there and creates it anew (``O_EXCL``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from rechenwerk.errors import Conflict

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs us


class UnsafeJobPath(Conflict):
    """Something in a job's folder is not what the server created (a link, a FIFO)."""


def _unsafe(path: Path, what: str) -> UnsafeJobPath:
    return UnsafeJobPath(
        f"{path} is {what}; Rechenwerk does not follow links or open special files in a "
        "job's folder",
        field="log_dir",
        hint="Something in the job's folder replaced what Rechenwerk created there. An "
        "operator can inspect and remove it.")


def split_attempt_dir(log_dir: Path | str) -> tuple[Path, tuple[str, str]]:
    """``<root>/<job>/<attempt>`` -> (root, (job, attempt)): the root is the server's,
    the two folders below it may belong to the job."""
    path = Path(log_dir)
    return path.parent.parent, (path.parent.name, path.name)


@contextlib.contextmanager
def open_dir_chain(root: Path | str, parts: Sequence[str], *, create: bool = False,
                   owner: tuple[int, int] | None = None,
                   mode: int = 0o700) -> Iterator[int]:
    """The descriptor of ``root/parts[0]/parts[1]/...``, each component opened without
    following links; with ``create``, missing folders are made (``mode``) and, with
    ``owner``, every component below the root is given to (uid, gid) with ``mode``."""
    root = Path(root)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        here = root
        for name in parts:
            if not name or name in (".", "..") or "/" in name:
                raise _unsafe(here / name, "not a plain folder name")
            here = here / name
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, mode, dir_fd=fd)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink; a file
                    raise _unsafe(here, "a link or not a folder") from None
                raise
            os.close(fd)
            fd = child
            if owner is not None:
                os.fchown(fd, *owner)
                os.fchmod(fd, mode)
        yield fd
    finally:
        os.close(fd)


def _check_regular(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _unsafe(path, "not a regular file")
    if st.st_nlink > 1:
        os.close(fd)
        raise _unsafe(path, "a hard link to another file")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


def open_job_file(root: Path | str, parts: Sequence[str], name: str, *,
                  append: bool = False, create_dirs: bool = False) -> int:
    """A descriptor for reading ``root/parts/name`` (or appending to it, created 0600 if
    missing). ``FileNotFoundError`` when it (or a folder) does not exist."""
    flags = _FILE_FLAGS | (os.O_WRONLY | os.O_APPEND | os.O_CREAT if append else os.O_RDONLY)
    path = Path(root, *parts, name)
    with open_dir_chain(root, parts, create=create_dirs) as dir_fd:
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _unsafe(path, "a symbolic link") from None
            raise
    _check_regular(fd, path)
    return fd


def write_new_job_file(root: Path | str, parts: Sequence[str], name: str, data: bytes, *,
                       mode: int = 0o600, owner: tuple[int, int] | None = None) -> Path:
    """Replace ``root/parts/name`` with a new file of ``data``: whatever was there (a link
    included) is removed, never written through."""
    path = Path(root, *parts, name)
    with open_dir_chain(root, parts) as dir_fd:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise _unsafe(path, "a folder") from None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    return path

"""Leadership: at most one active scheduler loop per database.

Two server processes (e.g. uvicorn workers) must never place jobs on the same GPUs, so
only the holder of a lock runs cycles: on PostgreSQL a session-level advisory lock on a
dedicated connection, on SQLite (one machine) an exclusive ``flock`` on a file beside the
database. The lock goes with the holder's process, so a survivor takes over."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import IO

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("rechenwerk.scheduler")


class Leadership:
    """At most one active scheduler loop per database, so two server processes (e.g.
    uvicorn workers) never place jobs on the same GPUs. PostgreSQL: a session-level
    advisory lock held on a dedicated connection; SQLite (one machine): an exclusive
    ``flock`` on ``<database file>.scheduler.lock``. A loop that is not the leader stays idle
    and tries again every cycle; it takes over when the leader's process ends."""

    ADVISORY_KEY = 0x52574B53  # "RWKS"

    def __init__(self, session_factory: sessionmaker[Session], data_dir: Path) -> None:
        self.engine = session_factory.kw["bind"]
        db_file = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self.lock_path = (Path(f"{db_file}.scheduler.lock")
                          if db_file and db_file != ":memory:"
                          else Path(data_dir) / "scheduler.lock")
        self._conn: Connection | None = None
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fh is not None

    def acquire(self) -> bool:
        if self._conn is not None and not self._lock_connection_alive():
            # The database lost our session (restart, network cut), and the advisory lock
            # with it: another process may lead now. Lead again only after re-taking it.
            log.warning("the scheduler's leadership connection was lost; re-acquiring")
            self._drop_conn()
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = conn.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({self.ADVISORY_KEY})").scalar()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        import fcntl

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - kept open while leading
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def _lock_connection_alive(self) -> bool:
        assert self._conn is not None
        try:
            self._conn.exec_driver_sql("SELECT 1")
            self._conn.commit()
        except DBAPIError:
            return False
        return True

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({self.ADVISORY_KEY})")
                self._conn.commit()
            except DBAPIError:
                pass  # the session is gone, and its lock with it
            finally:
                self._drop_conn()
        if self._fh is not None:
            self._fh.close()  # closing the file drops the flock
            self._fh = None

"""Leadership: at most one active scheduler loop per database.

Two server processes (e.g. uvicorn workers) must never place jobs on the same GPUs, so
only the holder of a lock runs cycles: on PostgreSQL a session-level advisory lock on a
dedicated connection, on SQLite (one machine) an exclusive ``flock`` on a file beside the
database. The lock goes with the holder's process, so a survivor takes over."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker


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

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql(
                    f"SELECT pg_advisory_unlock({self.ADVISORY_KEY})")
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fh is not None:
            self._fh.close()  # closing the file drops the flock
            self._fh = None

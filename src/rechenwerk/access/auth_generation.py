"""The auth generation: one counter in the database (table ``auth_generation``, row 1)
raised in the same transaction as every change that ends or narrows a credential (a
token revoked or changed, a user changed or deleted, an AUP published or accepted).

Every server process keeps its own token cache (access/security.py); each hit compares
the generation the entry was read at with the database's current one (a primary-key
read of one row), so a change committed by any process (another worker, the CLI) is
seen by all of them on their next request. A missing row (a database whose tables were
emptied) reads as 0; the first change creates it again.
"""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rechenwerk.access.models import AuthGeneration

_ROW = 1


def bump_auth_generation(conn: Connection) -> None:
    """Raise the counter in ``conn``'s transaction (creating the row when missing). On
    PostgreSQL the row stays locked until that transaction ends: concurrent changes of
    credentials queue up, reads do not wait."""
    t = AuthGeneration
    insert_ = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert_(t).values(id=_ROW, generation=1).on_conflict_do_update(
        index_elements=[t.id], set_={"generation": t.generation + 1}))


def read_auth_generation(session: Session) -> int:
    value = session.execute(
        select(AuthGeneration.generation).where(AuthGeneration.id == _ROW)).scalar()
    return int(value or 0)

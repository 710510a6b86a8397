"""The scheduler is woken by a commit that gave it work, never by a rollback."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from rechenwerk.jobs.wakeup import install_wake_hook, wake_after_commit


def test_commit_wakes_once_rollback_never(session_factory: sessionmaker[Session]) -> None:
    woken: list[int] = []
    install_wake_hook(session_factory, lambda: woken.append(1))
    with session_factory() as s:
        s.begin()
        wake_after_commit(s)
        s.rollback()
        assert woken == []
        s.begin()
        s.commit()  # the rolled-back request is forgotten
        assert woken == []
        s.begin()
        wake_after_commit(s)
        with s.begin_nested():
            pass
        assert woken == []  # a savepoint is not the commit
        s.commit()
        assert woken == [1]
        s.begin()
        s.commit()
        assert woken == [1]  # once per asking transaction


def test_savepoint_rollback_keeps_the_outer_request(
        session_factory: sessionmaker[Session]) -> None:
    woken: list[int] = []
    install_wake_hook(session_factory, lambda: woken.append(1))
    with session_factory() as s:
        s.begin()
        wake_after_commit(s)
        nested = s.begin_nested()
        nested.rollback()
        s.commit()
        assert woken == [1]

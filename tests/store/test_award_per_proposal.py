"""One award per proposal, held by the database (migration 0016): a second award of a
proposal fails at the insert, however the service's own check was passed, and a database
that already has two stops the upgrade with a message that names them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from factories import T0, make_award, make_call, make_project, make_user
from populated import populate
from rechenwerk.access.models import Award, Proposal
from rechenwerk.access.proposals import create_proposal
from rechenwerk.api.deps import _conflict
from rechenwerk.config import Settings
from rechenwerk.store.migrate import downgrade, upgrade
from rechenwerk.store.session import make_engine, make_session_factory

pytestmark = pytest.mark.slow


def test_two_awards_of_one_proposal_stop_the_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        populate(s, now=datetime.now(UTC).replace(microsecond=0),
                 settings=Settings(data_dir=tmp_path / "var", database_url=url))
        s.commit()
        awards = list(s.scalars(select(Award.id).order_by(Award.id)))
        proposal = s.scalars(select(Proposal.id)).first()
    assert len(awards) >= 2 and proposal is not None
    downgrade(url, "0015_job_arrays")
    with engine.begin() as c:
        c.execute(text("UPDATE awards SET proposal_id = NULL"))
        c.execute(text("UPDATE awards SET proposal_id = :p WHERE id IN (:a, :b)"),
                  {"p": proposal, "a": awards[0], "b": awards[1]})
    with pytest.raises(RuntimeError, match=rf"proposal {proposal}: 2 awards "
                                           rf"\({awards[0]} \.\. {awards[1]}\)"):
        upgrade(url)
    with engine.begin() as c:  # what the message says to do: the data stays
        c.execute(text("UPDATE awards SET proposal_id = NULL WHERE id = :b"),
                  {"b": awards[1]})
    upgrade(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM awards")).scalar() == len(awards)
    engine.dispose()


def test_the_database_refuses_a_second_award_of_a_proposal(session: Session) -> None:
    pi = make_user(session)
    project = make_project(session, pi=pi)
    call = make_call(session)
    now = T0  # the factories' calls are open around T0
    proposal = create_proposal(session, pi, call=call, project=project, title="t",
                               gpu_type="A100-80GB", requested_gpu_hours=10, now=now)
    first = make_award(session, project, gpu_hours=10.0)
    second = make_award(session, project, gpu_hours=10.0)
    first.proposal_id = proposal.id
    session.flush()
    second.proposal_id = proposal.id  # as if a concurrent request passed the service check
    with pytest.raises(IntegrityError) as err:
        session.flush()
    assert "this proposal has an award already" in str(_conflict(err.value))
    session.rollback()

"""Advance reservations on the real Slurm cluster: the sync creates, updates and deletes
``rw-<name>`` reservations (future windows), and a job with ``reservation`` runs inside a
short active one on ONE node (other tests share the cluster). Every reservation made
here has a name unique to the test and is deleted at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slurm_helpers import (
    SlurmAccount,
    SlurmCluster,
    active,
    cli,
    request,
    sh,
    slurm_settings,
    wait_state,
)
from sqlalchemy.orm import Session

from factories import make_project, make_user
from rechenwerk.clock import WallClock
from rechenwerk.errors import BackendError
from rechenwerk.execution.base import BackendJobState, NodeInventory
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.execution.slurm.cli_transport import (
    CliTransport,
    parse_reservation,
    reservation_args,
)
from rechenwerk.execution.slurm.types import SlurmReservation
from rechenwerk.jobs import reservations
from rechenwerk.jobs.loop import SchedulerLoop
from rechenwerk.jobs.slurm_reservations import plan, sync

pytestmark = [pytest.mark.slurm, pytest.mark.xdist_group("slurm")]


@pytest.fixture
def transport(slurm_up: SlurmCluster) -> Iterator[CliTransport]:
    t = cli()
    yield t
    t.close()


@pytest.fixture
def made(slurm_up: SlurmCluster) -> Iterator[list[str]]:
    """Slurm reservation names a test creates: deleted at the end whatever happens."""
    names: list[str] = []
    yield names
    for name in names:
        sh("scontrol", "delete", f"ReservationName={name}", check=False, cluster=slurm_up)


def _show(name: str) -> SlurmReservation | None:
    out = sh("env", "TZ=UTC", "scontrol", "show", "reservation", "-o", name, check=False)
    return parse_reservation(out.strip()) if out.startswith("ReservationName=") else None


def test_sync_creates_updates_and_deletes(transport: CliTransport, session: Session,
                                          slurm_account: SlurmAccount,
                                          made: list[str]) -> None:
    nodes = [NodeInventory(n.name, n.gpus, n.gpu_type) for n in transport.cluster_nodes()]
    first = active().nodes[0]
    assert {n.name for n in nodes} >= {first} and all(n.gpus == 4 for n in nodes)
    project = make_project(session, pi=make_user(session), slug=slurm_account.name)
    now = datetime.now(UTC).replace(microsecond=0)
    tag = uuid.uuid4().hex[:8]
    hero, maint = f"hero-{tag}", f"maint-{tag}"
    slurm_names = {f"rw-{hero}", f"rw-{maint}"}
    made.extend(slurm_names)
    start = now + timedelta(days=400)
    reservations.create(session, reservations.ReservationRequest(
        hero, start, start + timedelta(hours=2), projects=(project.slug,), gpus=4),
        inventory=nodes, now=now, by="test")
    reservations.create(session, reservations.ReservationRequest(
        maint, start + timedelta(hours=3), start + timedelta(hours=4), maintenance=True,
        nodes=(first,)), inventory=nodes, now=now, by="test")
    session.commit()

    dry = sync(session, transport, now=now, dry_run=True, only=slurm_names)
    assert sorted(c.action for c in dry) == ["create", "create"]
    assert _show(f"rw-{hero}") is None  # a dry run changes nothing
    changes = sync(session, transport, now=now, only=slurm_names)
    assert sorted(c.action for c in changes) == ["create", "create"]
    got = _show(f"rw-{hero}")
    assert got is not None and got.accounts == (slurm_account.name,)
    assert got.start == start and got.end == start + timedelta(hours=2)
    assert len(got.nodes) == 1  # 4 GPUs = one whole 4-GPU node
    m = _show(f"rw-{maint}")
    assert m is not None and m.maintenance and m.nodes == (first,)
    assert sync(session, transport, now=now, only=slurm_names) == []  # idempotent

    rec = session.query(reservations.ReservationRecord).filter_by(name=hero).one()
    rec.ends_at = start + timedelta(hours=2, minutes=30)
    session.commit()
    assert [c.action for c in sync(session, transport, now=now, only=slurm_names)] == ["update"]
    got = _show(f"rw-{hero}")
    assert got is not None and got.end == start + timedelta(hours=2, minutes=30)

    reservations.delete(session, hero)
    reservations.delete(session, maint)
    session.commit()
    assert sorted(c.action for c in sync(session, transport, now=now, only=slurm_names)) == \
        ["delete", "delete"]
    assert _show(f"rw-{hero}") is None and _show(f"rw-{maint}") is None


def test_job_runs_inside_its_reservation(transport: CliTransport,
                                         slurm_account: SlurmAccount,
                                         made: list[str]) -> None:
    """A short active reservation on one node; a job that names it runs there."""
    name = f"job-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    made.append(f"rw-{name}")
    held = None
    for node in reversed(active().nodes):  # whichever has no running job now
        r = SlurmReservation(f"rw-{name}", now, now + timedelta(minutes=3), (node,),
                             (slurm_account.name,))
        try:
            transport.create_reservation(r)
        except BackendError:  # busy node: try the other
            continue
        held = node
        break
    if held is None:
        pytest.skip("both nodes are busy with other tests' jobs right now")
    backend = SlurmBackend(transport)
    req = request(slurm_account.name, slurm_account.user, slurm_account.tmp,
                  command=("bash", "-c", "echo $SLURMD_NODENAME"), job_id="301")
    handle = backend.submit(replace(req, reservation=name))
    st = wait_state(backend, handle)
    assert st.state is BackendJobState.COMPLETED, st
    assert tuple(st.nodes) == (held,)
    assert (slurm_account.tmp / "logs-301" / "stdout.log").read_text().strip() == held
    transport.delete_reservation(f"rw-{name}")
    assert _show(f"rw-{name}") is None


def test_plan_and_arguments_without_slurm() -> None:
    now = datetime(2036, 12, 2, 12, tzinfo=UTC)  # far ahead: a start in the future
    a = SlurmReservation("rw-a", now + timedelta(hours=1), now + timedelta(hours=2),
                         ("node1",), ("proj",))
    assert reservation_args(a) == ["ReservationName=rw-a", "StartTime=2036-12-02T13:00:00",
                                   "EndTime=2036-12-02T14:00:00", "Nodes=node1",
                                   "Accounts=proj"]
    assert reservation_args(replace(a, maintenance=True))[-2:] == ["Users=root",
                                                                   "Flags=MAINT,IGNORE_JOBS"]
    other = SlurmReservation("manual", now, now + timedelta(hours=1), ("node2",))
    stale = SlurmReservation("rw-gone", now, now + timedelta(hours=1), ("node2",))
    maint = SlurmReservation("rw-a", a.start, a.end, ("node1",), (), True)
    acts = plan([a], [other, stale, maint], now)
    assert [(c.action, c.name) for c in acts] == [("replace", "rw-a"), ("delete", "rw-gone")]
    line = ("ReservationName=rw-a StartTime=2036-12-02T13:00:00 EndTime=2036-12-02T14:00:00 "
            "Duration=01:00:00 Nodes=node[1-2] NodeCnt=2 Flags=MAINT,SPEC_NODES Users=root "
            "Accounts=(null) State=INACTIVE")
    parsed = parse_reservation(line)
    assert parsed == SlurmReservation("rw-a", a.start, a.end, ("node1", "node2"), (), True)


def test_the_scheduler_loop_keeps_slurm_in_step(slurm_up: SlurmCluster, session_factory: Any,
                                                slurm_account: SlurmAccount, made: list[str],
                                                tmp_path: Path) -> None:
    """No command to remember: a cycle of the loop creates, and after the deletion in
    Rechenwerk removes, the Slurm reservation (future window: it holds no test's job)."""
    name = f"auto-{uuid.uuid4().hex[:8]}"
    made.append(f"rw-{name}")
    transport = cli()
    nodes = [NodeInventory(n.name, n.gpus, n.gpu_type) for n in transport.cluster_nodes()]
    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(days=401)
    with session_factory() as s:
        project = make_project(s, pi=make_user(s), slug=slurm_account.name)
        reservations.create(s, reservations.ReservationRequest(
            name, start, start + timedelta(hours=1), projects=(project.slug,), gpus=4),
            inventory=nodes, now=now, by="test")
        s.commit()
    loop = SchedulerLoop(session_factory, SlurmBackend(transport), clock=WallClock(),
                         settings=slurm_settings(data_dir=tmp_path, executor="slurm"))
    try:
        loop.cycle()
        got = _show(f"rw-{name}")
        assert got is not None and got.accounts == (slurm_account.name,) and got.start == start
        assert loop.reservation_sync is not None and loop.reservation_sync.run() == 0
        with session_factory() as s:
            reservations.delete(s, name)
            s.commit()
        loop.cycle()
        assert _show(f"rw-{name}") is None
    finally:
        transport.close()

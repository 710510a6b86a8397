"""``rechenwerk slurm ...``: operator commands on the Slurm submit host.

rechenwerk slurm sync [--dry-run] [--json]   accounts, associations, GPU-minute limits
rechenwerk slurm import [--since ISO] [--json]  settle finished jobs from slurmdbd
rechenwerk slurm status [--json]             controller, nodes, managed accounts
rechenwerk slurm sync-reservations [--dry-run] [--json]  advance reservations (scontrol)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import InvalidInput

slurm_app = typer.Typer(
    help="Slurm: account sync, accounting import, cluster status.", no_args_is_help=True
)


def _session_factory() -> Any:
    from rechenwerk.config import get_settings
    from rechenwerk.store.session import make_engine, make_session_factory

    return make_session_factory(make_engine(get_settings().effective_database_url))


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--since {value!r} is not an ISO date/time",
            field="since",
            hint="e.g. --since 2026-11-01 or --since 2026-11-01T12:00:00+00:00",
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@slurm_app.command("sync")
@handle_errors
def sync_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print the differences."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    project: list[str] = typer.Option(
        [], "--project", "-p", help="Only these project slugs (repeatable)."
    ),
    extra_user: list[str] = typer.Option(
        [],
        "--extra-user",
        help="Also associate this Unix user with every account "
        "(e.g. the service account when RECHENWERK_SLURM_SUBMIT_AS=service).",
    ),
    cluster: list[str] = typer.Option(
        [], "--cluster", help="Only this cluster (repeatable; default: every Slurm cluster)."
    ),
) -> None:
    """Make Slurm's accounts, associations and GrpTRESMins match the awards (on each
    Slurm cluster of the centre)."""
    from rechenwerk.accounting.slurm_sync import sync
    from rechenwerk.config import get_settings
    from rechenwerk.execution.clusters import load_clusters
    from rechenwerk.execution.slurm import make_transport
    from rechenwerk.store.session import session_scope

    settings = get_settings()
    specs = _slurm_clusters(load_clusters(settings), cluster, declared=bool(settings.clusters))
    results = []
    for spec in specs:
        transport = make_transport(spec.settings(settings))
        try:
            with session_scope(_session_factory()) as session:
                results.append((spec.name, sync(
                    session,
                    transport,
                    now=datetime.now(UTC),
                    dry_run=dry_run,
                    extra_users=extra_user,
                    projects=project or None,
                )))
        finally:
            transport.close()
    if as_json:
        if len(results) == 1 and not settings.clusters:  # one cluster: as before
            print_json({"dry_run": dry_run, **results[0][1].to_dict()})
        else:
            print_json({"dry_run": dry_run, "clusters": [
                {"cluster": name, **r.to_dict()} for name, r in results]})
        return
    for name, result in results:
        if len(results) > 1 or settings.clusters:
            console.print(f"cluster {name}:", highlight=False)
        _print_sync(result, dry_run)


def _slurm_clusters(specs: Any, wanted: list[str], *, declared: bool) -> list[Any]:
    """The Slurm clusters among ``specs`` (only those ``wanted``, if any); without
    declared clusters the flat RECHENWERK_SLURM_* settings' one, as before."""
    names = [s.name for s in specs]
    for w in wanted:
        if w not in names:
            raise InvalidInput(f"unknown cluster {w!r}", field="cluster",
                               hint=f"Use one of: {', '.join(names)}.")
    if not declared:
        return list(specs)
    chosen = [s for s in specs if s.executor == "slurm" and (not wanted or s.name in wanted)]
    if not chosen:
        raise InvalidInput("no Slurm cluster to sync", field="cluster",
                           hint="Set RECHENWERK_EXECUTOR=slurm or declare Slurm clusters "
                           "(RECHENWERK_CLUSTERS).")
    return chosen


def _print_sync(result: Any, dry_run: bool) -> None:
    verb = "would change" if dry_run else "changed"
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    if not result.changes:
        console.print(f"Slurm is in sync ({len(result.desired)} project accounts).")
        return
    print_table(
        ["action", "account", "user", "Slurm now", "wanted", "drift"],
        [
            (c.action, c.account, c.user, c.current, c.desired, "yes" if c.drift else "")
            for c in result.changes
        ],
        title=f"{verb}: {len(result.changes)} ({len(result.drift)} drift)",
    )


@slurm_app.command("import")
@handle_errors
def import_cmd(
    since: str | None = typer.Option(
        None, "--since", help="Start of the window (default: 7 days ago)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    cluster: list[str] = typer.Option(
        [], "--cluster", help="Only this cluster (repeatable; default: every Slurm cluster)."
    ),
) -> None:
    """Settle finished Slurm jobs (real start/end, AllocTRES gres/gpu) once each (on
    each Slurm cluster of the centre)."""
    from rechenwerk.config import get_settings
    from rechenwerk.execution.clusters import load_clusters
    from rechenwerk.execution.slurm import make_transport
    from rechenwerk.jobs.slurm_import import import_finished_jobs
    from rechenwerk.store.session import session_scope

    settings = get_settings()
    declared = bool(settings.clusters)
    start = _parse_since(since)
    reports = []
    for spec in _slurm_clusters(load_clusters(settings), cluster, declared=declared):
        transport = make_transport(spec.settings(settings))
        try:
            with session_scope(_session_factory()) as session:
                reports.append((spec.name, import_finished_jobs(
                    session, transport, now=datetime.now(UTC), since=start,
                    cluster=spec.name if declared else None)))
        finally:
            transport.close()
    if as_json:
        if not declared:  # one cluster: as before
            print_json(reports[0][1].to_dict())
        else:
            print_json({"clusters": [{"cluster": name, **r.to_dict()} for name, r in reports]})
        return
    for name, report in reports:
        if declared:
            console.print(f"cluster {name}:", highlight=False)
        _print_import(report)


def _print_import(report: Any) -> None:
    console.print(
        f"examined {report.examined} Slurm jobs: {report.settled_new} settled now, "
        f"{report.already_settled} already settled, {report.unknown_account} outside "
        f"Rechenwerk's accounts, {report.not_finished} not finished, "
        f"{report.no_gpus} without GPU usage",
        highlight=False,
    )
    new = [j for j in report.jobs if j.new]
    if new:
        print_table(
            ["Slurm job", "account", "user", "state", "GPUs", "GPU-hours", "Rechenwerk job"],
            [
                (
                    j.slurm_job_id,
                    j.account,
                    j.user,
                    j.state,
                    j.gpus,
                    f"{j.gpu_hours:.4f}",
                    j.rechenwerk_job_id or "(direct)",
                )
                for j in new
            ],
        )


@slurm_app.command("status")
@handle_errors
def status_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    cluster: str | None = typer.Option(
        None, "--cluster", help="This declared cluster (default: the first)."),
) -> None:
    """Is slurmctld up, which nodes, and the managed accounts' GPU-minute limits."""
    from rechenwerk.accounting.slurm_sync import counted_from, desired_accounts, slurm_accounts
    from rechenwerk.config import get_settings
    from rechenwerk.execution.clusters import load_clusters
    from rechenwerk.execution.slurm import make_transport
    from rechenwerk.execution.slurm.cli_transport import CliTransport
    from rechenwerk.store.session import session_scope

    settings = get_settings()
    if settings.clusters or cluster:
        specs = _slurm_clusters(load_clusters(settings), [cluster] if cluster else [],
                                declared=bool(settings.clusters))
        settings = specs[0].settings(settings)
    transport = make_transport(settings)
    try:
        transport.ping()
        nodes = CliTransport(data_format=settings.slurm_data_format or None,
                             command_prefix=settings.slurm_command_prefix_argv).node_states()
        now = datetime.now(UTC)
        with session_scope(_session_factory()) as session:
            desired = desired_accounts(session, now=now)
            current = slurm_accounts(transport, (d.account for d in desired))
            desired = [counted_from(session, d, current.get(d.account), now=now)
                       for d in desired]
    finally:
        transport.close()
    accounts: list[dict[str, Any]] = [
        {
            "account": d.account,
            "wanted_gpu_minutes": d.gpu_minutes,
            "slurm_gpu_minutes": current[d.account].gpu_minutes if d.account in current else None,
            "in_slurm": d.account in current,
            "users": sorted(current[d.account].users) if d.account in current else [],
        }
        for d in desired
    ]
    if as_json:
        print_json(
            {
                "controller": "up",
                "transport": settings.slurm_transport,
                "nodes": nodes,
                "accounts": accounts,
            }
        )
        return
    console.print(f"slurmctld: up (transport: {settings.slurm_transport})")
    print_table(
        ["node", "state", "GPUs", "GPUs in use", "reason"],
        [(n["name"], n["state"], n["gpus"], n["gres_used"], n["reason"]) for n in nodes],
    )
    print_table(
        ["account", "GPU-minutes wanted", "GPU-minutes in Slurm", "users"],
        [
            (
                a["account"],
                a["wanted_gpu_minutes"],
                a["slurm_gpu_minutes"] or "-",
                ",".join(a["users"]),
            )
            for a in accounts
        ],
        title="project accounts",
    )


@slurm_app.command("sync-reservations")
@handle_errors
def sync_reservations_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print the differences."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create, update and delete Slurm reservations (rw-<name>) to match Rechenwerk's."""
    from rechenwerk.config import get_settings
    from rechenwerk.execution.slurm import make_transport
    from rechenwerk.jobs.slurm_reservations import sync
    from rechenwerk.store.session import session_scope

    transport = make_transport(get_settings())
    try:
        with session_scope(_session_factory()) as session:
            changes = sync(session, transport, now=datetime.now(UTC), dry_run=dry_run)
    finally:
        transport.close()
    if as_json:
        print_json({"dry_run": dry_run, "changes": [c.to_dict() for c in changes]})
        return
    verb = "would " if dry_run else ""
    for c in changes:
        console.print(f"{verb}{c.describe()}", highlight=False)
    console.print(f"{len(changes)} change(s){' (dry run)' if dry_run else ''}",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(slurm_app, name="slurm")

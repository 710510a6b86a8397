"""The ``rechenwerk`` command. Sub-commands live in their own modules; heavy imports
(NumPy, SQLAlchemy, matplotlib) stay inside command functions so ``--help`` is instant."""

from __future__ import annotations

import importlib

import typer

from rechenwerk import __version__

app = typer.Typer(
    name="rechenwerk",
    help="Rechenwerk: plan, grant, schedule, run and account a shared AI compute centre.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Modules that register commands on ``app`` with a ``register(app)`` function.
# One line per module; each domain owns its module.
COMMAND_MODULES: list[str] = [
    "rechenwerk.cli.people",
    "rechenwerk.cli.grants",
    "rechenwerk.cli.call_types",  # call types as data (issue 15)
    "rechenwerk.cli.admin",
    "rechenwerk.cli.config_cmd",
    "rechenwerk.cli.server",
    "rechenwerk.cli.plan",
    "rechenwerk.cli.trace",
    "rechenwerk.cli.slurm",
    "rechenwerk.cli.jobs",
    "rechenwerk.cli.reservations",  # advance reservations (issue 16)
    "rechenwerk.cli.report",
    "rechenwerk.cli.simulate",
    "rechenwerk.cli.twin",  # the simulator against real Slurm (issue 13)
    "rechenwerk.cli.recipe",
    "rechenwerk.cli.aup",  # acceptable-use policy (issue 14)
    "rechenwerk.cli.support",  # support requests (issue 19)
    "rechenwerk.cli.sessions",  # interactive JupyterLab sessions (issue 20)
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"rechenwerk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    config: str = typer.Option(
        None, "--config", metavar="FILE",
        help="TOML configuration file (RECHENWERK_CONFIG); environment variables override it."),
) -> None:
    """Rechenwerk command line."""
    if config:
        import os

        from rechenwerk.config import get_settings

        # The environment carries it to server worker processes and job supervisors.
        os.environ["RECHENWERK_CONFIG"] = config
        get_settings.cache_clear()


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

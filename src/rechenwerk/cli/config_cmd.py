"""``rechenwerk admin config check``: validate a configuration file and show the
settings the server would run with (secrets masked), each with where it came from."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table

config_app = typer.Typer(help="The configuration file and the effective settings.",
                         no_args_is_help=True)


@config_app.command("check")
@handle_errors
def check(
    path: Path = typer.Argument(None, help="the TOML file (default: --config or "
                                           "RECHENWERK_CONFIG)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Validate the configuration file and print the effective settings."""
    from rechenwerk.config import Settings, get_settings
    from rechenwerk.config_file import CONFIG_ENV, config_path, masked, read_config

    if path is not None:
        os.environ[CONFIG_ENV] = str(path)
        get_settings.cache_clear()
    settings = get_settings()  # one clear line for any bad value, naming its source
    source = config_path()
    from_file = read_config(source, Settings.model_fields) if source else {}
    rows = []
    for name in Settings.model_fields:
        env_name = f"RECHENWERK_{name.upper()}"
        origin = ("environment" if env_name in os.environ
                  else f"file {source}" if name in from_file else "default")
        rows.append({"setting": name, "value": masked(name, getattr(settings, name)),
                     "from": origin})
    if as_json:
        print_json({"config_file": str(source) if source else None,
                    "settings": {r["setting"]: {"value": _plain(r["value"]), "from": r["from"]}
                                 for r in rows}})
        return
    console.print(f"configuration file: {source or '(none)'}: valid", highlight=False)
    print_table(["setting", "value", "from"],
                [(r["setting"], str(r["value"]), r["from"]) for r in rows])


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


def register(app: typer.Typer) -> None:
    from rechenwerk.cli.admin import admin_app

    admin_app.add_typer(config_app, name="config")

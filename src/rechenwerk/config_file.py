"""The configuration file: every setting in one TOML file (``--config`` or
``RECHENWERK_CONFIG``), with environment variables still overriding it.

Keys are the settings' names without the ``RECHENWERK_`` prefix, in lower case
(``database_url = "postgresql+psycopg://..."``, ``port = 8080``); settings that take a
mapping take a TOML table (``[qos_max_walltime]``). An unknown key is an error naming
the file, the key and the closest known name, so a typo never passes silently.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rechenwerk.errors import InvalidInput

CONFIG_ENV = "RECHENWERK_CONFIG"
MAX_CONFIG_BYTES = 1 << 20


def config_path() -> Path | None:
    value = os.environ.get(CONFIG_ENV, "").strip()
    return Path(value) if value else None


def read_config(path: Path, known: Iterable[str]) -> dict[str, Any]:
    """The file's settings, checked against the ``known`` setting names."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"configuration file {path} does not exist", field="config",
                           hint=f"Check --config or {CONFIG_ENV}.") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read configuration file {path}: {exc.strerror or exc}",
                           field="config") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"configuration file {path} is larger than 1 MiB", field="config")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(f"configuration file {path} is not UTF-8 text",
                           field="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"configuration file {path} is not valid TOML: {exc}",
                           field="config") from None
    names = set(known)
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = (f"Did you mean {close[0]!r}?" if close
                    else "See README, Configuration, for the settings.")
            raise InvalidInput(f"{path}: unknown setting {key!r}", field="config", hint=hint)
    return data


# Settings whose values are secrets: masked when settings are printed.
SECRET_NAMES = ("secret", "password", "token")


def masked(name: str, value: Any) -> Any:
    """``value`` as it may be shown: secrets replaced, passwords in URLs hidden; inside
    lists and tables (e.g. ``oidc_providers``) too."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: masked(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(name, v) for v in value]
    if any(s in name for s in SECRET_NAMES):
        return "********" if value else value
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        creds, _, host = rest.rpartition("@")
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:********@{host}"
    return value

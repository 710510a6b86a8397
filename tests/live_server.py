"""A real uvicorn server of ``create_app`` on a free port, and the CLI run against it:
what the CLI tests share (they talk HTTP to the server, as users' CLIs do).

Use the ``live_server`` fixture (tests/conftest.py) and :func:`run_cli`."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served on 127.0.0.1 until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the test server died while starting"
        return bool(server.started)

    wait_for(started, "the test server to start", step=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_cli(url: str, home: Path, token: str, *args: str, code: int = 0,
            stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    """``rechenwerk ARGS`` against the server at ``url`` as the token's user; asserts the
    exit code (and that no traceback is shown) and returns the parsed JSON for ``--json``
    commands, else the result."""
    from rechenwerk.cli.main import app as cli
    from rechenwerk.config import get_settings

    full = {"RECHENWERK_API_URL": url, "RECHENWERK_TOKEN": token,
            "XDG_CONFIG_HOME": str(home), **(env or {})}
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), env=full, input=stdin)
    get_settings.cache_clear()
    assert result.exit_code == code, (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    if code == 0 and "--json" in args:
        return json.loads(result.stdout)
    return result

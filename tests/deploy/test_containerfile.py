"""deploy/Containerfile, checked without a container engine (CI has none, so the image is
never built here): its COPY sources exist, it installs the package without extras, runs
as a non-root user, and its CMD and HEALTHCHECK are commands that work."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rechenwerk.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in CONTAINERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Containerfile ends inside a continued line"
    return out


def _all(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def _exec_form(value: str) -> list[str]:
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), value
    return argv


def test_base_image_and_slim_install() -> None:
    assert _all("FROM") == ["python:3.11-slim"]
    installs = [r for r in _all("RUN") if "pip install" in r]
    assert len(installs) == 1
    target = shlex.split(installs[0].split("pip install", 1)[1])[0]
    assert target == ".", f"installs {target!r}: the server needs no extras"


def test_copy_sources_exist() -> None:
    copies = _all("COPY") + _all("ADD")
    assert copies
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        *sources, _dest = parts
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert src not in ignored, f"COPY {src}: excluded by .dockerignore"
    # The build context leaves out the development venv and local data.
    assert {".venv", "var", ".git"} <= ignored
    # The sources the package build reads.
    copied = {p for args in copies for p in shlex.split(args)[:-1]}
    assert {"pyproject.toml", "README.md", "MANIFEST.in", "src"} <= copied


def test_runs_as_non_root_on_the_exposed_port() -> None:
    users = _all("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    env = " ".join(_all("ENV"))
    port = re.search(r"RECHENWERK_PORT=(\d+)", env)
    assert port and _all("EXPOSE") == [port.group(1)]
    assert "RECHENWERK_HOST=0.0.0.0" in env  # reachable from outside the container


def test_cmd_is_a_cli_command() -> None:
    cmds = _all("CMD")
    assert len(cmds) == 1
    argv = _exec_form(cmds[0])
    assert argv[0] == "rechenwerk"
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output


def test_healthcheck_asks_the_health_endpoint(tmp_path: Path) -> None:
    checks = _all("HEALTHCHECK")
    assert len(checks) == 1
    argv = _exec_form(checks[0].split(" CMD ", 1)[1])
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    assert "/api/v1/health" in code
    # The same request against the app: a 200 means the check passes.
    from rechenwerk.app import create_app
    from rechenwerk.config import Settings
    from rechenwerk.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'rw.db'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path / "var", database_url=url, scheduler_enabled=False)
    with TestClient(create_app(settings)) as client:
        path = re.search(r"'(/api/v1/[^']+)'", code)
        assert path is not None
        assert client.get(path.group(1)).status_code == 200
    compile(code, "HEALTHCHECK", "exec")

"""``pip install rechenwerk`` is a server without PyTorch, Playwright or test tools; those
come with the extras ``recipes`` and ``dev``. ``make run`` installs only the package,
``make test`` the package with both extras (two stamps)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Never in the base install: development, test and training packages.
NOT_BASE = {"torch", "playwright", "pytest", "pytest-xdist", "hypothesis", "mypy", "ruff",
            "types-pyyaml", "aiosmtpd", "trustme"}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def _project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project: dict[str, object] = data["project"]
    return project


def test_base_dependencies_leave_training_and_test_packages_to_extras() -> None:
    project = _project()
    base = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    assert not base & NOT_BASE, f"in the base install: {sorted(base & NOT_BASE)}"
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    assert "torch" in {_name(r) for r in extras["recipes"]}
    dev = {_name(r) for r in extras["dev"]}
    assert {"pytest", "mypy", "ruff", "playwright"} <= dev


def test_server_import_path_needs_no_extra(tmp_path: Path) -> None:
    """The server's start-up (CLI, app factory, a health request) imports nothing from
    the extras, so the slim install serves."""
    code = """
import json, sys
from fastapi.testclient import TestClient
from rechenwerk.cli.main import app as _cli  # every command module registers
from rechenwerk.cli.server import app_factory
from rechenwerk.store.migrate import upgrade
from rechenwerk.config import get_settings
upgrade(get_settings().effective_database_url)
with TestClient(app_factory()) as client:
    status = client.get("/api/v1/health").status_code
print(json.dumps({"status": status, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""
    env = {**os.environ, "RECHENWERK_DATA_DIR": str(tmp_path / "var"),
           "RECHENWERK_SCHEDULER_ENABLED": "false", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200
    loaded = set(out["modules"])
    assert not loaded & {"torch", "playwright", "pytest", "_pytest", "hypothesis", "mypy"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_only_the_package_and_jupyterlab(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # absent: make prints every step it would take
    run = subprocess.run(["make", "-n", "-C", str(ROOT), "run", f"VENV={venv}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    installs = [line for line in run.splitlines() if "pip install" in line]
    # the server and JupyterLab for the portal's notebooks; no test tools, no torch
    assert any(line.endswith("pip install --quiet -e '.[sessions]'") for line in installs), run
    assert not any("dev" in line or "recipes" in line for line in installs), run
    test = subprocess.run(["make", "-n", "-C", str(ROOT), "test", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "pip install --quiet -e '.[dev,recipes,sessions]'" in test, test
    # After `make run`, `make test` still installs the extras (its own stamp).
    venv.mkdir()
    (venv / "bin").mkdir()
    (venv / "bin" / "python").touch(mode=0o755)
    (venv / ".installed-run").touch()
    test = subprocess.run(["make", "-n", "-C", str(ROOT), "test", f"VENV={venv}"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "pip install --quiet -e '.[dev,recipes,sessions]'" in test, test
    run = subprocess.run(["make", "-n", "-C", str(ROOT), "run", f"VENV={venv}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "pip install" not in run, run

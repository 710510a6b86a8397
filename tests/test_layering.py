"""The scheduling core and the simulator are pure: they import no database, web, CLI or
backend code, and never read the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rechenwerk"
FORBIDDEN_MODULES = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "typer",
    "httpx",
    "prometheus_client",
    "rechenwerk.observability",
    "rechenwerk.store",
    "rechenwerk.api",
    "rechenwerk.web",
    "rechenwerk.cli",
    "rechenwerk.execution",
    "rechenwerk.jobs",
    "rechenwerk.access",
    "rechenwerk.accounting",
)
WALL_CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"),
                    ("datetime", "utcnow"), ("time", "perf_counter")}


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for pkg in ("scheduling", "simulation"):
        files.extend(sorted((SRC / pkg).rglob("*.py")))
    return files


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_core_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert not name.startswith(FORBIDDEN_MODULES), f"{path.name} imports {name}"


@pytest.mark.parametrize(
    "path",
    sorted((SRC / "scheduling").rglob("*.py")),
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_scheduling_core_never_reads_the_wall_clock(path: Path) -> None:
    # Only the core: the simulator may time itself (wall_seconds, jobs_per_second).
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in WALL_CLOCK_CALLS, (
                f"{path.name} reads the wall clock via {node.value.id}.{node.attr}"
            )

"""One direction between domains and backends: the execution backends import no domain
(they are driven by the domains), and accounting imports no jobs (jobs uses accounting).
Every import counts: module-level, function-local and under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rechenwerk"
RULES: dict[str, tuple[str, ...]] = {
    "execution": (
        "rechenwerk.access",
        "rechenwerk.accounting",
        "rechenwerk.jobs",
        "rechenwerk.reports",
        "rechenwerk.notifications",
        "rechenwerk.api",
        "rechenwerk.web",
        "rechenwerk.cli",
    ),
    "accounting": ("rechenwerk.jobs",),
}


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.append(node.args[0].value)
    return names


CASES = [(pkg, p) for pkg in RULES for p in sorted((SRC / pkg).rglob("*.py"))]


@pytest.mark.parametrize(("pkg", "path"), CASES, ids=[str(p.relative_to(SRC)) for _, p in CASES])
def test_no_import_against_the_direction(pkg: str, path: Path) -> None:
    for name in _imports(path):
        assert not any(name == f or name.startswith(f + ".") for f in RULES[pkg]), (
            f"{path.relative_to(SRC)} imports {name}"
        )

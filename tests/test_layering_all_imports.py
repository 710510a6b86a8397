"""Every import of ``src/`` obeys the layering rules, function-local imports,
``TYPE_CHECKING`` blocks and ``importlib.import_module("...")`` with a literal included.

The rules (docs/architecture.md, "Rules the code keeps"):

- a domain (access, accounting, jobs, planning, reports, notifications, recipes, store,
  support, sessions) never imports a face (``api``, ``web``, ``cli``); its own routers
  (``router.py``, ``*_router.py``) may use the API's dependencies (``rechenwerk.api``) but
  no portal or CLI code;
- ``execution`` (the backends) imports no domain: not access, accounting, jobs, nor a face;
- ``accounting`` imports no ``jobs`` (jobs charge accounting, not the other way round);
- ``scheduling`` and ``simulation`` stay pure (see ``test_layering.py`` for the details);
  they import no metrics either (the scheduler loop observes the core's phases);
- ``observability.instruments`` (counters every layer may use) imports nothing of
  Rechenwerk, and a domain uses nothing else of ``observability`` (its collector reads the
  domains, its HTTP part is a face).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rechenwerk"

FACES = ("rechenwerk.api", "rechenwerk.web", "rechenwerk.cli")
DOMAINS = ("access", "accounting", "jobs", "planning", "reports", "notifications",
           "recipes", "store", "support", "sessions")
DOMAIN_MODULES = tuple(f"rechenwerk.{d}" for d in ("access", "accounting", "jobs",
                                                    "reports", "notifications", "support",
                                                    "sessions"))
INSTRUMENTS = "rechenwerk.observability.instruments"
PURE_FORBIDDEN = ("sqlalchemy", "fastapi", "starlette", "typer", "httpx",
                  "prometheus_client", "rechenwerk.observability", "rechenwerk.store",
                  "rechenwerk.execution", "rechenwerk.jobs",
                  "rechenwerk.access", "rechenwerk.accounting", "rechenwerk.reports",
                  "rechenwerk.notifications", *FACES)


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("rechenwerk", *path.relative_to(SRC).parent.parts))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from rechenwerk import api``
                yield node.lineno, f"{module}.{alias.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(path: Path) -> list[str]:
    rel = path.relative_to(SRC)
    top = rel.parts[0] if len(rel.parts) > 1 else ""
    found: list[str] = []
    seen: set[int] = set()
    for line, module in imports_of(path):
        if line in seen:  # one finding per import statement
            continue
        why = None
        if top in DOMAINS:
            if rel.name == "router.py" or rel.name.endswith("_router.py"):
                if _within(module, ("rechenwerk.web", "rechenwerk.cli")):
                    why = "a domain's router uses the API's dependencies only"
            elif _within(module, FACES):
                why = "a domain never imports a face (api/web/cli)"
            if top == "accounting" and _within(module, ("rechenwerk.jobs",)):
                why = "accounting never imports jobs"
            if (_within(module, ("rechenwerk.observability",))
                    and module not in ("rechenwerk.observability", INSTRUMENTS)
                    and not module.startswith(INSTRUMENTS + ".")):
                why = "a domain uses only observability.instruments of the metrics"
        elif rel.parts[:2] == ("observability", "instruments.py"):
            if module.startswith("rechenwerk") and module != "rechenwerk":
                why = "observability.instruments imports nothing of Rechenwerk"
        elif top == "execution":
            if _within(module, (*DOMAIN_MODULES, *FACES)):
                why = "execution (the backends) imports no domain and no face"
        elif top in ("scheduling", "simulation") and _within(module, PURE_FORBIDDEN):
            why = "the scheduling core and the simulator are pure"
        if why:
            seen.add(line)
            found.append(f"{rel}:{line} imports {module}: {why}")
    return found


def _all_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_every_import_keeps_the_layers() -> None:
    found = [v for path in _all_files() for v in violations(path)]
    assert not found, "layering violations:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("jobs/loop.py", "def f():\n    from rechenwerk.api.deps import x\n", 1),
        ("jobs/router.py", "from rechenwerk.api.deps import DbSession\n", 0),
        ("reports/router.py", "from rechenwerk.web.pages import reports\n", 1),
        ("execution/slurm/sync.py", "def f():\n    from rechenwerk.access import models\n", 1),
        ("accounting/x.py", "import importlib\nimportlib.import_module('rechenwerk.jobs.models')\n",
         1),
        ("accounting/y.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    from rechenwerk.jobs.models import Job\n", 1),
        ("scheduling/z.py", "from rechenwerk import store\n", 1),
        ("access/ok.py", "from rechenwerk.errors import InvalidInput\n", 0),
        ("jobs/m.py", "from rechenwerk.observability import instruments\n", 0),
        ("jobs/n.py", "from rechenwerk.observability.collector import StateCollector\n", 1),
        ("observability/instruments.py", "from rechenwerk.jobs import models\n", 1),
        ("scheduling/p.py", "import prometheus_client\n", 1),
    ],
)
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, rel: str, source: str,
                                               expected: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: function-local, TYPE_CHECKING and importlib imports count."""
    root = tmp_path / "rechenwerk"
    path = root / rel
    path.parent.mkdir(parents=True)
    path.write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["SRC"]), "SRC", root)
    assert len(violations(path)) == expected, violations(path)

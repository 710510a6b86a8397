"""deploy/systemd: the units parse (``systemd-analyze verify`` where installed), every
ExecStart is a command the CLI has, and the server's hardening leaves the local
executor's bubblewrap sandbox, its job cgroups and GPUs working."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_BIN = "/opt/rechenwerk/bin/rechenwerk"  # where docs/operations.md installs it
SERVICES = sorted(UNITS.glob("*.service"))
TIMERS = sorted(UNITS.glob("*.timer"))
DROP_INS = sorted(UNITS.glob("*.service.d/*.conf"))

# Options that would break the sandbox of local jobs, which are children of the server's
# unit (see the comment in rechenwerk.service).
BREAK_SANDBOX = {"RestrictNamespaces", "PrivateUsers", "SystemCallFilter",
                 "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset",
                 "ProtectControlGroups", "PrivateDevices", "DevicePolicy", "DeviceAllow",
                 "ProtectClock", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute"}


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """section -> [(key, value)] in order (systemd allows repeated keys)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}:{number}: key outside a section"
        assert "=" in line, f"{path.name}:{number}: not key=value: {raw!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def test_units_are_there() -> None:
    names = {p.name for p in SERVICES + TIMERS}
    assert {"rechenwerk.service", "rechenwerk-slurm-sync.service",
            "rechenwerk-slurm-sync.timer", "rechenwerk-slurm-import.service",
            "rechenwerk-slurm-import.timer"} <= names
    assert [p.name for p in DROP_INS] == ["run-as-root.conf"]


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_exec_start_is_a_cli_command(path: Path) -> None:
    unit = parse_unit(path)
    commands = values(unit, "Service", "ExecStart")
    assert len(commands) == 1
    argv = shlex.split(commands[0].lstrip("-@:+!"))
    assert argv[0] == INSTALLED_BIN
    # --help after the unit's own arguments: click parses them all first, so an
    # unknown command or option fails here too.
    result = CliRunner().invoke(app, [*argv[1:], "--help"])
    assert result.exit_code == 0, f"{commands[0]}: {result.output}"
    assert "Usage:" in result.output


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_service_account_env_file_and_data_dir(path: Path) -> None:
    unit = parse_unit(path)
    assert values(unit, "Service", "User") == ["rechenwerk"]
    assert values(unit, "Service", "EnvironmentFile") == ["/etc/rechenwerk/env"]
    assert values(unit, "Service", "StateDirectory") == ["rechenwerk"]
    assert values(unit, "Service", "StateDirectoryMode") == ["0700"]
    assert values(unit, "Service", "NoNewPrivileges") == ["yes"]


def test_server_hardening_leaves_the_sandbox_working() -> None:
    unit = parse_unit(UNITS / "rechenwerk.service")
    used = {k for k, _ in unit["Service"]}
    assert not used & BREAK_SANDBOX, sorted(used & BREAK_SANDBOX)
    assert values(unit, "Service", "Delegate") == ["yes"]  # job cgroups below the unit
    # Running jobs outlive a restart of the server (their supervisors are detached).
    assert values(unit, "Service", "KillMode") == ["process"]
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_root_drop_in_only_changes_the_account() -> None:
    unit = parse_unit(DROP_INS[0])
    assert unit == {"Service": [("User", "root"), ("Group", "root")]}


@pytest.mark.parametrize("path", TIMERS, ids=lambda p: p.name)
def test_each_timer_starts_its_service(path: Path) -> None:
    unit = parse_unit(path)
    target = values(unit, "Timer", "Unit") or [path.with_suffix(".service").name]
    assert (UNITS / target[0]).is_file()
    assert values(unit, "Timer", "OnCalendar")
    assert values(unit, "Install", "WantedBy") == ["timers.target"]


def test_sync_runs_after_import() -> None:
    """Both timers fire at the same moments; a new award period must start from settled
    usage (docs/slurm.md, "Award periods")."""
    sync = parse_unit(UNITS / "rechenwerk-slurm-sync.service")
    assert "rechenwerk-slurm-import.service" in " ".join(values(sync, "Unit", "After")).split()
    calendars = {p.name: values(parse_unit(p), "Timer", "OnCalendar") for p in TIMERS}
    assert calendars["rechenwerk-slurm-sync.timer"] == calendars["rechenwerk-slurm-import.timer"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys, bad values, non-executable commands. The
    units point at this venv's rechenwerk instead of /opt/rechenwerk."""
    here = str(Path(sys.executable).parent / "rechenwerk")
    for path in SERVICES + TIMERS + DROP_INS:
        dest = tmp_path / path.relative_to(UNITS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text().replace(INSTALLED_BIN, here))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / p.name) for p in SERVICES + TIMERS)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    # verify exits 0 on unknown keys and bad values, but says so on stderr.
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 0 and not problems, "\n".join(problems)

"""Numeric settings and RECHENWERK_LOCAL_CLUSTER are checked before ``rechenwerk server``
starts: one line naming the variable and the limit, exit code 2, no traceback."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rechenwerk.config import get_settings
from rechenwerk.errors import InvalidInput

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp_path: Path, var: str, value: str) -> tuple[int, str]:
    # A real secret: the development one adds its own warning line before any error.
    env = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "300",
           "RECHENWERK_DATA_DIR": str(tmp_path / "var"),
           "RECHENWERK_SECRET_KEY": secrets.token_hex(32), var: value}
    try:
        res = subprocess.run(
            [sys.executable, "-m", "rechenwerk.cli.main", "server", "--port", str(_free_port())],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{var}={value!r}: the server started instead of refusing the value")
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize(("var", "value", "text"), [
    ("RECHENWERK_SCHEDULER_INTERVAL_S", "-1", "greater than or equal to 0.05"),
    ("RECHENWERK_SCHEDULER_INTERVAL_S", "nan", "finite number"),
    ("RECHENWERK_SCHEDULER_INTERVAL_S", "inf", "finite number"),
    ("RECHENWERK_SCHEDULER_INTERVAL_S", "86400", "less than or equal to 3600"),
    ("RECHENWERK_KILL_GRACE_S", "-5", "greater than or equal to 0"),
    ("RECHENWERK_KILL_GRACE_S", "nan", "finite number"),
    ("RECHENWERK_PORT", "70000", "less than or equal to 65535"),
    ("RECHENWERK_SMTP_PORT", "0", "greater than or equal to 1"),
])
def test_absurd_numeric_setting_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           var: str, value: str, text: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInput, match=f"{var}: .*{text}"):
        get_settings()
    code, out = start_server(tmp_path, var, value)
    assert code == 2 and "Traceback" not in out, out[-2000:]
    assert out.splitlines()[0].startswith(f"error: {var}: ") and text in out.splitlines()[0]


def test_sensible_numeric_settings_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHENWERK_SCHEDULER_INTERVAL_S", "0.2")
    monkeypatch.setenv("RECHENWERK_KILL_GRACE_S", "0")
    s = get_settings()
    assert s.scheduler_interval_s == 0.2 and s.kill_grace_s == 0.0


@pytest.mark.parametrize(("value", "text"), [
    ("2x", "not NODESxGPUS"),
    ("0x8", "at least one node"),
    ("abc", "not NODESxGPUS"),
    ("10000000x8", "more nodes than the limit of 4,096"),
    ("2x100000", "more GPUs per node than the limit of 256"),
])
def test_bad_local_cluster_stops_the_server_with_one_line(tmp_path: Path, value: str,
                                                          text: str) -> None:
    code, out = start_server(tmp_path, "RECHENWERK_LOCAL_CLUSTER", value)
    assert code == 2 and "Traceback" not in out, out[-2000:]
    first = out.splitlines()[0]
    assert first.startswith("error: RECHENWERK_LOCAL_CLUSTER: ") and text in first, first

"""Production mode: the server refuses the development secret, SQLite on a network bind
and demo data, naming the setting to change; the embedded default still starts."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from rechenwerk.access.demo import load_demo
from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.production import check_production, is_loopback, production_reason

KEY = secrets.token_hex(32)
BIN = Path(sys.executable).parent / "rechenwerk"


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("", False), ("::", False), ("10.1.2.3", False),
    ("login01.centre.eu", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_embedded_default_is_not_production(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert production_reason(settings, "127.0.0.1") is None
    check_production(settings, "127.0.0.1", None)  # development secret and all


def test_development_secret_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"production \(RECHENWERK_ENV=production\): "
                                           "RECHENWERK_SECRET_KEY is the development value"):
        check_production(_settings(tmp_path, env="production"), "127.0.0.1", None)
    with pytest.raises(InvalidInput, match=r"listens on 0\.0\.0\.0.*RECHENWERK_SECRET_KEY"):
        check_production(_settings(tmp_path), "0.0.0.0", None)


def test_sqlite_on_a_network_bind_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, secret_key=KEY)
    with pytest.raises(InvalidInput, match="SQLite is for one machine") as exc:
        check_production(settings, "0.0.0.0", None)
    assert exc.value.field == "database_url" and "PostgreSQL" in (exc.value.hint or "")
    # production on loopback (behind a reverse proxy on the same machine) may use SQLite
    check_production(_settings(tmp_path, secret_key=KEY, env="production"), "127.0.0.1", None)


def test_demo_data_refused(tmp_path: Path, session: Session) -> None:
    settings = _settings(tmp_path, secret_key=KEY, env="production")
    check_production(settings, "127.0.0.1", session)  # an empty database is fine
    load_demo(session, now=datetime.now(UTC))
    session.flush()
    with pytest.raises(InvalidInput, match=r"demo data is loaded: .*greta.*operator"):
        check_production(settings, "127.0.0.1", session)


def test_server_refuses_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECHENWERK_")}
    env.update(RECHENWERK_DATA_DIR=str(tmp_path / "var"))
    r = subprocess.run([str(BIN), "server", "--host", "0.0.0.0", "--port", "1"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: production (the server listens on 0.0.0.0, beyond "
                               "this machine): RECHENWERK_SECRET_KEY")
    assert "Traceback" not in r.stderr

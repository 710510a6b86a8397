"""A bad RECHENWERK_* value is one clear error naming the variable, also from the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.config import get_settings
from rechenwerk.errors import InvalidInput


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(("var", "value", "text"), [
    ("RECHENWERK_QOS_MAX_WALLTIME", "high=12h", "RECHENWERK_QOS_MAX_WALLTIME: not valid JSON"),
    ("RECHENWERK_SMTP_TLS", "bogus", "RECHENWERK_SMTP_TLS: Input should be"),
    ("RECHENWERK_PORT", "eighty", "RECHENWERK_PORT: "),
])
def test_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch, var: str,
                                        value: str, text: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInput, match=text):
        get_settings()
    r = CliRunner().invoke(app, ["server", "--port", "1"])
    assert r.exit_code == 2 and text in r.output and "Traceback" not in r.output

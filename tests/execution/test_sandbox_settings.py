"""Which sandbox the settings give, and the clear errors when it cannot be had."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rechenwerk.config import Settings
from rechenwerk.errors import InvalidInput
from rechenwerk.execution import factory
from rechenwerk.execution.local import LocalExecutor
from rechenwerk.execution.sandbox import parse_id_range
from rechenwerk.private_files import secure_data_dir


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "var", **kw)  # type: ignore[arg-type]


def test_off_warns_that_jobs_see_the_server(tmp_path: Path) -> None:
    box, warning = factory.resolve_sandbox(_settings(tmp_path, local_isolation="off"))
    assert box is None and warning and "for one trusted user only" in warning


def test_without_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "find_bwrap", lambda: None)
    box, warning = factory.resolve_sandbox(_settings(tmp_path))  # auto
    assert box is None and warning and "NOT isolated" in warning and "apt-get install" in warning
    with pytest.raises(InvalidInput, match="LOCAL_ISOLATION=sandbox, but bubblewrap"):
        factory.resolve_sandbox(_settings(tmp_path, local_isolation="sandbox"))


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_auto_sandboxes_with_accounts_under_root(tmp_path: Path) -> None:
    settings = _settings(tmp_path, local_sandbox_ro="/srv/datasets",
                         local_pass_env="HF_HOME, WANDB_MODE")
    box, warning = factory.resolve_sandbox(settings)
    if box is None:
        pytest.skip(f"bubblewrap cannot run here: {warning}")
    assert warning is None and box.read_only == ("/srv/datasets",)
    assert box.pass_env == {"HF_HOME", "WANDB_MODE"}
    assert (box.uids is not None) == (os.geteuid() == 0)
    backend = factory.make_backend(settings)
    assert isinstance(backend, LocalExecutor) and backend.sandbox == box
    assert backend.pids_max == 4096


@pytest.mark.parametrize("bad", ["", "5", "10-1", "0-100", "a-b", "1000-99999999999"])
def test_bad_id_ranges(bad: str) -> None:
    with pytest.raises(InvalidInput, match="RECHENWERK_LOCAL_JOB_UIDS"):
        parse_id_range(bad, "RECHENWERK_LOCAL_JOB_UIDS")


def test_relative_extra_path_is_refused(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    with pytest.raises(InvalidInput, match="not an absolute path"):
        factory.resolve_sandbox(_settings(tmp_path, local_sandbox_rw="data/scratch"))


def test_data_dir_made_private(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "demo-tokens.json").write_text("{}")
    (data / "demo-tokens.json").chmod(0o644)
    notes = secure_data_dir(data)
    assert len(notes) == 2 and "now 700" in notes[0]
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "demo-tokens.json").stat().st_mode & 0o777 == 0o600
    assert secure_data_dir(data) == []
    fresh = tmp_path / "new" / "var"
    assert secure_data_dir(fresh) == [] and fresh.stat().st_mode & 0o777 == 0o700

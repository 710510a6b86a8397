"""RECHENWERK_SLURM_COMMAND_PREFIX: every Slurm command the CLI transport (and the REST
transport's ``scontrol token``) runs goes through the prefix, before ``runuser``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rechenwerk.config import Settings, get_settings
from rechenwerk.errors import BackendUnavailable, InvalidInput
from rechenwerk.execution.slurm import cli_transport as cli_mod
from rechenwerk.execution.slurm import make_transport
from rechenwerk.execution.slurm import rest_transport as rest_mod
from rechenwerk.execution.slurm.cli_transport import CliTransport, with_prefix
from rechenwerk.execution.slurm.rest_transport import RestTransport
from rechenwerk.execution.slurm.types import SubmitSpec


@pytest.fixture
def prefix_bin(tmp_path: Path) -> Path:
    """An executable the prefix names (never run: subprocess.run is replaced)."""
    exe = tmp_path / "chroot-like"
    exe.write_text('#!/bin/sh\nexec "$@"\n')
    exe.chmod(0o755)
    return exe


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if "sbatch" in argv:
            out = "4242\n"
        elif "ping" in argv:
            out = "Slurmctld(primary) at h is UP\n"
        elif "token" in argv:
            out = "SLURM_JWT=tok\n"
        elif "version" in argv:  # the data-format probe (versions.py)
            out = "slurm 22.05.8\n"
        elif "--json" in argv:
            out = json.dumps({"jobs": [], "errors": []})
        else:
            out = ""
        return subprocess.CompletedProcess(argv, 0, out, "")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(cli_mod.subprocess, "run", rec)
    monkeypatch.setattr(rest_mod.subprocess, "run", rec)
    return rec


def _spec(user: str | None) -> SubmitSpec:
    return SubmitSpec(
        script="#!/bin/bash\ntrue\n",
        name="t",
        account="acct",
        partition="debug",
        time_limit_min=5,
        nodes=1,
        gpus_per_node=1,
        workdir="/tmp/w",
        stdout="/tmp/w/o",
        stderr="/tmp/w/e",
        user=user,
    )


def test_every_command_goes_through_the_prefix_before_runuser(
    recorder: Recorder, prefix_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(cli_mod, "_current_user", lambda: "root")
    t = CliTransport(command_prefix=(str(prefix_bin), "/srv/root"))
    assert t.submit(_spec("alice")) == "4242"
    t.cancel("4242")
    t.live_jobs()
    t.accounted_jobs(job_ids=["4242"])
    t.ping()
    t.add_user("alice", "acct")
    # the first JSON read probes the release (`scontrol version`) through the prefix too
    probe = [c for c in recorder.calls if "version" in c]
    assert len(probe) == 1 and probe[0][2:] == ["scontrol", "version"]
    recorder.calls.remove(probe[0])
    assert len(recorder.calls) == 6
    for argv in (*recorder.calls, *probe):
        assert argv[:2] == [str(prefix_bin), "/srv/root"], argv
    sbatch = recorder.calls[0]
    # the bare command name: it is looked up inside the root / on the far side
    assert sbatch[2:7] == ["runuser", "-u", "alice", "--", "sbatch"]
    assert "--chdir=/tmp/w" in sbatch  # chroot and ssh start in "/" or $HOME
    assert [a[2] for a in recorder.calls[1:]] == [
        "scancel",
        "squeue",
        "sacct",
        "scontrol",
        "sacctmgr",
    ]


def test_no_prefix_runs_the_commands_as_before(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    CliTransport().ping()
    assert recorder.calls == [["/usr/bin/scontrol", "ping"]]


def test_ssh_prefix_quotes_each_argument_for_the_remote_shell(tmp_path: Path) -> None:
    ssh = tmp_path / "ssh"
    ssh.write_text("#!/bin/sh\n")
    ssh.chmod(0o755)
    argv = with_prefix((str(ssh), "login1"), ["sbatch", "--comment=a b; rm -rf /", "--x=$(id)"])
    assert argv == [str(ssh), "login1", "sbatch", "'--comment=a b; rm -rf /'", "'--x=$(id)'"]


def test_a_missing_prefix_program_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="'/nonexistent/chroot' is not found"):
        CliTransport(command_prefix=("/nonexistent/chroot", "/r")).ping()


def test_rest_tokens_and_cli_fallback_use_the_prefix(recorder: Recorder, prefix_bin: Path) -> None:
    t = RestTransport("http://127.0.0.1:1", command_prefix=(str(prefix_bin), "/srv/root"))
    assert t._headers("alice")["X-SLURM-USER-TOKEN"] == "tok"
    assert recorder.calls[0][:4] == [str(prefix_bin), "/srv/root", "scontrol", "token"]
    assert t._sacctmgr_fallback("test").command_prefix == (str(prefix_bin), "/srv/root")
    t.close()


@pytest.fixture
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_setting_is_split_like_a_shell_and_reaches_the_transports(prefix_bin: Path) -> None:
    s = Settings(slurm_command_prefix=f"  '{prefix_bin}' '/var/lib/a root' ")
    assert s.slurm_command_prefix_argv == (str(prefix_bin), "/var/lib/a root")
    t = make_transport(s)
    assert isinstance(t, CliTransport) and t.command_prefix == s.slurm_command_prefix_argv
    assert Settings().slurm_command_prefix_argv == ()


@pytest.mark.usefixtures("_fresh_settings")
def test_bad_prefix_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHENWERK_SLURM_COMMAND_PREFIX", "ssh 'login1")
    text = r"RECHENWERK_SLURM_COMMAND_PREFIX: .*not a command line"
    with pytest.raises(InvalidInput, match=text):
        get_settings()

"""No user string ever reaches a shell unquoted: job names, commands, environment values,
paths. Unit tests on the generated script, then the same hostile job on real Slurm:
the file the injections would create must never appear."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
from slurm_helpers import SlurmAccount, cli, request, rest_jwt, wait_state

from rechenwerk.errors import InvalidInput
from rechenwerk.execution.base import BackendJobState
from rechenwerk.execution.slurm import SlurmBackend
from rechenwerk.execution.slurm.script import build_submit_spec, sanitize_job_name


def hostile(marker: Path) -> list[str]:
    m = shlex.quote(str(marker))
    return [
        f"$(touch {m})",
        f"`touch {m}`",
        f"'; touch {m}; '",
        f'"; touch {m}; "',
        f"x\ntouch {m}\n",
        "$(rm -rf /)",
        f"a;touch {m}",
        f"${{IFS}}touch${{IFS}}{m}",
        f"%j%u\\$(touch {m})",
    ]


def test_sanitized_names() -> None:
    assert sanitize_job_name("$(rm -rf /)") == "rm_-rf"
    assert sanitize_job_name("train llama 7b") == "train_llama_7b"
    assert sanitize_job_name("'\"\n;") == "job"
    assert sanitize_job_name("x" * 200) == "x" * 64


def _bash_syntax_ok(script: str) -> None:
    proc = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("nodes", [1, 2])
def test_script_quotes_every_user_string(tmp_path: Path, nodes: int) -> None:
    marker = tmp_path / "pwned"
    evil = hostile(marker)
    req = request(
        "proj-a",
        "alice",
        tmp_path,
        command=("echo", *evil),
        name=evil[0],
        env={f"V{i}": v for i, v in enumerate(evil)},
        nodes=nodes,
    )
    spec = build_submit_spec(req, partition="debug")
    assert spec.name == sanitize_job_name(evil[0])
    _bash_syntax_ok(spec.script)
    # Each hostile string appears only inside single quotes (shlex.quote's form).
    for s in evil:
        assert shlex.quote(s) in spec.script
    if nodes == 1:
        # Run the whole generated script in a real bash: echo prints, nothing is evaluated.
        proc = subprocess.run(
            ["bash", "-c", spec.script], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        for s in evil:
            assert s in proc.stdout
    assert not marker.exists()


def test_bad_env_names_and_reserved_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        build_submit_spec(request("p", "u", tmp_path, env={"A;touch x": "1"}), partition="debug")
    assert exc.value.field == "env.A;touch x"
    with pytest.raises(InvalidInput):
        build_submit_spec(request("p", "u", tmp_path, env={"SLURM_JOB_ID": "1"}), partition="d")
    with pytest.raises(InvalidInput) as exc:
        build_submit_spec(request("Proj A; x", "u", tmp_path), partition="debug")
    assert exc.value.field == "project"


def test_percent_in_log_path_is_literal(tmp_path: Path) -> None:
    req = request("p", "u", tmp_path / "run%j")
    spec = build_submit_spec(req, partition="debug")
    assert spec.stdout.endswith("run%%j/logs-1/stdout.log")


@pytest.mark.slurm
@pytest.mark.xdist_group("slurm")
@pytest.mark.parametrize("transport", ["cli", "rest-jwt"])
def test_hostile_job_on_real_slurm(slurm_account: SlurmAccount, transport: str) -> None:
    acc = slurm_account
    marker = acc.tmp / f"pwned-{uuid.uuid4().hex[:6]}"
    evil = hostile(marker)
    backend = SlurmBackend(
        cli() if transport == "cli" else rest_jwt()
    )
    try:
        # the job prints its argv and env one per line, NUL-free; nothing is evaluated
        req = request(
            acc.name,
            acc.user,
            acc.tmp,
            command=("printf", "%s\\n", *evil),
            name="\n".join(evil),
            env={f"V{i}": v for i, v in enumerate(evil)},
            nodes=2,
            job_id=f"h{transport}",
        )
        handle = backend.submit(req)
        st = wait_state(backend, handle)
        assert st.state is BackendJobState.COMPLETED, st
        out = (Path(req.log_dir) / "stdout.log").read_text()
        for s in evil:
            assert out.count(s) >= 2  # printed verbatim by each of the two srun tasks
        assert not marker.exists()
        assert st.name == sanitize_job_name(req.name)
    finally:
        backend.close()
    assert not marker.exists()

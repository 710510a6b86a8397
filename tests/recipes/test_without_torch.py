"""A slim install (``pip install rechenwerk``, no ``recipes`` extra) has no PyTorch: the
recipes' scripts and their job scripts then stop with one line naming the extra, not a
traceback per rank. ``python -S`` (no site-packages) stands in for such an interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rechenwerk.cli.main import app

RECIPES = Path(__file__).resolve().parents[2] / "src" / "rechenwerk" / "recipes"
runner = CliRunner()


@pytest.mark.parametrize("script", ["gpt_pretrain/train_gpt.py",
                                    "allreduce_check/allreduce_check.py"])
def test_script_without_torch_names_the_extra(script: str) -> None:
    proc = subprocess.run([sys.executable, "-S", str(RECIPES / script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "PyTorch is not installed" in lines[0]
    assert "pip install 'rechenwerk[recipes]'" in lines[0]


@pytest.mark.parametrize("name", ["gpt-pretrain", "allreduce-check"])
def test_job_script_without_torch_names_the_extra(name: str, tmp_path: Path) -> None:
    # A Python without site-packages: a wrapper the job script calls as $PYTHON.
    wrapper = tmp_path / "python-without-torch"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    res = runner.invoke(app, ["recipe", "init", name, str(tmp_path / "r"), "--project", "p",
                              "--python", str(wrapper)])
    assert res.exit_code == 0, res.output
    script = yaml.safe_load((tmp_path / "r" / "job.yaml").read_text())["script"]
    proc = subprocess.run(["sh", "-c", script], cwd=tmp_path / "r", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"{name}: PyTorch is not installed for {wrapper}: pip install 'rechenwerk[recipes]' "
        "there (or rechenwerk recipe init --python)")

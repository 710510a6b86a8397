"""``rechenwerk recipe list | show | init``: the recipes are package data, ``init`` writes
a directory whose job.yaml is a valid job spec of the requested shape, and bad input is
one clear line with an exit code (nothing written)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rechenwerk.cli.jobs import load_spec_file
from rechenwerk.cli.main import app
from rechenwerk.jobs.specs import parse_spec
from rechenwerk.planning.hardware import load_catalogue
from rechenwerk.recipes import RECIPES, match_gpu

runner = CliRunner()


def test_list_names_every_recipe() -> None:
    res = runner.invoke(app, ["recipe", "list", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [r["name"] for r in listed] == ["gpt-pretrain", "allreduce-check"]
    assert listed[0]["checkpoint_interval"] == "5m" and listed[1]["checkpoint_interval"] is None
    table = runner.invoke(app, ["recipe", "list"])
    assert table.exit_code == 0 and "gpt-pretrain" in table.stdout
    assert "allreduce-check" in table.stdout


def test_show_prints_the_readme_and_files() -> None:
    res = runner.invoke(app, ["recipe", "show", "gpt-pretrain"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("# gpt-pretrain")
    assert "files: README.md, job.yaml, train_gpt.py" in res.stdout
    one = runner.invoke(app, ["recipe", "show", "allreduce-check", "--file", "job.yaml"])
    assert one.exit_code == 0 and "@PROJECT@" in one.stdout  # the template itself
    bad = runner.invoke(app, ["recipe", "show", "allreduce-check", "--file", "nope.py"])
    assert bad.exit_code == 3 and "allreduce_check.py" in bad.stderr


@pytest.mark.parametrize("name", list(RECIPES))
def test_init_writes_a_submittable_recipe(name: str, tmp_path: Path) -> None:
    dest = tmp_path / "run"
    res = runner.invoke(app, ["recipe", "init", name, str(dest), "--project", "nordlicht-llm",
                              "--gpus", "16", "--nodes", "2", "--walltime", "2h"])
    assert res.exit_code == 0, res.output
    recipe = RECIPES[name]
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["README.md", "job.yaml", recipe.script])
    assert (dest / recipe.script).stat().st_mode & 0o111  # executable
    assert f"rechenwerk submit {dest / 'job.yaml'}" in res.stdout
    # What `rechenwerk submit DIR/job.yaml` reads and sends:
    doc = load_spec_file(dest / "job.yaml")
    spec = parse_spec(doc)
    assert (spec.name, spec.project, spec.gpus, spec.nodes, spec.gpus_per_node) == (
        name, "nordlicht-llm", 16, 2, 8)
    assert spec.walltime_s == 7200 and spec.workdir == str(dest)
    assert spec.checkpoint_interval_s == (300 if recipe.checkpoint_interval else None)
    assert spec.script is not None and "@" not in spec.script
    # The launcher runs this interpreter (it has torch when the extra is installed).
    assert f"PYTHON={sys.executable}" in spec.script
    assert f"{recipe.script}" in spec.script.splitlines()[-1]
    # The copied script is the packaged one.
    packaged = Path(__file__).resolve().parents[2] / "src" / "rechenwerk" / "recipes"
    assert (dest / recipe.script).read_text() == (
        packaged / recipe.directory / recipe.script).read_text()


def test_init_defaults_and_options(tmp_path: Path) -> None:
    res = runner.invoke(app, ["recipe", "init", "gpt-pretrain", str(tmp_path / "a"),
                              "--checkpoint-interval", "2m", "--python", "/opt/py 3/bin/python"])
    assert res.exit_code == 0, res.output
    assert "no --project given" in res.stderr
    doc = yaml.safe_load((tmp_path / "a" / "job.yaml").read_text())
    assert doc["project"] == "CHANGE-ME" and doc["gpus"] == 2 and doc["nodes"] == 1
    assert doc["gpus_per_node"] == 2 and doc["walltime"] == "30m"
    assert doc["checkpoint_interval"] == "2m"
    assert "PYTHON='/opt/py 3/bin/python'" in doc["script"]  # shell-quoted
    # An existing empty directory is fine.
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["recipe", "init", "allreduce-check", str(tmp_path / "empty"),
                              "-p", "p1"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["gpt"], 3, "unknown recipe 'gpt'; known recipes: gpt-pretrain, allreduce-check"),
        (["gpt-pretrain", "--gpus", "0"], 2, "--gpus must be at least 1"),
        (["gpt-pretrain", "--gpus", "-4"], 2, "--gpus must be at least 1"),
        (["gpt-pretrain", "--nodes", "0"], 2, "--nodes must be at least 1"),
        (["gpt-pretrain", "--gpus", "3", "--nodes", "2"], 2, "not a multiple of --nodes 2"),
        (["gpt-pretrain", "--walltime", "soon"], 2, "--walltime: 'soon' is not a duration"),
        (["gpt-pretrain", "--walltime", "1m"], 2, "checkpoint interval 5m is longer than"),
        (["allreduce-check", "--checkpoint-interval", "1m"], 2, "does not checkpoint"),
        (["gpt-pretrain", "--project", "two words"], 2, "is not a project slug"),
        (["gpt-pretrain", "--gpus", "many"], 2, "--gpus"),  # Typer's own check
    ],
)
def test_init_errors_are_one_line(args: list[str], code: int, needle: str,
                                  tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    res = runner.invoke(app, ["recipe", "init", args[0], str(dest), *args[1:]])
    assert res.exit_code == code, res.output
    assert needle in res.stderr and "Traceback" not in res.output + res.stderr
    assert not dest.exists()  # nothing written


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["recipe", "init", "gpt-pretrain", str(tmp_path)])
    assert res.exit_code == 5
    assert f"directory {tmp_path} is not empty" in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    res = runner.invoke(app, ["recipe", "init", "gpt-pretrain", str(tmp_path / "notes.txt")])
    assert res.exit_code == 5 and "is not a directory" in res.stderr


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("NVIDIA H100 PCIe", "H100-PCIe"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA H200", "H200"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("AMD Instinct MI300X", "MI300X"),
        ("NVIDIA L40S", "L40S"),
        ("h100-sxm", "H100-SXM"),  # a catalogue name given with --gpu-type
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_device_names_map_to_the_catalogue(device: str, expected: str | None) -> None:
    spec = match_gpu(device, load_catalogue())
    assert (spec.name if spec else None) == expected

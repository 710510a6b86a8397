from __future__ import annotations

import json

from typer.testing import CliRunner

from rechenwerk.cli.main import app

runner = CliRunner()


def test_plan_train_json() -> None:
    res = runner.invoke(app, ["plan", "train", "--params", "70e9", "--tokens", "2e12",
                              "--gpu", "A100-80GB", "--gpus", "1024", "--mfu", "0.4", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["gpu_hours"] == round(8.4e23 / (312e12 * 0.4 * 0.8) / 3600, 1)
    assert d["hardware"]["gpus"] == 1024


def test_plan_train_table_shows_units() -> None:
    res = runner.invoke(app, ["plan", "train", "--params", "70B", "--tokens", "2T",
                              "--gpu", "H100", "--gpus", "1024"])
    assert res.exit_code == 0, res.output
    for unit in ("GPU-hours", "days", "MWh", "t CO2e", "EUR"):
        assert unit in res.stdout


def test_plan_train_bad_input_is_one_line_and_exit_2() -> None:
    res = runner.invoke(app, ["plan", "train", "--params", "70e9", "--tokens", "0",
                              "--gpu", "A100-80GB", "--gpus", "1024"])
    assert res.exit_code == 2
    assert "tokens" in res.stderr and "Traceback" not in res.output + res.stderr
    res = runner.invoke(app, ["plan", "train", "--params", "70e9", "--gpu", "H900",
                              "--gpus", "8"])
    assert res.exit_code == 2
    assert "unknown GPU type" in res.stderr and "A100-80GB" in res.stderr
    res = runner.invoke(app, ["plan", "train", "--params", "lots", "--gpu", "H100",
                              "--gpus", "8"])
    assert res.exit_code == 2 and "params" in res.stderr


def test_plan_train_flags_too_few_gpus() -> None:
    res = runner.invoke(app, ["plan", "train", "--params", "70e9", "--tokens", "2e12",
                              "--gpu", "A100-80GB", "--gpus", "8", "--json"])
    d = json.loads(res.stdout)
    assert d["memory"]["feasible"] is False
    assert any("cannot hold" in w for w in d["warnings"])


def test_plan_gpus_and_grid_list() -> None:
    res = runner.invoke(app, ["plan", "gpus", "--json"])
    names = [g["name"] for g in json.loads(res.stdout)["gpus"]]
    assert "MI300X" in names and "B200" in names
    res = runner.invoke(app, ["plan", "grid", "--json"])
    codes = {g["code"]: g for g in json.loads(res.stdout)}
    assert {"DE", "FR", "FI", "IT", "ES"} <= set(codes)
    assert codes["DE"]["year"] == 2023


def test_plan_centre_json_and_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    demand = tmp_path / "demand.yaml"
    demand.write_text(
        "gpu: H100\nhorizon_days: 4\npolicy: fifo\ntarget: {p90_wait_days: 0.5}\n"
        "search: {min_gpus: 64, max_gpus: 256, points: 3}\n"
        "trainings: [{name: t, params: 1e9, tokens: 9e11, gpus: 64, per_year: 365, "
        "mfu: 0.5, efficiency: 1.0}]\n"
    )
    res = runner.invoke(app, ["plan", "centre", str(demand), "--json", "--plot-dir",
                              str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["chosen"]["gpus"] == 128
    assert (tmp_path / "plots" / "centre-sizing.png").is_file()
    res = runner.invoke(app, ["plan", "centre", str(demand)])
    assert res.exit_code == 0, res.output
    assert "chosen size: 128" in res.stdout and "EUR/year" in res.stdout


def test_plan_centre_bad_file_is_one_line_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpu: H100\ntrainings: []\n")
    res = runner.invoke(app, ["plan", "centre", str(bad)])
    assert res.exit_code == 2
    assert "target" in res.stderr and "Traceback" not in res.output + res.stderr

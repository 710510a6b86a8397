"""``rechenwerk twin validate --real``: the comparison, table, JSON and plot without a
cluster (the real schedule comes from an earlier run's JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rechenwerk.cli.main import app
from rechenwerk.simulation.slurm_conf import read_slurm_conf
from rechenwerk.simulation.traces import read_trace
from rechenwerk.simulation.twin import prepare_slice, simulate

runner = CliRunner()
CONF = (
    "SchedulerParameters=bf_interval=30\nPriorityType=priority/multifactor\n"
    "PriorityWeightJobSize=1000\nNodeName=node[1-2] CPUs=16 Gres=gpu:a100:4\n"
)
TRACE = "timestamp,duration,num_gpus,gpu_time,cluster\n" + "".join(
    f"2017-10-09 07:{m:02d}:00,{d},{g},{d * g},vc{m % 3}\n"
    for m, d, g in [
        (0, 600, 1),
        (1, 1200, 4),
        (1, 300, 2),
        (2, 900, 8),
        (3, 60, 1),
        (4, 1800, 1),
        (5, 120, 4),
        (6, 600, 2),
        (7, 300, 1),
        (8, 90, 1),
    ]
)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    conf, trace, real = tmp_path / "slurm.conf", tmp_path / "t.csv", tmp_path / "real.json"
    conf.write_text(CONF)
    trace.write_text(TRACE)
    jobs = prepare_slice(
        read_trace(trace, "philly").jobs,
        start=0,
        count=10,
        scale=10,
        max_duration_s=60,
        gpus_per_node=4,
        nodes=2,
        cpus_per_gpu=4,
    )
    sim = simulate(jobs, read_slurm_conf(conf))  # a "real" run that the twin matches
    real.write_text(
        json.dumps(
            {
                "replay": {"t0": 0, "bf_phase_s": None},
                "jobs": [{"id": k, "real": [t.submit, t.start, t.end]} for k, t in sim.items()],
            }
        )
    )
    return conf, trace, real


def test_validate_against_a_saved_real_schedule(tmp_path: Path) -> None:
    conf, trace, real = _files(tmp_path)
    out, png = tmp_path / "out.json", tmp_path / "plot.png"
    r = runner.invoke(
        app,
        [
            "twin",
            "validate",
            "--trace",
            str(trace),
            "--jobs",
            "10",
            "--scale",
            "10",
            "--slurm-conf",
            str(conf),
            "--real",
            str(real),
            "--json",
            str(out),
            "--plot",
            str(png),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Simulator vs real Slurm" in r.output
    data = json.loads(out.read_text())
    f = data["figures"]["event-driven"]
    assert f["jobs"] == 10 and f["median_abs_error_s"] == 0.0 and f["spearman"] == 1.0
    assert data["policy"] == "multifactor+conservative-backfill"
    assert data["replay"]["reused_from"] == str(real)
    assert len(data["jobs"]) == 10 and data["jobs"][0]["real"] is not None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    conf, trace, _ = _files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = runner.invoke(
        app,
        ["twin", "validate", "--trace", str(trace), "--slurm-conf", str(conf), "--real", str(bad)],
    )
    assert r.exit_code != 0 and "cannot read the real schedule" in r.output
    r = runner.invoke(
        app,
        ["twin", "validate", "--trace", str(trace), "--slurm-conf", str(tmp_path / "none.conf")],
    )
    assert r.exit_code != 0 and "cannot read" in r.output and "Traceback" not in r.output

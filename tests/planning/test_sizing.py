from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.hardware import get_gpu
from rechenwerk.planning.sizing import (
    build_workload,
    load_demand,
    parse_demand,
    size_centre,
    write_plot,
)
from rechenwerk.planning.training import estimate_training

# Four 64-GPU trainings of ~1.98 days, one per day: 64 or 96 GPUs queue them (waits of
# 1-3 days), 128 GPUs run two at a time and nobody waits. The answer is 128 GPUs.
TRAINING = {"name": "t1b", "params": 1e9, "tokens": 9e11, "gpus": 64, "per_year": 365,
            "mfu": 0.5, "efficiency": 1.0}


def tiny(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny", "gpu": "H100", "gpus_per_node": 8, "horizon_days": 4,
        "policy": "fifo", "seed": 1, "target": {"p90_wait_days": 0.5},
        "search": {"min_gpus": 64, "max_gpus": 256, "points": 3},
        "trainings": [TRAINING],
    }
    data.update(over)
    return data


def test_training_jobs_take_the_estimated_time() -> None:
    p = parse_demand(tiny())
    jobs, summaries, n_bg, demand = build_workload(p, get_gpu("H100"), [])
    est = estimate_training(params=1e9, tokens=9e11, gpu="H100", gpus=64, mfu=0.5,
                            efficiency=1.0)
    assert len(jobs) == 4 and n_bg == 0
    assert summaries[0].runs_in_horizon == 4
    assert all(j.duration_s == pytest.approx(est.wall_clock_days * 86400) for j in jobs)
    gaps = [b.submit_time - a.submit_time for a, b in itertools.pairwise(jobs)]
    assert gaps == pytest.approx([86400.0] * 3)
    assert demand == pytest.approx(est.gpu_hours * 365)


def test_size_centre_finds_the_smallest_size_meeting_the_target() -> None:
    seen: list[tuple[int, int]] = []
    res = size_centre(parse_demand(tiny()), progress=lambda d, t, _l: seen.append((d, t)))
    assert res.chosen is not None
    assert res.chosen.gpus == 128
    by_size = {c.gpus: c for c in res.curve}
    assert not by_size[64].meets_target and "overloaded" in by_size[64].note
    assert by_size[256].meets_target and by_size[256].p90_wait_days == 0.0
    # bisection visited sizes between the failing 64 and the meeting 128
    assert any(64 < g < 128 for g in by_size)
    assert all(not c.meets_target for c in res.curve if c.gpus < 128)
    assert seen and seen[-1][0] == seen[-1][1] == len(res.curve)
    d = res.to_dict()
    assert d["cost"]["capex_eur"] == 128 * get_gpu("H100").capex_eur
    assert d["cost"]["opex_eur_per_year"] > d["cost"]["maintenance_eur_per_year"] > 0
    assert d["units"]["opex_eur_per_year"] == "EUR/year"


def test_utilisation_target() -> None:
    res = size_centre(parse_demand(tiny(target={"max_utilisation": 0.5})))
    assert res.chosen is not None
    assert res.chosen.utilisation is not None and res.chosen.utilisation <= 0.5
    smaller = [c for c in res.curve if c.gpus < res.chosen.gpus and c.utilisation is not None]
    assert all(c.utilisation is not None and c.utilisation > 0.5 for c in smaller)


def test_unreachable_target_reports_no_size() -> None:
    res = size_centre(parse_demand(tiny(search={"min_gpus": 64, "max_gpus": 96,
                                                "points": 2})))
    assert res.chosen is None and res.cost is None
    assert any("no size" in w for w in res.warnings)


def test_plot_is_written(tmp_path: Path) -> None:
    res = size_centre(parse_demand(tiny()))
    (png,) = write_plot(res, tmp_path / "plots")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"target": {}}, "target"),
        ({"gpu": "H900"}, "gpu"),
        ({"search": {"min_gpus": 512, "max_gpus": 64}}, "search"),
        ({"background": {"trace": "x.csv", "generate": {"total_gpus": 8}}}, "background"),
        ({"trainings": [{**TRAINING, "tokens": 0}]}, "trainings.0.tokens"),
        ({"trainings": [{**TRAINING, "gpus": 512}]}, "search.max_gpus"),
        ({"horizon_days": -1}, "horizon_days"),
    ],
)
def test_bad_portfolio_names_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        size_centre(parse_demand(tiny(**over)))
    assert exc.value.field is not None and exc.value.field.startswith(field)


def test_example_portfolio_parses_and_builds(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    p = load_demand(root / "examples" / "demand.yaml")
    assert p.gpu == "H100-SXM" and p.background is not None
    _jobs, summaries, n_bg, demand = build_workload(p, get_gpu(p.gpu), [])
    assert n_bg > 1000 and {s.name for s in summaries} >= {"flagship-70b"}
    assert demand > 1e6
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InvalidInput) as exc:
        load_demand(missing)
    assert exc.value.field == "demand"


def test_background_from_a_native_trace_file(tmp_path: Path) -> None:
    from rechenwerk.simulation.traces import Trace, TraceJob, write_native_csv

    bg = Trace(jobs=tuple(TraceJob(job_id=f"b{i}", submit_time=1000.0 + 3600 * i,
                                   duration_s=1800.0, gpus=8, gpu_type="V100")
                          for i in range(10)), skipped=(), source="test")
    write_native_csv(bg, tmp_path / "bg.csv")
    yaml_file = tmp_path / "demand.yaml"
    yaml_file.write_text(
        "gpu: H100\nhorizon_days: 4\npolicy: fifo\ntarget: {p90_wait_days: 0.5}\n"
        "search: {min_gpus: 64, max_gpus: 256, points: 3}\n"
        "trainings: [{name: t, params: 1e9, tokens: 9e11, gpus: 64, per_year: 365, "
        "mfu: 0.5, efficiency: 1.0}]\n"
        "background: {trace: bg.csv, format: native}\n"
    )
    p = load_demand(yaml_file)
    jobs, _s, n_bg, _d = build_workload(p, get_gpu("H100"), [])
    assert n_bg == 10
    bg_jobs = [j for j in jobs if j.job_id.startswith("b")]
    assert bg_jobs[0].submit_time == 0.0  # re-based to the trace start
    assert all(j.gpu_type is None for j in bg_jobs)  # runs on the sized GPU type
    assert size_centre(p).chosen is not None


def test_oversized_requests_are_refused_before_simulating() -> None:
    with pytest.raises(InvalidInput) as exc:
        size_centre(parse_demand(tiny(background={"generate": {"total_gpus": 100_000}},
                                      horizon_days=365)))
    assert exc.value.field == "background.generate"
    with pytest.raises(InvalidInput) as exc:
        parse_demand(tiny(search={"max_gpus": 900_000}))
    assert exc.value.field == "search.max_gpus"


def test_trace_background_can_skip_a_quiet_start(tmp_path: Path) -> None:
    from rechenwerk.simulation.traces import Trace, TraceJob, write_native_csv

    jobs = (TraceJob("early", 0.0, 600.0, 1), TraceJob("late", 2.5 * 86400, 600.0, 8))
    write_native_csv(Trace(jobs=jobs, skipped=(), source="t"), tmp_path / "bg.csv")
    p = parse_demand(tiny(background={"trace": "bg.csv", "start_day": 2}), base_dir=tmp_path)
    built, _s, n_bg, _d = build_workload(p, get_gpu("H100"), [])
    (late,) = [j for j in built if j.job_id in ("early", "late")]
    assert n_bg == 1 and late.job_id == "late"
    assert late.submit_time == pytest.approx(0.5 * 86400)


def test_training_not_filling_whole_nodes_lets_the_scheduler_choose_the_shape() -> None:
    odd = {**TRAINING, "gpus": 100, "tokens": 5e11}
    p = parse_demand(tiny(trainings=[odd], search={"min_gpus": 64, "max_gpus": 512,
                                                     "points": 3}))
    jobs, _s, _n, _d = build_workload(p, get_gpu("H100"), [])
    assert all(j.gpus_per_node is None for j in jobs)
    res = size_centre(p)
    assert res.chosen is not None and res.chosen.gpus >= 104


def test_seeds_replicate_the_workload_and_judge_the_mean(tmp_path: Path) -> None:
    # 1.5 runs per horizon: whether a second run falls into it depends on the seed.
    over = {"trainings": [{**TRAINING, "per_year": 365 * 1.5 / 4}], "seeds": 4,
            "background": {"generate": {"total_gpus": 64, "load": 0.3, "seed": 3}}}
    p = parse_demand(tiny(**over))
    res = size_centre(p)
    assert res.to_dict()["seeds"] == 4
    simulated = [c for c in res.curve if c.p90_wait_days is not None]
    assert simulated and all(c.replicates == 4 for c in res.curve)
    for c in simulated:
        lo, hi = c.p90_wait_days_range  # type: ignore[misc]
        assert lo <= c.p90_wait_days <= hi  # type: ignore[operator]
    # The replicates really differ: the workloads of seeds 1..4 are not all the same.
    from rechenwerk.planning.sizing import _replicate

    shapes = {tuple(round(j.submit_time) for j in build_workload(
        _replicate(p, k), get_gpu("H100"), [])[0]) for k in range(4)}
    assert len(shapes) > 1
    # One replicate == the single-seed run.
    single = size_centre(parse_demand(tiny(**{**over, "seeds": 1})))
    assert all(c.replicates == 1 and c.p90_wait_days_range is None for c in single.curve)
    (png,) = write_plot(res, tmp_path)
    assert png.stat().st_size > 0


def test_mean_judges_the_target_and_overload_in_any_replicate_fails() -> None:
    from rechenwerk.planning.sizing import CurvePoint, _combine

    p = parse_demand(tiny(target={"p90_wait_days": 1.0}))
    def pt(p90: float | None, util: float | None = 0.5) -> CurvePoint:
        return CurvePoint(gpus=64, nodes=8, p90_wait_days=p90, training_p90_wait_days=p90,
                          utilisation=util, meets_target=p90 is not None and p90 <= 1.0,
                          jobs=10, offered_load=0.5, simulated_seconds=1.0)
    mean = _combine(p, [pt(0.5), pt(1.9)])  # one replicate misses, the mean (1.2) too
    assert mean.p90_wait_days == pytest.approx(1.2) and not mean.meets_target
    assert mean.p90_wait_days_range == (0.5, 1.9) and mean.replicates == 2
    ok = _combine(p, [pt(0.2), pt(1.4)])  # the mean (0.8) meets it
    assert ok.meets_target and ok.simulated_seconds == 2.0
    over = _combine(p, [pt(0.2), pt(None, None)])
    assert not over.meets_target and over.p90_wait_days is None
    assert "overloaded in 1 of 2 replicates" in over.note


def test_cli_seeds_option(tmp_path: Path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from rechenwerk.cli.main import app

    f = tmp_path / "demand.yaml"
    f.write_text(yaml.safe_dump(tiny()))
    r = CliRunner().invoke(app, ["plan", "centre", str(f), "--seeds", "2", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["seeds"] == 2 and all(c["replicates"] == 2 for c in d["curve"])
    r = CliRunner().invoke(app, ["plan", "centre", str(f), "--seeds", "0"])
    assert r.exit_code == 2

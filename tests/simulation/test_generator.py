"""The LLM-era workload generator: determinism, shape, validation, round trip."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.simulation.traces import Trace, read_trace, write_native_csv
from rechenwerk.simulation.traces.generator import (
    generate_llm_workload,
    project_weights,
)


def kind(job_id: str) -> str:
    return job_id.rsplit("-", 1)[0]


@pytest.fixture(scope="module")
def month() -> Trace:
    return generate_llm_workload(seed=7, days=30, total_gpus=448)


def test_same_seed_same_trace_other_seed_differs() -> None:
    a = generate_llm_workload(seed=3, days=7, total_gpus=256)
    b = generate_llm_workload(seed=3, days=7, total_gpus=256)
    c = generate_llm_workload(seed=4, days=7, total_gpus=256)
    assert a.jobs == b.jobs and a.source == b.source
    assert a.jobs != c.jobs


def test_shape_few_huge_trainings_many_small_jobs(month: Trace) -> None:
    jobs = month.jobs
    kinds = Counter(kind(j.job_id) for j in jobs)
    trains = [j for j in jobs if kind(j.job_id) == "train"]
    small = [j for j in jobs if j.gpus <= 8]
    assert 1 <= len(trains) <= 30
    assert len(small) > 0.8 * len(jobs) and len(jobs) > 1000
    assert set(kinds) == {"train", "debug", "eval", "finetune", "ablation"}
    for t in trains:
        assert 128 <= t.gpus <= 224 and t.gpus % 8 == 0 and t.gpus_per_node == 8
        assert 86_400 <= t.duration_s <= 14 * 86_400
    train_gpu_s = sum(t.gpus * t.duration_s for t in trains)
    total_gpu_s = sum(j.gpus * j.duration_s for j in jobs)
    assert train_gpu_s / total_gpu_s > 0.5  # trainings dominate the GPU-time
    # offered load about 0.9 of 448 GPUs x 30 days (the last training may overshoot)
    assert total_gpu_s / (448 * 30 * 86_400) == pytest.approx(0.9, abs=0.1)
    for j in jobs:
        assert 0 <= j.submit_time < 30 * 86_400
        assert j.gpus <= 448 and (j.gpus <= 8 or j.gpus % 8 == 0)
        assert j.walltime_s is not None and j.walltime_s >= j.duration_s
        assert j.qos in ("normal", "high", "low")
    assert [j.submit_time for j in jobs] == sorted(j.submit_time for j in jobs)
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_projects_skewed_and_diurnal(month: Trace) -> None:
    jobs = month.jobs
    per = Counter(j.project for j in jobs)
    assert len(per) == 6
    counts = [c for _p, c in per.most_common()]
    assert counts[0] > 2 * counts[-1]  # Zipf skew
    assert per.most_common(1)[0][0] == "llm-core"
    hours = Counter(int(j.submit_time // 3600) % 24 for j in jobs)
    afternoon = sum(hours[h] for h in range(12, 17))
    night = sum(hours[h] for h in (0, 1, 2, 3, 4))
    assert afternoon > 2 * night
    weekday = Counter(int(j.submit_time // 86_400) % 7 for j in jobs)
    assert weekday[2] > weekday[6]  # Wednesday busier than Sunday


def test_project_weights_are_normalised_zipf() -> None:
    w = project_weights(3, 1.0)
    assert list(w) == ["llm-core", "multimodal", "nlp-lab"]
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["llm-core"] == pytest.approx(2 * w["multimodal"])
    assert len(project_weights(10, 0.0)) == 10


def test_small_cluster_never_gets_jobs_larger_than_it() -> None:
    tr = generate_llm_workload(seed=1, days=2, total_gpus=16)
    assert tr.jobs and max(j.gpus for j in tr.jobs) <= 16


def test_round_trip_through_native_csv(tmp_path: Path) -> None:
    tr = generate_llm_workload(seed=11, days=3, total_gpus=128, gpu_type="H100")
    back = read_trace(write_native_csv(tr, tmp_path / "gen.csv"))
    assert back.jobs == tr.jobs and back.skipped == ()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"days": 0}, "days"),
        ({"total_gpus": 100}, "total_gpus"),
        ({"seed": -1}, "seed"),
        ({"load": 0}, "load"),
        ({"large_fraction": 1.5}, "large_fraction"),
        ({"n_projects": 0}, "n_projects"),
        ({"walltime_slack": (0.5, 2.0)}, "walltime_slack"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"seed": 1, "days": 1, "total_gpus": 64} | kwargs
    with pytest.raises(InvalidInput) as exc:
        generate_llm_workload(**args)  # type: ignore[arg-type]
    assert exc.value.field == field

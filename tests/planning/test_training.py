from __future__ import annotations

import json

import pytest

from rechenwerk.errors import InvalidInput
from rechenwerk.planning.energy import EnergyParams
from rechenwerk.planning.training import estimate_training, training_flops


def test_flops_are_6nd_and_attention_term_when_shape_given() -> None:
    assert training_flops(70e9, 2e12)[0] == pytest.approx(8.4e23)
    flops, formula = training_flops(70e9, 2e12, layers=80, hidden=8192, seq_len=4096)
    assert flops == pytest.approx(8.4e23 + 12 * 80 * 8192 * 4096 * 2e12)
    assert "12*L*h*s*D" in formula


def test_gpu_hours_days_from_peak_mfu_and_efficiency() -> None:
    est = estimate_training(params=70e9, tokens=2e12, gpu="A100-80GB", gpus=1024,
                            mfu=0.4, efficiency=0.5)
    expected = 8.4e23 / (312e12 * 0.4 * 0.5) / 3600
    assert est.gpu_hours == pytest.approx(expected)
    assert est.wall_clock_days == pytest.approx(expected / 1024 / 24)
    assert est.mfu_source == "given"


def test_defaults_come_from_the_gpu_generation() -> None:
    a100 = estimate_training(params=7e9, tokens=1e12, gpu="A100-80GB", gpus=64)
    h100 = estimate_training(params=7e9, tokens=1e12, gpu="H100-SXM", gpus=64)
    assert (a100.mfu, a100.efficiency) == (0.5, 0.8)
    assert h100.mfu == 0.4
    # H100: 989 * 0.4 vs A100: 312 * 0.5 -> about 2.5x fewer GPU-hours
    assert a100.gpu_hours / h100.gpu_hours == pytest.approx(989 * 0.4 / (312 * 0.5))


def test_compute_optimal_tokens_when_omitted_and_moe_uses_active_params() -> None:
    est = estimate_training(params=10e9, gpu="H100", gpus=64)
    assert est.tokens == pytest.approx(200e9)
    assert "compute-optimal" in est.tokens_source
    moe = estimate_training(params=47e9, active_params=13e9, tokens=1e12, gpu="H100", gpus=256)
    assert moe.training_flops == pytest.approx(6 * 13e9 * 1e12)
    assert moe.memory.params_total == 47e9  # memory holds all experts


def test_energy_co2_and_cost_by_hand() -> None:
    energy = EnergyParams(pue=1.5, power_fraction=1.0, node_overhead_w=100.0, country="FR",
                          electricity_eur_per_kwh=0.1, cloud_eur_per_gpu_hour=2.0,
                          capex_eur_per_gpu=8760.0, amortisation_years=1.0,
                          centre_utilisation=1.0, maintenance_fraction=0.0)
    est = estimate_training(params=1e9, tokens=1e11, gpu="A100-80GB", gpus=8, mfu=0.5,
                            efficiency=1.0, energy=energy)
    hours = 6e20 / (312e12 * 0.5) / 3600
    kwh = hours * (400 + 100) / 1000 * 1.5
    assert est.energy.energy_mwh == pytest.approx(kwh / 1000)
    assert est.energy.co2_t == pytest.approx(kwh * 56 / 1e6)
    assert est.energy.cost_cloud_eur == pytest.approx(hours * 2.0)
    # capex 8760 EUR over 1 year of 8760 fully used hours = 1 EUR/GPU-hour
    assert est.energy.cost_own_eur == pytest.approx(hours * 1.0 + kwh * 0.1)


def test_custom_grid_intensity_wins() -> None:
    est = estimate_training(params=1e9, tokens=1e11, gpu="H100", gpus=8,
                            energy=EnergyParams(grid_intensity_g_per_kwh=0.0))
    assert est.energy.co2_t == 0.0
    assert est.energy.grid.code == "CUSTOM"


def test_to_dict_is_json_with_units() -> None:
    d = estimate_training(params=70e9, tokens=2e12, gpu="H100", gpus=1024).to_dict()
    json.dumps(d)
    assert d["units"]["gpu_hours"] == "GPU-hours"
    assert d["units"]["wall_clock_days"] == "days"
    assert d["units"]["energy_mwh"] == "MWh"
    assert d["units"]["co2_t"] == "t CO2e"
    assert d["units"]["cost_cloud_eur"] == "EUR"
    for key in ("gpu_hours", "wall_clock_days", "energy_mwh", "co2_t", "cost_cloud_eur",
                "cost_own_eur", "warnings", "memory"):
        assert key in d


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tokens": 0}, "tokens"),
        ({"tokens": -1e12}, "tokens"),
        ({"params": 0}, "params"),
        ({"params": -7e9}, "params"),
        ({"params": float("nan")}, "params"),
        ({"params": 1e18}, "params"),
        ({"gpu": "H900"}, "gpu"),
        ({"mfu": 0}, "mfu"),
        ({"mfu": 1.2}, "mfu"),
        ({"efficiency": -0.1}, "efficiency"),
        ({"gpus": 0}, "gpus"),
        ({"gpus": 2_000_000}, "gpus"),
        ({"active_params": 80e9}, "active_params"),
        ({"layers": 0}, "layers"),
        ({"sharding": "zero9"}, "sharding"),
        ({"energy": EnergyParams(pue=0.5)}, "pue"),
        ({"energy": EnergyParams(country="XX")}, "country"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"params": 70e9, "tokens": 2e12, "gpu": "A100-80GB", "gpus": 1024}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as exc:
        estimate_training(**args)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_fp8_multiplies_throughput_by_the_measured_speedup() -> None:
    bf16 = estimate_training(params=70e9, tokens=2e12, gpu="H100-SXM", gpus=1024)
    fp8 = estimate_training(params=70e9, tokens=2e12, gpu="H100-SXM", gpus=1024,
                            precision="fp8")
    assert (fp8.precision, fp8.precision_speedup) == ("fp8", 1.3)
    assert bf16.gpu_hours / fp8.gpu_hours == pytest.approx(1.3)
    assert fp8.tokens_per_second_per_gpu / bf16.tokens_per_second_per_gpu == pytest.approx(1.3)
    assert fp8.energy.energy_mwh < bf16.energy.energy_mwh  # fewer GPU-hours at the same power
    faster = estimate_training(params=70e9, tokens=2e12, gpu="H100-SXM", gpus=1024,
                               precision="fp8", fp8_speedup=1.6)
    assert bf16.gpu_hours / faster.gpu_hours == pytest.approx(1.6)
    d = fp8.to_dict()
    assert d["assumptions"]["precision"] == "fp8" and d["hardware"]["peak_fp8_tflops"] > 0


@pytest.mark.parametrize(("kw", "field", "text"), [
    ({"gpu": "A100-80GB", "precision": "fp8"}, "precision", "no FP8 tensor cores"),
    ({"gpu": "H100-SXM", "precision": "fp4"}, "precision", "one of bf16, fp8"),
    ({"gpu": "H100-SXM", "precision": "fp8", "fp8_speedup": 0.9}, "fp8_speedup", "[1, "),
    ({"gpu": "H100-SXM", "precision": "fp8", "fp8_speedup": 3.0}, "fp8_speedup", "[1, "),
    ({"gpu": "H100-SXM", "fp8_speedup": 1.3}, "fp8_speedup", "only with precision fp8"),
])
def test_fp8_inputs_are_checked(kw: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(InvalidInput) as e:
        estimate_training(params=7e9, gpus=8, **kw)  # type: ignore[arg-type]
    assert e.value.field == field and text in e.value.message

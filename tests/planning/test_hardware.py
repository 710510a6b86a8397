from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.config import get_settings
from rechenwerk.errors import InvalidInput
from rechenwerk.planning.hardware import default_catalogue, get_gpu, load_catalogue

REQUIRED = ["V100", "A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "B200",
            "GH200", "MI250X", "MI300X"]


def test_catalogue_has_required_gpus_with_facts_and_sources() -> None:
    cat = load_catalogue()
    for name in REQUIRED:
        g = cat.get(name)
        assert g.peak_bf16_tflops > 0 and g.memory_gb > 0 and g.tdp_w > 0
        assert g.memory_bandwidth_gbs > 0 and 2016 <= g.year <= 2026
        assert "data sheet" in g.source
        assert 0 < g.default_mfu <= 1
    # Facts from ../shared/reference/README.md
    assert cat.get("A100-80GB").peak_bf16_tflops == 312
    assert cat.get("H100-SXM").peak_bf16_tflops == 989
    assert cat.get("B200").peak_bf16_tflops == 2250
    assert cat.get("MI300X").tdp_w == 750
    assert cat.get("H100-SXM").peak_fp8_tflops == 1979
    assert cat.get("V100").peak_fp8_tflops is None


def test_lookup_is_case_insensitive_and_knows_aliases() -> None:
    assert get_gpu("h100").name == "H100-SXM"
    assert get_gpu("a100").name == "A100-80GB"
    assert get_gpu(" mi300x ").name == "MI300X"


def test_unknown_gpu_names_the_field_and_lists_known_types() -> None:
    with pytest.raises(InvalidInput) as exc:
        get_gpu("H900")
    assert exc.value.field == "gpu"
    assert exc.value.hint is not None
    for name in REQUIRED:
        assert name in exc.value.hint


def test_operator_catalogue_extends_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "gpus:\n"
        "  A100-80GB:\n"
        "    capex_eur: 12345\n"
        "  MyAccel:\n"
        "    vendor: Acme\n"
        "    generation: hopper\n"
        "    year: 2025\n"
        "    peak_bf16_tflops: 500\n"
        "    memory_gb: 64\n"
        "    memory_bandwidth_gbs: 2000\n"
        "    tdp_w: 300\n"
    )
    monkeypatch.setenv("RECHENWERK_HARDWARE_CATALOGUE", str(extra))
    get_settings.cache_clear()
    try:
        cat = default_catalogue()
        assert cat.get("A100-80GB").capex_eur == 12345
        assert cat.get("A100-80GB").peak_bf16_tflops == 312  # untouched fields kept
        mine = cat.get("myaccel")
        assert mine.default_mfu == 0.40  # from the hopper generation default
        assert mine.node_overhead_w == pytest.approx(90.0)  # 30% of TDP
        assert str(extra) in cat.sources
    finally:
        get_settings.cache_clear()


def test_invalid_operator_catalogue_lists_the_bad_fields(tmp_path: Path) -> None:
    extra = tmp_path / "bad.yaml"
    extra.write_text("gpus:\n  X1:\n    generation: hopper\n    peak_bf16_tflops: -3\n")
    with pytest.raises(InvalidInput) as exc:
        load_catalogue(str(extra))
    paths = {i.path for i in exc.value.issues}
    assert "gpus.X1.peak_bf16_tflops" in paths
    assert "gpus.X1.memory_gb" in paths


def test_missing_operator_catalogue_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        load_catalogue(str(tmp_path / "nope.yaml"))
    assert exc.value.field == "hardware_catalogue"

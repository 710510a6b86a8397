"""The estimator against published runs: default MFU and efficiency, no per-row tuning."""

from __future__ import annotations

from pathlib import Path

import pytest

from rechenwerk.planning.accuracy import accuracy_table, markdown_table


@pytest.fixture
def rows(shared_dir: Path):  # type: ignore[no-untyped-def]
    return accuracy_table(shared_dir / "reference" / "training-runs.csv")


def test_large_dense_models_within_30_percent(rows) -> None:  # type: ignore[no-untyped-def]
    models = {r.model for r in rows}
    assert {"LLaMA-65B", "Llama-2-70B", "Llama-2-7B", "BLOOM-176B"} <= models
    assert len(rows) >= 8
    for r in rows:
        assert -0.30 <= r.error <= 0.30, f"{r.model}: {r.error:+.1%}"


def test_errors_are_not_all_one_sided(rows) -> None:  # type: ignore[no-untyped-def]
    errors = [r.error for r in rows]
    assert min(errors) < 0 < max(errors)
    assert abs(sum(errors) / len(errors)) < 0.15


def test_markdown_table_lists_every_row(rows) -> None:  # type: ignore[no-untyped-def]
    md = markdown_table(rows)
    assert md.count("\n") == len(rows) + 1
    assert "BLOOM-176B" in md


def test_builtin_reference_is_the_published_table(shared_dir: Path) -> None:
    """``plan accuracy`` needs no checkout beside it: the package ships the same runs."""
    from rechenwerk.planning.accuracy import builtin_reference

    shipped = builtin_reference().read_text()
    assert shipped == (shared_dir / "reference" / "training-runs.csv").read_text()
    assert [r.model for r in accuracy_table()] == [
        r.model for r in accuracy_table(shared_dir / "reference" / "training-runs.csv")]

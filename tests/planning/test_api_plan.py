from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from factories import bearer, make_token, make_user


@pytest.fixture
def auth(session: Session) -> dict[str, str]:
    user = make_user(session)
    token = make_token(session, user)
    session.commit()
    return bearer(token)


def test_plan_train_needs_authentication(api_client: Any) -> None:
    res = api_client.post("/api/v1/plan/train",
                          json={"params": 7e9, "gpu": "H100", "gpus": 64})
    assert res.status_code == 401


def test_plan_train_returns_the_estimate(api_client: Any, auth: dict[str, str]) -> None:
    res = api_client.post("/api/v1/plan/train", headers=auth, json={
        "params": 70e9, "tokens": 2e12, "gpu": "A100-80GB", "gpus": 1024, "mfu": 0.4,
        "country": "FR"})
    assert res.status_code == 200, res.text
    d = res.json()
    assert d["gpu_hours"] == pytest.approx(8.4e23 / (312e12 * 0.4 * 0.8) / 3600, abs=0.1)
    assert d["assumptions"]["grid"]["code"] == "FR"
    assert d["units"]["co2_t"] == "t CO2e"


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"tokens": 0}, "tokens"), ({"gpu": "H900"}, "gpu"), ({"mfu": 1.5}, "mfu"),
     ({"gpus": 5_000_000}, "gpus"), ({"params": -1}, "params"), ({"gpus": "many"}, "gpus"),
     ({"pue": 0.2}, "pue"), ({"bogus": 1}, "bogus")],
)
def test_plan_train_bad_input_is_a_422_problem(
    api_client: Any, auth: dict[str, str], patch: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"params": 70e9, "tokens": 2e12, "gpu": "A100-80GB", "gpus": 1024}
    body.update(patch)
    res = api_client.post("/api/v1/plan/train", headers=auth, json=body)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    problem = res.json()
    assert problem["code"] == "invalid_input"
    assert any(e["field"] == field for e in problem["errors"]), problem


@pytest.mark.parametrize(
    ("patch", "field"),
    [  # found by the fuzzer (tests/api/test_fuzz_api.py): each was a 500
        ({"params": 5e-324, "tokens": None}, "params"),  # FLOPs per token 0: 1 / 0
        ({"active_params": 5e-324}, "active_params"),
        ({"tokens": 5e-324}, "tokens"),
        ({"mfu": 1e-300, "efficiency": 1e-300}, "mfu"),  # GPU-hours past a float
        ({"efficiency": 5e-324}, "efficiency"),
        ({"micro_batch": 10**400}, "micro_batch"),  # no float holds its activations
        ({"micro_batch": 10_001}, "micro_batch"),
        # booleans are no numbers (pydantic would read true as 1)
        ({"gpus": True}, "gpus"), ({"params": True}, "params"), ({"layers": True}, "layers"),
        ({"pue": False}, "pue"), ({"micro_batch": True}, "micro_batch"),
    ],
)
def test_plan_train_inputs_that_break_the_arithmetic_are_a_422_naming_the_field(
    api_client: Any, auth: dict[str, str], patch: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {"params": 1e14, "tokens": 1e16, "gpu": "A100-80GB", "gpus": 8}
    body.update(patch)
    body = {k: v for k, v in body.items() if v is not None}
    res = api_client.post("/api/v1/plan/train", headers=auth, json=body)
    assert res.status_code == 422, res.text
    problem = res.json()
    assert problem["errors"][0]["field"] == field, problem


def test_plan_train_smallest_sensible_inputs_still_estimate(
    api_client: Any, auth: dict[str, str]
) -> None:
    res = api_client.post("/api/v1/plan/train", headers=auth, json={
        "params": 1, "tokens": 1, "gpu": "A100-80GB", "gpus": 1, "mfu": 0.001,
        "efficiency": 0.001, "micro_batch": 10_000})
    assert res.status_code == 200, res.text


def test_plan_gpus_and_grid(api_client: Any, auth: dict[str, str]) -> None:
    res = api_client.get("/api/v1/plan/gpus", headers=auth)
    assert res.status_code == 200
    assert "H200" in {g["name"] for g in res.json()["gpus"]}
    res = api_client.get("/api/v1/plan/grid", headers=auth)
    assert {"DE", "FR", "FI", "IT", "ES"} <= {g["code"] for g in res.json()}


TINY = {
    "gpu": "H100", "horizon_days": 4, "policy": "fifo", "target": {"p90_wait_days": 0.5},
    "search": {"min_gpus": 64, "max_gpus": 256, "points": 3},
    "trainings": [{"name": "t", "params": 1e9, "tokens": 9e11, "gpus": 64, "per_year": 365,
                   "mfu": 0.5, "efficiency": 1.0}],
}


def test_plan_centre(api_client: Any, auth: dict[str, str]) -> None:
    res = api_client.post("/api/v1/plan/centre", headers=auth, json=TINY)
    assert res.status_code == 200, res.text
    d = res.json()
    assert d["chosen"]["gpus"] == 128
    assert d["cost"]["capex_eur"] > 0


def test_plan_centre_rejects_server_files_and_bad_targets(
    api_client: Any, auth: dict[str, str]
) -> None:
    body = {**TINY, "background": {"trace": "/etc/passwd", "format": "native"}}
    res = api_client.post("/api/v1/plan/centre", headers=auth, json=body)
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "background.trace"
    res = api_client.post("/api/v1/plan/centre", headers=auth, json={**TINY, "target": {}})
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"].startswith("target")


def test_plan_train_fp8(api_client: Any, auth: dict[str, str]) -> None:
    body = {"params": 70e9, "tokens": 2e12, "gpu": "H100-SXM", "gpus": 1024}
    bf16 = api_client.post("/api/v1/plan/train", headers=auth, json=body).json()
    fp8 = api_client.post("/api/v1/plan/train", headers=auth,
                          json={**body, "precision": "fp8"}).json()
    assert bf16["gpu_hours"] / fp8["gpu_hours"] == pytest.approx(1.3, rel=1e-3)
    bad = api_client.post("/api/v1/plan/train", headers=auth,
                          json={**body, "gpu": "V100", "precision": "fp8"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "precision"

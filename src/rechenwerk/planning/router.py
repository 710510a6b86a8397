"""Planning REST API: thin adapters over the estimator, the catalogue and centre sizing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from rechenwerk.api.deps import current_reader
from rechenwerk.errors import InvalidInput
from rechenwerk.planning.energy import grid_intensities
from rechenwerk.planning.hardware import default_catalogue
from rechenwerk.planning.schemas import TrainRequest
from rechenwerk.planning.sizing import DemandPortfolio, size_centre

router = APIRouter(prefix="/api/v1/plan", tags=["planning"],
                   dependencies=[Depends(current_reader)])


@router.post("/train")
def plan_train(body: TrainRequest) -> dict[str, Any]:
    """GPU-hours, wall-clock days, energy (MWh), CO2 (t CO2e), cost (EUR) and memory
    feasibility of one training run. Bad input -> 422 problem naming the field."""
    return body.estimate().to_dict()


@router.get("/gpus")
def plan_gpus() -> dict[str, Any]:
    """The hardware catalogue (built-in plus the operator's extension)."""
    cat = default_catalogue()
    return {"sources": list(cat.sources), "gpus": [g.to_dict() for g in cat.gpus.values()]}


@router.get("/grid")
def plan_grid() -> list[dict[str, Any]]:
    """Grid carbon intensities by country (g CO2e/kWh, source and year)."""
    return [g.to_dict() for g in grid_intensities().values()]


@router.post("/centre")
def plan_centre(body: DemandPortfolio) -> dict[str, Any]:
    """Size a centre for a demand portfolio (the YAML of ``rechenwerk plan centre`` as
    JSON): the curve of GPUs vs. p90 wait and utilisation, the chosen size, capex (EUR) and
    yearly operating cost (EUR/year). Runs the simulator; expect seconds to a minute."""
    if body.background is not None and body.background.trace is not None:
        raise InvalidInput(
            "background.trace (a file on the server) is not accepted over the API",
            field="background.trace",
            hint="use background.generate, or run `rechenwerk plan centre FILE` locally",
        )
    body.base_dir = "."
    return size_centre(body).to_dict()

"""Capacity planning: hardware catalogue, training estimator, memory feasibility, sizing.

Public entry point for other domains (e.g. proposals carrying an estimate)::

    from rechenwerk.planning import estimate_training
    est = estimate_training(params=70e9, tokens=2e12, gpu="A100-80GB", gpus=1024)
    est.gpu_hours, est.to_dict()
"""

from rechenwerk.planning.training import TrainingEstimate, estimate_training

__all__ = ["TrainingEstimate", "estimate_training"]

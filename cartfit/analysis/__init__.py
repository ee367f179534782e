"""Analyses of fitted models: exposure metrics, relapse probabilities, model comparison."""

from cartfit.analysis.metrics import (
    auc,
    c_at,
    cmax,
    exposure_metrics,
    killing_exposure,
    metric_grid,
    persistence_days,
    time_to_nadir,
    tmax,
    tumor_nadir_log10_reduction,
)

__all__ = [
    "auc",
    "c_at",
    "cmax",
    "exposure_metrics",
    "killing_exposure",
    "metric_grid",
    "persistence_days",
    "time_to_nadir",
    "tmax",
    "tumor_nadir_log10_reduction",
]

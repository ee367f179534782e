"""Analyses of fitted models: exposure metrics, relapse probabilities, model comparison."""

from cartfit.analysis.compare import compare_fits, subject_elpd
from cartfit.analysis.costim import costim_contrast, homeostatic_share
from cartfit.analysis.exposure import exposure_table
from cartfit.analysis.loglinear import log_linearity_diagnostic
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
from cartfit.analysis.published import published_comparison_table
from cartfit.analysis.rechallenge import rechallenge
from cartfit.analysis.relapse import (
    branching_rates,
    branching_relapse,
    relapse_grid,
    relapse_probabilities,
)
from cartfit.analysis.relapse_table import relapse_table
from cartfit.analysis.trial import virtual_trial
from cartfit.analysis.trial_contrast import trial_contrast

__all__ = [
    # model comparison
    "compare_fits",
    "log_linearity_diagnostic",
    "subject_elpd",
    # exposure
    "auc",
    "c_at",
    "cmax",
    "exposure_metrics",
    "exposure_table",
    "killing_exposure",
    "metric_grid",
    "persistence_days",
    "time_to_nadir",
    "tmax",
    "tumor_nadir_log10_reduction",
    # relapse and escape
    "branching_rates",
    "branching_relapse",
    "relapse_grid",
    "relapse_probabilities",
    "relapse_table",
    # published fits
    "published_comparison_table",
    # co-stimulation, homeostatic expansion and rechallenge (multifate)
    "costim_contrast",
    "homeostatic_share",
    "rechallenge",
    # virtual trials
    "virtual_trial",
    "trial_contrast",
]

"""Figures for the report.

A leaf of the package: nothing else in cartfit imports it. Every function takes arrays, tables or
a fit's DataTree and returns a :class:`matplotlib.figure.Figure` (matplotlib is imported inside
the functions); :func:`save` writes a figure atomically.
"""

from cartfit.plotting.bands import posterior_predictive_bands
from cartfit.plotting.comparison import growth_law_comparison
from cartfit.plotting.costim import costim_forest
from cartfit.plotting.diagnostics import (
    diagnostics_figure,
    diagnostics_table,
    parameter_diagnostics,
)
from cartfit.plotting.forest import exposure_forest
from cartfit.plotting.prior import prior_predictive_plot
from cartfit.plotting.published import published_comparison
from cartfit.plotting.relapse import relapse_curves
from cartfit.plotting.style import save
from cartfit.plotting.trial import contrast_forest, trial_summary
from cartfit.plotting.vpc import visual_predictive_check
from cartfit.plotting.vpc_stats import vpc_statistics

__all__ = [
    # fits: data, predictions and checks
    "posterior_predictive_bands",
    "visual_predictive_check",
    "vpc_statistics",
    "prior_predictive_plot",
    "diagnostics_figure",
    "diagnostics_table",
    "parameter_diagnostics",
    # analyses
    "growth_law_comparison",
    "exposure_forest",
    "relapse_curves",
    "trial_summary",
    "contrast_forest",
    "costim_forest",
    "published_comparison",
    # output
    "save",
]

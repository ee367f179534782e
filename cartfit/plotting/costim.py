"""Forest plot of the CD28 − 4-1BB contrasts of a multifate population fit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns
from cartfit.plotting.forest import forest_panel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BLOCKS = {"typical_difference": "population-typical", "cohort_mean_difference": "cohort means"}
#: panel titles of the metrics named by their column (the memory fraction's carries its day)
TITLES = {"cmax": "Cmax (peak CAR T)", "tmax": "Tmax (time to peak)",
          "persistence_days": "persistence (last day above LLOQ)"}  # fmt: skip


@style.styled
def costim_forest(costim_df: pd.DataFrame) -> Figure:
    """CD28 − 4-1BB differences and the covariate effects, each with its 5–95 % interval.

    Parameters
    ----------
    costim_df
        The table of :func:`cartfit.analysis.costim_contrast` (``metric, contrast, mean,
        median, q05, q95, unit, p_gt_0``).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric (``cmax``, ``tmax``, memory fraction, persistence) with the
        population-typical and the cohort-mean difference against a zero line, and a last panel
        of the covariate effects :math:`e^{\\beta}` (CD28 / 4-1BB ratio of each parameter, log
        axis, line at 1). Each row is labelled with P(difference > 0) (for ratios P(ratio > 1)).
    """
    check_columns(costim_df, ("metric", "contrast", "median", "q05", "q95", "unit", "p_gt_0"),
                  "costim_forest")  # fmt: skip
    diffs = costim_df[costim_df["contrast"].isin(list(BLOCKS))]
    effects = costim_df[costim_df["contrast"] == "covariate_effect"]
    metrics = list(dict.fromkeys(diffs["metric"]))
    n_panels = len(metrics) + (len(effects) > 0)
    nrows, ncols = style.grid_shape(n_panels, 3)
    fig, axes = style.new_figure(nrows, ncols, 3.6 * ncols, 0.6 + 2.6 * nrows)
    for k, metric in enumerate(metrics):
        ax = axes.ravel()[k]
        rows = _labelled(diffs[diffs["metric"] == metric], diffs["contrast"].map(BLOCKS), 0)
        ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
        forest_panel(ax, rows, list(rows["label"]), "label", "median", style.CATEGORICAL[0],
                     log=False)  # fmt: skip
        default = metric.replace("fraction_day", "fraction at day ").replace("_", " ")
        ax.set_title(TITLES.get(metric, default))
        ax.set_xlabel(f"CD28 − 4-1BB ({rows['unit'].iloc[0]})")
    if len(effects):
        ax = axes.ravel()[len(metrics)]
        rows = _labelled(effects, effects["metric"].str.replace("_", " "), 1)
        ax.axvline(1.0, color="0.3", lw=0.8, ls="--")
        forest_panel(ax, rows, list(rows["label"]), "label", "median", style.CATEGORICAL[1],
                     log=True)  # fmt: skip
        ax.set_title("co-stimulation effect on parameters")
        ax.set_xlabel("CD28 / 4-1BB ratio, exp(β)")
    style.hide_unused(axes, n_panels)
    style.title(fig, "CD28 versus 4-1BB (multi-fate population fit): posterior median and "
                "5–95 % interval; P(>0): posterior probability that CD28 is higher")  # fmt: skip
    return fig


def _labelled(rows: pd.DataFrame, names: pd.Series, null: int) -> pd.DataFrame:
    """Rows with a y label: the name and P(difference > 0) or P(ratio > 1)."""
    p = rows["p_gt_0"].map(lambda v: f"P(>{null}) = {v:.2f}" if np.isfinite(v) else "")
    return rows.assign(label=names.loc[rows.index] + "\n" + p)

"""Virtual-trial results: rates (and other outcomes) with intervals per scenario."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError
from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns
from cartfit.plotting.forest import forest_panel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("scenario", "metric", "mean", "q05", "q95")


def _is_probability(metric: str, rows: pd.DataFrame) -> bool:
    values = rows[["mean", "q05", "q95"]].to_numpy(float)
    values = values[np.isfinite(values)]
    named = metric.endswith(("rate", "fraction", "probability")) or metric.startswith("p_")
    return bool(named and values.size and values.min() >= 0 and values.max() <= 1)


@style.styled
def trial_summary(trial_df: pd.DataFrame, metrics: Sequence[str] | None = None,
                  max_cols: int = 3) -> Figure:
    """Outcome rates of virtual trials per scenario: mean and 5–95 % interval.

    Parameters
    ----------
    trial_df
        One row per (scenario, metric): ``scenario, metric, mean, q05, q95`` and optionally
        ``unit``. Metrics such as ``response_rate``, ``relapse_rate`` and
        ``antigen_neg_relapse_rate`` are fractions of the virtual cohort; the interval covers the
        posterior uncertainty and the finite cohort.
    metrics
        Metrics to draw, in order (default: all, in the table's order).
    max_cols
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric, scenarios on the y axis; fractions are drawn on a 0–100 % axis.
    """
    from matplotlib.ticker import PercentFormatter

    check_columns(trial_df, COLUMNS, "trial_summary")
    metrics = list(dict.fromkeys(trial_df["metric"])) if metrics is None else list(metrics)
    unknown = [m for m in metrics if m not in set(trial_df["metric"])]
    if unknown:
        raise CartfitError(f"trial_summary: no metric {unknown[0]!r} in the table")
    df = trial_df.assign(scenario=trial_df["scenario"].astype(str))
    scenarios = list(dict.fromkeys(df["scenario"]))
    nrows, ncols = style.grid_shape(len(metrics), max_cols)
    fig, axes = style.new_figure(nrows, ncols, max(3.6 * ncols, 8.0),
                                 1.2 + nrows * (0.9 + 0.3 * len(scenarios)))
    for k, metric in enumerate(metrics):
        ax = axes.ravel()[k]
        rows = df[df["metric"] == metric]
        prob = _is_probability(metric, rows)
        forest_panel(ax, rows, scenarios, "scenario", "mean", style.CATEGORICAL[k % 7],
                     log=False if prob else None)
        unit = ""
        if "unit" in rows and rows["unit"].notna().any():
            unit = str(rows["unit"].dropna().iloc[0])
        if prob:
            ax.set_xlim(-0.02, 1.02)
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            unit = "% of virtual subjects"
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel(f"{metric} ({unit})" if unit else metric)
        if k % ncols:
            ax.tick_params(labelleft=False)
    style.hide_unused(axes, len(metrics))
    style.title(fig, f"Virtual trials ({len(scenarios)} scenarios): mean and 5–95 % interval "
                f"over posterior draws of simulated cohorts")
    return fig

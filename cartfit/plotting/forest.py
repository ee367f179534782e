"""Forest plots: one panel per metric, one row per subject (exposure) or scenario (trials)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError
from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: rows of a population fit's exposure table that are not fitted subjects (see
#: :func:`cartfit.analysis.exposure.population_rows`), as the title names them
POPULATION_ROWS = {
    "population_typical": "the population-typical subject",
    "new_subject": "a new subject",
}


def forest_panel(
    ax: Axes,
    rows: pd.DataFrame,
    order: Sequence[str],
    key: str,
    centre: str,
    colour: str,
    log: bool | None = None,
) -> bool:
    """Draw ``centre`` with a ``q05``–``q95`` bar for each row, at the position of its ``key``
    value in ``order`` (top to bottom). Log x when positive and spanning more than a decade
    (``log=None``). Returns whether the axis is logarithmic."""
    pos = {name: len(order) - 1 - i for i, name in enumerate(order)}
    y = rows[key].map(pos).to_numpy(float)
    c, lo, hi = (rows[col].to_numpy(float) for col in (centre, "q05", "q95"))
    ok = np.isfinite(c) & np.isfinite(y)
    err = np.vstack([np.clip(c - lo, 0, None), np.clip(hi - c, 0, None)])
    err = np.where(np.isfinite(err), err, 0.0)
    ax.errorbar(c[ok], y[ok], xerr=err[:, ok], fmt="o", color=colour, ms=4, capsize=2, lw=1.2)
    values = np.concatenate([c[ok], lo[ok], hi[ok]])
    if log is None:
        log = style.spans_decades(values)
    if log:
        style.log_axis(ax, values)
    ax.set_yticks(list(pos.values()), list(pos.keys()))
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.grid(axis="x", color="0.9", lw=0.6)
    return bool(log)


@style.styled
def exposure_forest(
    exposure_df: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    truth: pd.DataFrame | None = None,
    max_cols: int = 3,
) -> Figure:
    """Exposure metrics per subject: posterior median with its 5–95 % interval.

    Parameters
    ----------
    exposure_df
        The ``cartfit exposure`` table: ``subject, metric, mean, median, q05, q95, unit``.
    metrics
        Metrics to draw, in this order (default: all in the table's order).
    truth
        Optional true values of a simulated cohort: ``subject, metric, value`` (``truth.csv``
        reshaped), drawn as open diamonds.
    max_cols
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric, subjects on the y axis in the same order in every panel; the x axis
        is logarithmic where the metric is positive and spans more than a decade.
    """
    from matplotlib.lines import Line2D

    check_columns(
        exposure_df, ("subject", "metric", "median", "q05", "q95", "unit"), "exposure_forest"
    )
    metrics = list(dict.fromkeys(exposure_df["metric"])) if metrics is None else list(metrics)
    unknown = [m for m in metrics if m not in set(exposure_df["metric"])]
    if unknown:
        raise CartfitError(f"exposure_forest: no metric {unknown[0]!r} in the table")
    if truth is not None:
        check_columns(truth, ("subject", "metric", "value"), "exposure_forest truth")
    subjects = list(dict.fromkeys(exposure_df["subject"].astype(str)))
    nrows, ncols = style.grid_shape(len(metrics), max_cols)
    height = 1.0 + nrows * (0.8 + 0.22 * len(subjects))
    fig, axes = style.new_figure(nrows, ncols, 3.4 * ncols, height)
    for k, metric in enumerate(metrics):
        ax = axes.ravel()[k]
        rows = exposure_df[exposure_df["metric"] == metric].assign(
            subject=lambda d: d["subject"].astype(str)
        )
        log = forest_panel(ax, rows, subjects, "subject", "median", style.CATEGORICAL[0])
        if truth is not None:
            t = truth[truth["metric"] == metric]
            pos = {name: len(subjects) - 1 - i for i, name in enumerate(subjects)}
            ty = t["subject"].astype(str).map(pos).to_numpy(float)
            ax.plot(t["value"], ty, "D", mfc="none", mec=style.CATEGORICAL[1], ms=6, mew=1.3)
        unit = str(rows["unit"].dropna().iloc[0]) if rows["unit"].notna().any() else ""
        ax.set_title(metric + (" (log scale)" if log else ""))
        ax.set_xlabel(f"{metric} ({unit})" if unit and unit != "nan" else metric)
        if k % ncols:
            ax.tick_params(labelleft=False)
    style.hide_unused(axes, len(metrics))
    handles = [
        Line2D(
            [],
            [],
            color=style.CATEGORICAL[0],
            marker="o",
            ms=4,
            label="posterior median, 5–95 % interval",
        )
    ]
    if truth is not None:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="D",
                mfc="none",
                mec=style.CATEGORICAL[1],
                label="true value (simulated cohort)",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fitted = [s for s in subjects if s not in POPULATION_ROWS]
    extra = [POPULATION_ROWS[s] for s in subjects if s in POPULATION_ROWS]
    who = f"{len(fitted)} subject{'s' if len(fitted) != 1 else ''}" + "".join(
        f", {e}" for e in extra
    )
    style.title(
        fig,
        f"Exposure metrics per subject ({who}): posterior "
        f"median and 5–95 % interval from the noise-free trajectories of the posterior "
        f"draws",
    )
    return fig

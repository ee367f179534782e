"""Our posterior estimates next to published least-squares estimates, per parameter."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("parameter", "source", "estimate", "lower", "upper")


@style.styled
def published_comparison(df: pd.DataFrame, max_cols: int = 3) -> Figure:
    """Estimates with intervals from several sources, one panel per parameter.

    Parameters
    ----------
    df
        ``parameter, source, estimate, lower, upper`` and optionally ``group`` (an assay well,
        cell line or subject: one row per group in each panel) and ``unit``. For cartfit the
        estimate is the posterior median and the bounds the 5 % and 95 % quantiles; for a
        published least-squares fit the estimate ± 1.96 standard errors.
    max_cols
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per parameter, sources side by side within each row (colour and marker);
        log x where the estimates are positive and span more than a decade (a lower bound
        <= 0 then reaches the left edge).
    """
    from matplotlib.lines import Line2D

    check_columns(df, COLUMNS, "published_comparison")
    data = df.assign(group=df["group"].astype(str) if "group" in df else "")
    parameters = list(dict.fromkeys(data["parameter"]))
    sources = list(dict.fromkeys(data["source"].astype(str)))
    groups = list(dict.fromkeys(data["group"]))
    nrows, ncols = style.grid_shape(len(parameters), max_cols)
    fig, axes = style.new_figure(
        nrows,
        ncols,
        max(3.6 * ncols, 8.0),
        1.3 + nrows * (1.0 + 0.3 * len(groups) * max(1, len(sources) / 2)),
    )
    offsets = np.linspace(0.25, -0.25, len(sources)) if len(sources) > 1 else np.zeros(1)
    for k, parameter in enumerate(parameters):
        ax = axes.ravel()[k]
        rows = data[data["parameter"] == parameter]
        values = rows[["estimate", "lower", "upper"]].to_numpy(float)
        # rates are positive: a log axis when the estimates span decades; a lower bound <= 0
        # (estimate - 1.96 SE of a value near 0) is drawn to the left edge
        log = style.spans_decades(values[:, 0]) and style.spans_decades(values[values > 0])
        floor = np.nanmin(values[values > 0]) / 2 if log else -np.inf
        for s, source in enumerate(sources):
            r = rows[rows["source"].astype(str) == source]
            y = np.array([len(groups) - 1 - groups.index(g) for g in r["group"]]) + offsets[s]
            est, lo, hi = (r[c].to_numpy(float) for c in ("estimate", "lower", "upper"))
            lo = np.where(lo > floor, lo, floor)
            err = np.nan_to_num(np.vstack([np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)]))
            ax.errorbar(
                est,
                y,
                xerr=err,
                fmt=style.MARKERS[s % 7],
                ms=4.5,
                capsize=2.5,
                color=style.CATEGORICAL[s % 7],
                lw=1.2,
            )
        if log:
            style.log_axis(ax, np.append(values[values > 0], floor))
        ax.set_yticks(np.arange(len(groups))[::-1], groups if groups != [""] else [""])
        ax.set_ylim(-0.6, len(groups) - 0.4)
        unit = ""
        if "unit" in rows and rows["unit"].notna().any():
            unit = str(rows["unit"].dropna().iloc[0])
        ax.set_title(parameter)
        ax.set_xlabel(f"{parameter} ({unit})" if unit else parameter)
        ax.grid(axis="x", color="0.9", lw=0.6)
        if k % ncols and groups != [""]:
            ax.tick_params(labelleft=False)
    style.hide_unused(axes, len(parameters))
    handles = [
        Line2D([], [], color=style.CATEGORICAL[s % 7], marker=style.MARKERS[s % 7], label=source)
        for s, source in enumerate(sources)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    style.title(
        fig,
        "Our estimates against published ones: cartfit posterior median with 90 % "
        "credible interval; published least-squares estimate ± 1.96 SE",
    )
    return fig

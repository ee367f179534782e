r"""Prior predictive check: what the priors say about measurements before seeing the data.

For prior draws :math:`\theta_s \sim p(\theta)` the replicated measurements
:math:`y^{rep}_{s,i} \sim p(y_i \mid \theta_s)` of every observation row :math:`i` are summarised
per analyte and observation time by their 5/25/50/75/95 % quantiles; weakly informative priors
put the data well inside the 90 % band without the band spanning absurd ranges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError
from cartfit.plotting import style
from cartfit.plotting.trajectory_panel import TrajectoryBands, draw_panel, legend_handles

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _bands(prior: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, TrajectoryBands]:
    grid = np.unique(times)
    q = np.full((5, len(grid)), np.nan)
    for k, t in enumerate(grid):
        values = prior[:, times == t].ravel()
        values = values[np.isfinite(values)]
        if values.size:
            q[:, k] = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return grid, TrajectoryBands(q[2], q[1], q[3], q[0], q[4], q[0], q[4])


@style.styled
def prior_predictive_plot(
    prior_y: np.ndarray,
    times: Sequence[float] | np.ndarray,
    analytes: Sequence[str] | np.ndarray | None = None,
    observed: Sequence[float] | np.ndarray | None = None,
    lloq: Sequence[float] | np.ndarray | None = None,
    blq: Sequence[bool] | np.ndarray | None = None,
    units: Mapping[str, str] | None = None,
    label: str = "",
) -> Figure:
    """Prior predictive bands per analyte over time, with the data for scale.

    Parameters
    ----------
    prior_y
        ``(n_draws, n_rows)`` prior predictive measurements in natural units (for the ``y`` of
        :func:`cartfit.inference.prior_predictive`, which is ``ln(value/scale)``, pass
        ``np.exp(y) * scale`` of each row's analyte).
    times
        ``(n_rows,)`` observation times, days since infusion.
    analytes
        ``(n_rows,)`` analyte of each row (default: one analyte ``y``).
    observed, lloq, blq
        Optional ``(n_rows,)`` measured values (the LLOQ on BLQ rows), LLOQs and BLQ flags.
    units
        Analyte -> unit, for the axis labels.
    label
        Settings to name in the title (model, growth law, number of draws ...).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per analyte: prior predictive median, 50 % and 90 % bands (log y axis), the
        data on top, and the share of the data inside the 90 % band in the panel title.
    """
    prior = np.asarray(prior_y, dtype=float)
    t = np.asarray(times, dtype=float)
    if prior.ndim != 2 or prior.shape[1] != len(t):
        raise CartfitError(
            f"prior_predictive_plot: prior_y has shape {prior.shape}, expected "
            f"(n_draws, {len(t)}) to match times"
        )
    n = len(t)
    an = np.asarray(["y"] * n if analytes is None else analytes, dtype=str)
    obs = pd.DataFrame(
        {
            "time": t,
            "analyte": an,
            "value": np.full(n, np.nan) if observed is None else np.asarray(observed, dtype=float),
            "lloq": np.full(n, np.nan) if lloq is None else np.asarray(lloq, dtype=float),
            "blq": np.zeros(n, bool) if blq is None else np.asarray(blq, dtype=bool),
        }
    )
    names = list(dict.fromkeys(an))
    nrows, ncols = style.grid_shape(len(names), 3)
    fig, axes = style.new_figure(nrows, ncols, max(4.0 * ncols, 8.0), 1.6 + 3.0 * nrows)
    for k, analyte in enumerate(names):
        ax = axes.ravel()[k]
        sel = an == analyte
        grid, bands = _bands(prior[:, sel], t[sel])
        rows = obs[sel & np.isfinite(obs["value"].to_numpy())]
        lo, hi = draw_panel(ax, grid, bands, rows, style.analyte_colour(analyte), draw_pi=False)
        ax.set_yscale("log")
        finite = np.concatenate([bands.q05, bands.q95])
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if finite.size and np.isfinite(lo):
            ax.set_ylim(min(lo, finite.min() / 2), max(hi, finite.max() * 2))
        text = style.ANALYTE_NAMES.get(analyte, analyte)
        quantified = rows[~rows["blq"]]
        if len(quantified):
            idx = np.searchsorted(grid, quantified["time"].to_numpy())
            inside = (quantified["value"].to_numpy() >= bands.q05[idx]) & (
                quantified["value"].to_numpy() <= bands.q95[idx]
            )
            text += f"\n{inside.mean():.0%} of {len(quantified)} measurements inside the 90 % band"
        ax.set_title(text)
        ax.set_ylabel(style.analyte_label(analyte, (units or {}).get(analyte)))
        ax.set_xlabel("days since CAR T infusion")
    style.hide_unused(axes, len(names))
    handles = legend_handles([], prediction_interval=False)
    handles[3].set_label("prior predictive median")
    handles[4].set_label("50 % / 90 % prior predictive band")
    fig.legend(
        handles=handles, loc="outside lower center", ncol=style.legend_columns(fig), frameon=False
    )
    style.title(
        fig,
        f"Prior predictive check{': ' + label if label else ''} "
        f"({prior.shape[0]} prior draws); bands pool all subjects at each time",
    )
    return fig

"""Visual predictive check with BLQ handling (statistics in :mod:`cartfit.plotting.vpc_stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from cartfit.plotting import style
from cartfit.plotting.fitdata import fit_caption, fit_units, observation_table, replicated_draws
from cartfit.plotting.trajectory_panel import draw_observations
from cartfit.plotting.vpc_stats import DEFAULT_QUANTILES, vpc_statistics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: colour of the simulated-percentile bands: outer percentiles, median
OUTER_COLOUR = "#56B4E9"
MEDIAN_COLOUR = "#D55E00"


def _percentile_panel(ax, stats, rows, quantiles, unit, analyte) -> None:
    t = stats["time_mid"].to_numpy(float)
    for q in quantiles:
        name = f"p{round(q * 100):02d}"
        colour = MEDIAN_COLOUR if abs(q - 0.5) < 1e-9 else OUTER_COLOUR
        ax.fill_between(
            t,
            stats[f"sim_{name}_lo"],
            stats[f"sim_{name}_hi"],
            color=colour,
            alpha=0.3,
            lw=0,
            step=None,
        )
        ax.plot(
            t,
            stats[f"obs_{name}"],
            color="black",
            lw=1.4 if colour == MEDIAN_COLOUR else 1.0,
            ls="-" if colour == MEDIAN_COLOUR else "--",
            marker=".",
            ms=5,
        )
    draw_observations(ax, rows, "0.55", zorder=1)
    ax.set_yscale("log")
    ax.set_ylabel(style.analyte_label(analyte, unit))
    ax.set_title(style.ANALYTE_NAMES.get(analyte, analyte))


def _fraction_panel(ax, stats) -> None:
    t = stats["time_mid"].to_numpy(float)
    ax.fill_between(
        t, stats["sim_frac_blq_lo"], stats["sim_frac_blq_hi"], color=OUTER_COLOUR, alpha=0.35, lw=0
    )
    ax.plot(t, stats["sim_frac_blq_med"], color=OUTER_COLOUR, lw=1.2)
    ax.plot(t, stats["obs_frac_blq"], color="black", marker="o", ms=4, lw=1.2)
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("fraction below LLOQ")
    ax.set_xlabel("days since CAR T infusion (bin median)")


def _bin_edges(ax, stats) -> None:
    """Dotted lines between bins that group several visits (none for one bin per visit)."""
    lo, hi = stats["time_lo"].to_numpy(float), stats["time_hi"].to_numpy(float)
    if np.all(lo == hi):
        return
    for edge in (hi[:-1] + lo[1:]) / 2:
        ax.axvline(edge, color="0.75", ls=":", lw=0.8, zorder=0)


def _legend(fig) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color="black", lw=1.4, marker=".", label="observed median"),
        Line2D(
            [],
            [],
            color="black",
            lw=1.0,
            ls="--",
            marker=".",
            label="observed 5 % / 95 % percentiles",
        ),
        Patch(color=MEDIAN_COLOUR, alpha=0.3, label="90 % PI of simulated median"),
        Patch(color=OUTER_COLOUR, alpha=0.3, label="90 % PI of simulated 5 % / 95 %"),
        Line2D([], [], color="black", marker="o", ms=4, label="observed fraction BLQ"),
        Line2D([], [], color=OUTER_COLOUR, lw=1.2, label="simulated fraction BLQ (median)"),
        Line2D([], [], ls="", marker="o", color="0.55", label="measurements"),
        Line2D([], [], ls="", marker="v", mfc="white", mec="0.55", label="BLQ (at LLOQ)"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=style.legend_columns(fig, 2.8),
        frameon=False,
    )


@style.styled
def visual_predictive_check(
    tree: xr.DataTree,
    bins: int | Sequence[float] | None = None,
    n_sim: int = 200,
    seed: int = 0,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> Figure:
    """Visual predictive check per analyte, with the fraction below LLOQ per time bin.

    Top row: observed 5/50/95 % percentiles of the quantified (non-BLQ) measurements per time bin
    (black) against the 90 % prediction intervals of the same percentiles over ``n_sim``
    posterior predictive replicates (bands). Bottom row: the observed fraction below the LLOQ
    against its 90 % prediction interval. Statistics: :func:`vpc_statistics`.

    Parameters
    ----------
    tree
        A fit file's DataTree with a ``posterior_predictive`` group (population fits mainly).
    bins
        ``None`` (visit schedule, at most 10 bins per analyte), a maximum number of bins, or
        explicit time edges in days.
    n_sim
        Number of posterior predictive replicates used (thinned at random with ``seed``).
    quantiles
        Percentiles compared.

    Returns
    -------
    matplotlib.figure.Figure
        A 2 × (number of analytes) grid of panels.
    """
    obs = observation_table(tree)
    rep = replicated_draws(tree, n_sim, seed)
    stats = vpc_statistics(obs, rep, bins=bins, quantiles=quantiles)
    units = fit_units(tree)
    analytes = sorted(dict.fromkeys(stats["analyte"]), key=style.analyte_order)
    ncols = len(analytes)
    fig, axes = style.new_figure(
        2, ncols, max(4.2 * ncols, 8.0), 6.4, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    for j, analyte in enumerate(analytes):
        s = stats[stats["analyte"] == analyte].sort_values("time_mid")
        rows = obs[obs["analyte"] == analyte]
        _percentile_panel(axes[0, j], s, rows, quantiles, units.get(analyte, ""), analyte)
        _fraction_panel(axes[1, j], s)
        axes[1, j].sharex(axes[0, j])
        for ax in axes[:, j]:
            _bin_edges(ax, s)
    _legend(fig)
    n_sub = len(np.unique(obs["subject"]))
    plural = "s" if n_sub > 1 else ""
    bin_text = (
        "visit schedule (at most 10 bins)"
        if bins is None
        else f"at most {bins} visit bins"
        if isinstance(bins, int)
        else "given edges"
    )
    style.title(
        fig,
        f"Visual predictive check: {fit_caption(tree)}, {n_sub} subject{plural}\n"
        f"{rep.shape[0]} posterior predictive replicates; bins: {bin_text}; "
        f"replicated values below their LLOQ count as BLQ",
    )
    return fig

"""Relapse probability over time per subject, split by antigen status of the relapse."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = (
    "subject",
    "horizon_days",
    "p_relapse",
    "p_relapse_antigen_pos",
    "p_relapse_antigen_neg",
    "p_cure",
)
PANELS = (
    ("p_relapse", "any relapse"),
    ("p_relapse_antigen_pos", "antigen-positive relapse"),
    ("p_relapse_antigen_neg", "antigen-negative relapse (escape)"),
)
STACK = (
    ("p_relapse_antigen_pos", "antigen-positive relapse", "#D55E00", ""),
    ("p_relapse_antigen_neg", "antigen-negative relapse", "#CC79A7", "//"),
    ("p_cure", "cure", "#009E73", ""),
)


def _subject_style(k: int) -> dict:
    n = len(style.CATEGORICAL)
    return {
        "color": style.CATEGORICAL[k % n],
        "ls": style.LINESTYLES[(k // n) % 4],
        "marker": style.MARKERS[k % len(style.MARKERS)],
    }


@style.styled
def relapse_curves(relapse_df: pd.DataFrame, antigen_negative: bool = True) -> Figure:
    """Probability of relapse by each horizon per subject, by antigen status, and the outcome
    split at the last horizon.

    Parameters
    ----------
    relapse_df
        The ``cartfit relapse`` table: ``subject, horizon_days, p_relapse,
        p_relapse_antigen_pos, p_relapse_antigen_neg, p_cure``.
    antigen_negative
        Whether the fitted model has an antigen-negative tumour. Without one its
        ``p_relapse_antigen_neg`` is 0 by construction, not by prediction, and the panel says
        so instead of drawing the zeros.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels of probability against horizon (any, antigen-positive and
        antigen-negative relapse; one line per subject, cohort mean in thick black) and a fourth
        with stacked bars per subject at the last horizon: antigen-positive relapse,
        antigen-negative relapse and cure (the rest: neither by that day).
    """
    from matplotlib.patches import Patch

    check_columns(relapse_df, COLUMNS, "relapse_curves")
    df = relapse_df.assign(subject=relapse_df["subject"].astype(str)).sort_values(
        ["subject", "horizon_days"]
    )
    subjects = list(dict.fromkeys(df["subject"]))
    n = len(subjects)
    fig, axes = style.new_figure(2, 2, 11.0, max(8.0, 2.0 + 0.4 * n))
    curve_axes = [axes[0, 0], axes[0, 1], axes[1, 0]]
    for ax, (column, name) in zip(curve_axes, PANELS, strict=True):
        ax.set_title(name)
        if column == "p_relapse_antigen_neg" and not antigen_negative:
            ax.text(0.5, 0.5, "not modelled: this model has no antigen-negative\n"
                    "tumour, so escape relapse cannot be predicted\n"
                    "(the escape model has one)", transform=ax.transAxes, ha="center",
                    va="center", color="0.35")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for k, subject in enumerate(subjects):
            rows = df[df["subject"] == subject]
            ax.plot(
                rows["horizon_days"],
                rows[column],
                lw=1.0,
                ms=3.5,
                alpha=0.85,
                label=subject,
                **_subject_style(k),
            )
        mean = df.groupby("horizon_days")[column].mean()
        ax.plot(mean.index, mean.to_numpy(), color="black", lw=3.0, label="cohort mean")
        ax.set_xlabel("horizon (days after infusion)")
        ax.set_ylabel("probability by the horizon")
        ax.set_xlim(0, df["horizon_days"].max() * 1.03)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(color="0.92", lw=0.6)
    last = df["horizon_days"].max()
    at = df[df["horizon_days"] == last].set_index("subject").reindex(subjects)
    bars = axes[1, 1]
    y = np.arange(n)[::-1]
    bars.barh(y, np.ones(n), color="0.93", lw=0)
    left = np.zeros(n)
    for column, name, colour, hatch in STACK:
        width = at[column].to_numpy(float)
        bars.barh(
            y, width, left=left, color=colour, hatch=hatch, edgecolor="white", lw=0.5, label=name
        )
        left += np.nan_to_num(width)
    bars.set_yticks(y, subjects)
    bars.set_xlim(0, 1)
    bars.set_xlabel(f"probability by day {last:g}")
    bars.set_title(f"outcome split at day {last:g}")
    handles, labels = curve_axes[0].get_legend_handles_labels()
    if n <= 30:
        fig.legend(
            handles,
            labels,
            loc="outside right center",
            title="subject",
            frameon=False,
            ncol=1 if n <= 15 else 2,
        )
    bars.legend(
        handles=[Patch(facecolor=c, hatch=h, edgecolor="white", label=nm) for _, nm, c, h in STACK]
        + [Patch(facecolor="0.93", label="neither by then")],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=2,
        frameon=False,
    )
    horizons = ", ".join(f"{h:g}" for h in sorted(df["horizon_days"].unique()))
    style.title(
        fig,
        f"Relapse probabilities by antigen status ({n} subjects; horizons "
        f"{horizons} days): posterior probability that the tumour has returned above "
        f"the detection threshold by each horizon",
    )
    return fig

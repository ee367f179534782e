"""One panel of observed data over predicted bands (shared by the predictive-check figures)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.plotting import style

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

#: how far (factor) the y axis reaches beyond the data, and at most beyond it for predictions
DATA_MARGIN = 10.0
PREDICTION_REACH = 1e3


@dataclass(frozen=True)
class TrajectoryBands:
    """Quantiles over draws on a time grid (natural units)."""

    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    pi05: np.ndarray
    pi95: np.ndarray


def draw_observations(ax: Axes, rows: pd.DataFrame, colour: str, zorder: float = 5) -> None:
    """Quantified values as filled circles, BLQ values as open down-triangles at their LLOQ,
    and each distinct LLOQ as a dotted line."""
    if rows.empty:
        return
    blq = rows["blq"].to_numpy(bool)
    ax.plot(
        rows["time"][~blq],
        rows["value"][~blq],
        "o",
        ms=4,
        color=colour,
        mec="white",
        mew=0.5,
        zorder=zorder,
    )
    if blq.any():
        ax.plot(
            rows["time"][blq],
            rows["lloq"][blq],
            "v",
            ms=5,
            mfc="white",
            mec=colour,
            mew=1.2,
            zorder=zorder,
        )
    for lloq in np.unique(rows["lloq"].dropna()):
        ax.axhline(lloq, color=colour, ls=":", lw=1.0, zorder=1)


def draw_panel(
    ax: Axes,
    times: np.ndarray,
    bands: TrajectoryBands,
    rows: pd.DataFrame,
    colour: str,
    draw_pi: bool = True,
    zorder: float = 2,
) -> tuple[float, float]:
    """Draw bands and data on ``ax``; return the y range worth showing (data first)."""
    ax.fill_between(times, bands.q05, bands.q95, color=colour, alpha=0.18, lw=0, zorder=zorder)
    ax.fill_between(times, bands.q25, bands.q75, color=colour, alpha=0.35, lw=0, zorder=zorder)
    ax.plot(times, bands.median, color=colour, lw=1.5, zorder=zorder + 0.5)
    if draw_pi:
        ax.plot(times, bands.pi05, color=colour, lw=0.9, ls="--", zorder=zorder + 0.5)
        ax.plot(times, bands.pi95, color=colour, lw=0.9, ls="--", zorder=zorder + 0.5)
    draw_observations(ax, rows, colour)
    return y_range(rows, bands.median)


def y_range(rows: pd.DataFrame, median: np.ndarray) -> tuple[float, float]:
    """Lower and upper y limit: the data (values and LLOQs) widened by ``DATA_MARGIN``, stretched
    to include the predicted median but never more than ``PREDICTION_REACH`` beyond the data."""
    data = (
        np.concatenate([rows["value"].to_numpy(float), rows["lloq"].to_numpy(float)])
        if not rows.empty
        else np.empty(0)
    )
    data = data[np.isfinite(data) & (data > 0)]
    pred = median[np.isfinite(median) & (median > 0)]
    if data.size == 0 and pred.size == 0:
        return np.inf, -np.inf
    if data.size == 0:
        return float(pred.min()) / 2, float(pred.max()) * 2
    lo, hi = data.min() / DATA_MARGIN, data.max() * DATA_MARGIN
    if pred.size:
        lo = max(min(lo, pred.min() / 2), data.min() / PREDICTION_REACH)
        hi = min(max(hi, pred.max() * 2), data.max() * PREDICTION_REACH)
    return float(lo), float(hi)


def legend_handles(analytes: Sequence[str], prediction_interval: bool = True) -> list[Artist]:
    """Legend entries: one colour per analyte, then the meaning of each mark (in grey)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    grey = "0.35"
    handles: list[Artist] = [
        Line2D([], [], color=style.analyte_colour(a), lw=2, label=style.ANALYTE_NAMES.get(a, a))
        for a in analytes
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color=grey, label="measured"),
        Line2D(
            [],
            [],
            ls="",
            marker="v",
            mfc="white",
            mec=grey,
            mew=1.2,
            label="below LLOQ (drawn at LLOQ)",
        ),
        Line2D([], [], color=grey, ls=":", label="LLOQ"),
        Line2D([], [], color=grey, lw=1.5, label="posterior median"),
        Patch(color=grey, alpha=0.45, label="50 % / 90 % credible band"),
    ]
    if prediction_interval:
        handles.append(
            Line2D([], [], color=grey, ls="--", lw=0.9, label="90 % prediction interval")
        )
    return handles

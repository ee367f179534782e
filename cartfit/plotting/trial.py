"""Virtual-trial results: outcome rates with intervals per scenario (arm)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError
from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: arm settings that name a scenario when the table has no ``scenario`` column
ARM_COLUMNS = ("dose", "costim", "lymphodepletion")
_HORIZON = re.compile(r"^(?P<base>.+)_(?P<days>\d+(?:\.\d+)?)d$")
NAMES = {
    "response_rate": "response",
    "p_relapse": "relapse",
    "p_relapse_antigen_pos": "antigen-positive relapse",
    "p_relapse_antigen_neg": "antigen-negative relapse",
    "p_cure": "cure",
}


def _arm_label(row: pd.Series) -> str:
    parts = []
    for col in ARM_COLUMNS:
        value = row.get(col)
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            text = f"{value:.3g}" if isinstance(value, float) else str(value)
            parts.append(f"{col} {text}")
    return ", ".join(parts) or "as fitted"


def trial_table(trial_df: pd.DataFrame) -> pd.DataFrame:
    """Normalise a trial table to ``scenario, metric, base, horizon, mean, q05, q95, unit``.

    Accepts ``metric`` or ``quantity`` for the outcome name and ``scenario`` or, when absent,
    names each scenario from its arm settings (``dose, costim, lymphodepletion``). An outcome
    ``p_relapse_180d`` becomes base ``p_relapse`` at horizon 180 days.
    """
    df = trial_df.copy()
    if "metric" not in df and "quantity" in df:
        df = df.rename(columns={"quantity": "metric"})
    if "scenario" not in df:
        df["scenario"] = df.apply(_arm_label, axis=1)
    check_columns(df, ("scenario", "metric", "mean", "q05", "q95"), "trial_summary")
    df["scenario"] = df["scenario"].astype(str)
    match = df["metric"].astype(str).str.extract(_HORIZON)
    df["base"] = match["base"].fillna(df["metric"].astype(str))
    df["horizon"] = match["days"].astype(float)
    if "unit" not in df:
        df["unit"] = ""
    return df


def _is_fraction(rows: pd.DataFrame) -> bool:
    values = rows[["mean", "q05", "q95"]].to_numpy(float)
    values = values[np.isfinite(values)]
    named = rows["unit"].astype(str).eq("fraction").all() or all(
        str(b).endswith("rate") or str(b).startswith("p_") for b in rows["base"]
    )
    return bool(named and values.size and values.min() >= 0 and values.max() <= 1)


def _panel(ax, rows: pd.DataFrame, scenarios: list[str]) -> None:
    horizons = sorted(rows["horizon"].dropna().unique()) or [np.nan]
    offsets = np.linspace(0.22, -0.22, len(horizons)) if len(horizons) > 1 else [0.0]
    for k, h in enumerate(horizons):
        sel = rows[rows["horizon"].isna()] if np.isnan(h) else rows[rows["horizon"] == h]
        y = np.array([len(scenarios) - 1 - scenarios.index(s) for s in sel["scenario"]])
        c, lo, hi = (sel[col].to_numpy(float) for col in ("mean", "q05", "q95"))
        err = np.nan_to_num(np.vstack([np.clip(c - lo, 0, None), np.clip(hi - c, 0, None)]))
        ax.errorbar(c, y + offsets[k], xerr=err, fmt=style.MARKERS[k % 7], ms=4.5, capsize=2,
                    color=style.CATEGORICAL[k % 7], lw=1.2,
                    label=None if np.isnan(h) else f"by day {h:g}")  # fmt: skip
    ax.set_yticks(np.arange(len(scenarios))[::-1], scenarios)
    ax.set_ylim(-0.6, len(scenarios) - 0.4)
    ax.grid(axis="x", color="0.9", lw=0.6)
    if len(horizons) > 1:
        ax.legend(fontsize=7.5, loc="best", frameon=False)


@style.styled
def trial_summary(
    trial_df: pd.DataFrame, metrics: Sequence[str] | None = None, max_cols: int = 2
) -> Figure:
    """Outcome rates of virtual trials per scenario: mean and 5–95 % interval.

    Parameters
    ----------
    trial_df
        One row per (scenario, outcome) with ``mean, q05, q95``, the outcome in ``metric`` (or
        ``quantity``, as ``cartfit trial`` writes it), the scenario in ``scenario`` (or named
        from ``dose, costim, lymphodepletion``) and optionally ``unit``. Outcomes such as
        ``response_rate`` or ``p_relapse_180d`` are fractions of the virtual cohort; an outcome
        named ``<base>_<h>d`` is drawn in the panel of ``<base>`` at horizon ``h`` days.
    metrics
        Outcome bases to draw, in order (default: the fractions, or every outcome if there are
        none).
    max_cols
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per outcome, scenarios on the y axis, horizons as coloured markers; fractions
        on a 0–100 % axis, other outcomes on a log axis where they span more than a decade.
    """
    from matplotlib.ticker import PercentFormatter

    df = trial_table(trial_df)
    bases = list(dict.fromkeys(df["base"]))
    if metrics is None:
        fractions = [b for b in bases if _is_fraction(df[df["base"] == b])]
        metrics = fractions or bases
    unknown = [m for m in metrics if m not in bases]
    if unknown:
        raise CartfitError(f"trial_summary: no outcome {unknown[0]!r} in the table ({bases})")
    scenarios = list(dict.fromkeys(df["scenario"]))
    nrows, ncols = style.grid_shape(len(metrics), max_cols)
    height = 1.3 + nrows * (1.0 + 0.45 * len(scenarios))
    fig, axes = style.new_figure(nrows, ncols, max(4.6 * ncols, 8.0), height)
    for k, base in enumerate(metrics):
        ax = axes.ravel()[k]
        rows = df[df["base"] == base]
        _panel(ax, rows, scenarios)
        unit = str(rows["unit"].dropna().iloc[0]) if rows["unit"].notna().any() else ""
        if _is_fraction(rows):
            ax.set_xlim(-0.02, 1.02)
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
            unit = "% of the arm"
        else:
            style.log_if_spanning(ax, rows[["mean", "q05", "q95"]].to_numpy(float).ravel())
        ax.set_title(NAMES.get(base, base.replace("_", " ")))
        ax.set_xlabel(f"{base} ({unit})" if unit and unit != "nan" else base)
        if k % ncols:
            ax.tick_params(labelleft=False)
    style.hide_unused(axes, len(metrics))
    n_virtual = ""
    if "n_subjects" in df and df["n_subjects"].notna().any():
        n_virtual = f", {int(df['n_subjects'].dropna().iloc[0])} patients per arm"
    style.title(
        fig,
        f"Virtual trials ({len(scenarios)} scenario{'s' if len(scenarios) > 1 else ''}"
        f"{n_virtual}): predictive rate and 5–95 % interval of the observed proportion,\n"
        "posterior uncertainty of the population parameters included",
    )
    return fig


def _outcome_label(name: str) -> str:
    """``p_relapse_180d`` -> "relapse by day 180", ``cmax_ratio`` -> "cmax"."""
    match = _HORIZON.match(name)
    if match:
        return f"{NAMES.get(match['base'], match['base'])} by day {match['days']}"
    return NAMES.get(name, name.removesuffix("_ratio"))


@style.styled
def contrast_forest(contrast_df: pd.DataFrame) -> Figure:
    """Paired contrasts of virtual-trial arms (``cartfit trial-contrast`` tables, one or more
    concatenated): left, each rate's difference arm − reference in percentage points (the
    median and 5–95 % interval a two-arm trial would observe, the predictive difference as an
    open marker) with the posterior probability that the arm's rate is higher; right, the
    exposure metrics' geometric mean ratios arm / reference (log axis)."""
    check_columns(contrast_df, ("quantity", "mean", "median", "q05", "q95", "unit", "arm",
                                "reference", "p_population_higher"), "contrast_forest")  # fmt: skip
    df = contrast_df.copy()
    df["pair"] = df["arm"].astype(str) + " − " + df["reference"].astype(str)
    is_ratio = df["unit"].astype(str).str.contains("ratio")
    rates, ratios = df[~is_ratio], df[is_ratio]
    pairs = list(dict.fromkeys(df["pair"]))
    n_rows = max(len(dict.fromkeys(rates["quantity"])), len(dict.fromkeys(ratios["quantity"])), 1)
    fig, axes = style.new_figure(1, 2, 11.0, 1.6 + 0.32 * n_rows * max(1, len(pairs)))
    for ax, rows, scale in ((axes.ravel()[0], rates, 100.0), (axes.ravel()[1], ratios, 1.0)):
        names = list(dict.fromkeys(rows["quantity"]))
        offsets = np.linspace(0.2, -0.2, len(pairs)) if len(pairs) > 1 else [0.0]
        for k, pair in enumerate(pairs):
            sel = rows[rows["pair"] == pair]
            y = np.array([len(names) - 1 - names.index(q) for q in sel["quantity"]]) + offsets[k]
            med, lo, hi, mean = (sel[c].to_numpy(float) * scale
                                 for c in ("median", "q05", "q95", "mean"))  # fmt: skip
            err = np.vstack([np.clip(med - lo, 0, None), np.clip(hi - med, 0, None)])
            color = style.CATEGORICAL[k % 7]
            ax.errorbar(med, y, xerr=err, fmt=style.MARKERS[k % 7], ms=4.5, capsize=2,
                        color=color, lw=1.2, label=pair)  # fmt: skip
            ax.plot(mean, y, "o", mfc="none", mec=color, ms=6, lw=0)
            for yy, p, x in zip(y, sel["p_population_higher"], hi, strict=True):
                ax.annotate(f"P(higher) {p:.2f}", (x, yy), xytext=(4, -3),
                            textcoords="offset points", fontsize=7, color=color)  # fmt: skip
        ax.set_yticks(np.arange(len(names))[::-1], [_outcome_label(n) for n in names])
        ax.set_ylim(-0.6, max(len(names), 1) - 0.4)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.axvline(scale if scale == 1.0 else 0.0, color="0.4", lw=0.8, ls=":")
        ax.margins(x=0.25)  # room for the probabilities written right of the intervals
    axes.ravel()[0].set_xlabel("arm − reference (percentage points)")
    which = f": {pairs[0]}" if len(pairs) == 1 else ""
    axes.ravel()[0].set_title(f"outcome rates{which}")
    right = axes.ravel()[1]
    if len(ratios):
        right.set_xscale("log")
        span = ratios[["q05", "q95"]].to_numpy(float)
        span = span[np.isfinite(span) & (span > 0)]
        if span.size:  # room on the right for the probabilities
            right.set_xlim(min(span.min(), 1.0) / 1.5, max(span.max(), 1.0) * 4.0)
    right.set_xlabel("geometric mean ratio, arm / reference")
    right.set_title(f"exposure{which}")
    if len(pairs) > 1:
        axes.ravel()[0].legend(fontsize=7.5, loc="best", frameon=False, title="arm − reference",
                               title_fontsize=7.5)  # fmt: skip
    n = df["n_subjects"].dropna() if "n_subjects" in df else pd.Series(dtype=float)
    per_arm = f", trials of {int(n.iloc[0])} patients per arm" if len(n) else ""
    style.title(fig, "Paired contrasts of virtual-trial arms (the same virtual patients in both"
                f"{per_arm}):\nmedian and 5–95 % interval of the observed difference, open "
                "circle the predictive difference; exposure ratios of the population")  # fmt: skip
    return fig

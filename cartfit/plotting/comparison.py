r"""Growth-law and model comparison by PSIS-LOO.

.. math::

    \widehat{\text{elpd}}_{loo} = \sum_i \log p(y_i \mid y_{-i}), \qquad
    \Delta_m = \widehat{\text{elpd}}_m - \widehat{\text{elpd}}_{best}

with the standard error of each elpd (``se``) and of each difference (``dse``, paired over
observations), and the stacking weights of Yao et al. (Bayesian Anal. 13:917, 2018).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartfit.inference.fitfile import MISFIT_NOTE, NOT_CONVERGED_NOTE
from cartfit.plotting import style
from cartfit.plotting.fitdata import check_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("model", "growth", "elpd_loo", "se", "elpd_diff", "dse", "weight", "n_bad_pareto_k")


@style.styled
def growth_law_comparison(compare_df: pd.DataFrame) -> Figure:
    """elpd_loo ± SE per (model, growth law) and elpd difference ± SE to the best, with weights.

    Parameters
    ----------
    compare_df
        The ``cartfit compare`` table: ``model, growth, elpd_loo, se, elpd_diff, dse, weight,
        n_bad_pareto_k`` (one row per fit).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels sharing the rows (best model on top): left elpd_loo with ±1 SE bars; right
        elpd_diff with ±1 and ±2 dse bars, the stacking weight written next to each row. A row
        whose fit did not converge or misses the data (the table's ``warning`` column, if any)
        or has Pareto k > 0.7 is labelled in red, saying which.
    """
    check_columns(compare_df, COLUMNS, "growth_law_comparison")
    df = compare_df.sort_values("elpd_loo", ascending=False).reset_index(drop=True)
    n = len(df)
    y = np.arange(n)[::-1]
    models = list(dict.fromkeys(df["model"]))
    growths = list(dict.fromkeys(df["growth"]))
    fig, axes = style.new_figure(1, 2, 10.0, 1.4 + 0.45 * n, sharey=True)
    left, right = axes[0]
    for i, r in df.iterrows():
        colour = style.CATEGORICAL[models.index(r["model"]) % len(style.CATEGORICAL)]
        marker = style.MARKERS[growths.index(r["growth"]) % len(style.MARKERS)]
        left.errorbar(r["elpd_loo"], y[i], xerr=r["se"], fmt=marker, color=colour, capsize=3)
        right.errorbar(
            r["elpd_diff"],
            y[i],
            xerr=2 * r["dse"],
            fmt="none",
            ecolor=colour,
            elinewidth=0.8,
            capsize=0,
            alpha=0.6,
        )
        right.errorbar(
            r["elpd_diff"], y[i], xerr=r["dse"], fmt=marker, color=colour, elinewidth=2.0, capsize=3
        )
        right.annotate(
            f"weight {r['weight']:.2f}",
            (1.01, y[i]),
            va="center",
            fontsize=8,
            xycoords=("axes fraction", "data"),
        )
    flags = [_flags(r) for _, r in df.iterrows()]
    labels = [
        f"{r['model']} / {r['growth']}" + (f"\n({'; '.join(f)})" if f else "")
        for (_, r), f in zip(df.iterrows(), flags, strict=True)
    ]
    left.set_yticks(y, labels)
    for tick, f in zip(left.get_yticklabels(), flags, strict=True):
        if f:
            tick.set_color(style.FAIL_RED)
    left.set_xlabel("elpd_loo (log score, higher is better) ± 1 SE")
    right.axvline(0.0, color="0.5", lw=0.8)
    right.set_xlabel("elpd difference to the best ± 1 SE (thick), ± 2 SE (thin)")
    left.set_title("expected log predictive density")
    right.set_title("difference to the best model")
    right.set_ylim(-0.7, n - 0.3)
    best = df.iloc[0]
    close = df.iloc[1:][np.abs(df["elpd_diff"].iloc[1:]) < 2 * df["dse"].iloc[1:]]
    verdict = f"best: {best['model']} / {best['growth']}; " + (
        f"{len(close)} other(s) within 2 SE of it"
        if len(close)
        else "all others more than 2 SE worse"
    )
    style.title(fig, f"Model and growth-law comparison by PSIS-LOO ({n} fits)\n{verdict}")
    return fig


def _flags(row: pd.Series) -> list[str]:
    """What the row's label warns of: chains that did not converge, a model that misses the
    data (both from the table's ``warning`` column, when it has one), unreliable PSIS."""
    warning = str(row.get("warning", "") or "")
    flags = [
        text
        for note, text in ((NOT_CONVERGED_NOTE, "not converged"), (MISFIT_NOTE, "misfit"))
        if note in warning
    ]
    if row["n_bad_pareto_k"] > 0:
        flags.append(f"Pareto k > 0.7: {int(row['n_bad_pareto_k'])}")
    return flags

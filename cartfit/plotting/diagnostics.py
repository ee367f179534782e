r"""Sampler diagnostics as a table and a figure: R-hat, ESS, divergences and rank plots.

A rank plot pools the draws of all chains, ranks them, and histograms each chain's ranks in
:math:`B` bins. Under convergence each chain's count per bin is
:math:`\text{Binomial}(n_{draw}, 1/B)`; a chain whose histogram leaves that band explores a
different region (Vehtari et al., Bayesian Anal. 16:667, 2021).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from cartfit.errors import CartfitError
from cartfit.inference.fitfile import stored_diagnostics
from cartfit.plotting import style
from cartfit.plotting.fitdata import fit_caption

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: thresholds of DESIGN.md section 4, the same as in :mod:`cartfit.inference.diagnostics`
RHAT_MAX = 1.01
ESS_MIN = 400
BFMI_MIN = 0.3
SUMMARY_VARS = ("theta", "log_y0", "sigma", "mu", "omega")


def parameter_diagnostics(tree: xr.DataTree) -> pd.DataFrame:
    """R-hat (rank-normalised split) and bulk ESS of every scalar model quantity.

    Quantities: ``theta``, ``log_y0``, ``sigma`` and, in population fits, ``mu``, ``omega`` and
    ``beta_*``, less the entries that are the same in every draw (a shared parameter's zero
    ``omega``, parameters held fixed), which have no R-hat, and the entries whose draws rank
    exactly as an earlier one's (a shared parameter's ``theta`` of every subject is
    ``exp(mu)``: one entry, the population one, stands for them). Returns ``variable, r_hat,
    ess_bulk`` sorted by R-hat, worst first.
    """
    from arviz_stats.base import array_stats

    post = tree["posterior"]
    names = [v for v in post.data_vars if v in SUMMARY_VARS or str(v).startswith("beta_")]
    names.sort(key=lambda v: v in ("theta", "log_y0"))  # population quantities first
    rows, seen = [], set()
    for name in names:
        da = post[name].transpose("chain", "draw", ...)
        values = np.asarray(da.values, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for the constant entries
            rhat = np.atleast_1d(array_stats.rhat(values, chain_axis=0, draw_axis=1)).ravel()
            ess = np.atleast_1d(array_stats.ess(values, chain_axis=0, draw_axis=1)).ravel()
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        constant = np.all(flat == flat[:1], axis=0)
        labels = parameter_labels(da)
        for k, label in enumerate(labels):
            if constant[k]:
                continue
            ranks = hashlib.sha1(np.argsort(flat[:, k], kind="stable").tobytes()).digest()
            if ranks in seen:
                continue
            seen.add(ranks)
            rows.append(
                {
                    "variable": f"{name}[{label}]" if label else str(name),
                    "r_hat": float(rhat[k]),
                    "ess_bulk": float(ess[k]),
                }
            )
    return pd.DataFrame(rows).sort_values(
        "r_hat", ascending=False, ignore_index=True, kind="stable"
    )


def diagnostics_table(tree: xr.DataTree) -> pd.DataFrame:
    """The fit's convergence checks: ``check, value, threshold, ok`` (one row per check).

    Read from the fit's ``diagnostics`` attribute (written by ``cartfit fit``); recomputed from
    the posterior and sample statistics when it is absent. ``ok`` is NA for rows that are
    reported but not judged (tail ESS, number of draws).
    """
    d = stored_diagnostics(tree.attrs)
    if not d:
        per = parameter_diagnostics(tree)
        ss = tree["sample_stats"] if "sample_stats" in tree else {}
        div = int(np.asarray(ss["diverging"]).sum()) if "diverging" in ss else 0
        depth = int(np.asarray(ss["maxdepth_reached"]).sum()) if "maxdepth_reached" in ss else 0
        d = {
            "max_r_hat": per["r_hat"].max(),
            "min_ess_bulk": per["ess_bulk"].min(),
            "min_ess_tail": np.nan,
            "n_divergent": div,
            "n_max_treedepth": depth,
            "bfmi": [],
            "n_draws": int(tree["posterior"].sizes["chain"] * tree["posterior"].sizes["draw"]),
        }
    bfmi = [b for b in d.get("bfmi", []) if b is not None and np.isfinite(b)]
    min_bfmi = min(bfmi) if bfmi else np.nan
    rows = [
        ("max R-hat", d["max_r_hat"], f"<= {RHAT_MAX}", d["max_r_hat"] <= RHAT_MAX),
        ("min bulk ESS", d["min_ess_bulk"], f">= {ESS_MIN}", d["min_ess_bulk"] >= ESS_MIN),
        ("min tail ESS", d.get("min_ess_tail", np.nan), "(reported)", pd.NA),
        ("divergent transitions", d["n_divergent"], "0", d["n_divergent"] == 0),
        ("max tree depth hits", d.get("n_max_treedepth", 0), "0", d.get("n_max_treedepth", 0) == 0),
        (
            "min E-BFMI",
            min_bfmi,
            f">= {BFMI_MIN}",
            pd.NA if np.isnan(min_bfmi) else min_bfmi >= BFMI_MIN,
        ),
        ("draws (all chains)", d.get("n_draws", np.nan), "(reported)", pd.NA),
    ]
    table = pd.DataFrame(rows, columns=["check", "value", "threshold", "ok"])
    table["value"] = table["value"].astype(float)
    table["ok"] = table["ok"].astype("boolean")
    return table


def _rank_panel(ax, values: np.ndarray, name: str, r_hat: float, ess: float) -> None:
    """Per-chain histograms of pooled ranks with the uniform expectation's 95 % band."""
    n_chain, n_draw = values.shape
    ranks = stats.rankdata(values.ravel()).reshape(values.shape)
    n_bins = int(np.clip(n_draw // 25, 5, 20))
    edges = np.linspace(0.5, values.size + 0.5, n_bins + 1)
    lo, hi = stats.binom.ppf([0.025, 0.975], n_draw, 1 / n_bins)
    ax.axhspan(lo, hi, color="0.88", lw=0)
    ax.axhline(n_draw / n_bins, color="0.5", ls="--", lw=0.8)
    for c in range(n_chain):
        counts, _ = np.histogram(ranks[c], edges)
        ax.stairs(
            counts,
            edges,
            color=style.CATEGORICAL[c % len(style.CATEGORICAL)],
            lw=1.3,
            baseline=None,
            label=f"chain {c}",
        )
    bad = r_hat > RHAT_MAX or ess < ESS_MIN
    ax.set_title(
        f"{name}\nR-hat {r_hat:.3f}, bulk ESS {ess:.0f}",
        fontsize=8.5,
        color=style.FAIL_RED if bad else "black",
    )
    ax.set_xlabel("rank of draw (all chains pooled)")
    ax.set_ylabel("draws per bin")
    ax.set_xlim(edges[0], edges[-1])


def _format(check: str, value: float) -> str:
    if np.isnan(value):
        return "—"
    return f"{value:.3f}" if check in ("max R-hat", "min E-BFMI") else f"{value:.0f}"


def _table_panel(ax, table: pd.DataFrame) -> None:
    ax.axis("off")
    cells = []
    for _, r in table.iterrows():
        value = _format(r["check"], r["value"])
        status = "—" if pd.isna(r["ok"]) else ("OK" if r["ok"] else "FAIL")
        cells.append([r["check"], value, r["threshold"], status])
    tab = ax.table(
        cells,
        colLabels=["check", "value", "threshold", "status"],
        loc="center",
        cellLoc="left",
        colWidths=[0.34, 0.2, 0.2, 0.14],
    )
    tab.auto_set_font_size(False)
    tab.set_fontsize(8.5)
    tab.scale(1, 1.25)
    for i, (_, r) in enumerate(table.iterrows(), start=1):
        if r["ok"] is False or (not pd.isna(r["ok"]) and not r["ok"]):
            for j in range(4):
                tab[i, j].set_text_props(color=style.FAIL_RED, fontweight="bold")


@style.styled
def diagnostics_figure(tree: xr.DataTree, n_worst: int = 6) -> Figure:
    """Convergence table and rank plots of the ``n_worst`` quantities by R-hat.

    Returns
    -------
    matplotlib.figure.Figure
        A table panel (R-hat, ESS, divergences, tree depth, E-BFMI against their thresholds) over
        a grid of rank plots; the title is bold red and lists every failure when any check fails.
    """
    if "posterior" not in tree:
        raise CartfitError("diagnostics_figure: fit file has no posterior group")
    table = diagnostics_table(tree)
    per = parameter_diagnostics(tree).head(n_worst)
    ncols = min(3, max(1, len(per)))
    nrows = int(np.ceil(len(per) / ncols))
    fig, axes = style.new_figure(
        nrows + 1,
        ncols,
        10.0,
        2.2 + 2.3 * nrows,
        gridspec_kw={"height_ratios": [1.1] + [1.0] * nrows},
    )
    gs = axes[0, 0].get_gridspec()
    for ax in axes[0]:
        ax.remove()
    _table_panel(fig.add_subplot(gs[0, :]), table)
    post = tree["posterior"]
    for k, (_, r) in enumerate(per.iterrows()):
        name, _, index = r["variable"].partition("[")
        da = post[name].transpose("chain", "draw", ...)
        values = np.asarray(da.values, dtype=float).reshape(da.sizes["chain"], da.sizes["draw"], -1)
        labels = parameter_labels(da)
        _rank_panel(
            axes[1 + k // ncols, k % ncols],
            values[:, :, labels.index(index.rstrip("]"))],
            r["variable"],
            r["r_hat"],
            r["ess_bulk"],
        )
    style.hide_unused(axes[1:], len(per))
    axes[1, 0].legend(fontsize=7, loc="lower left", ncol=2, framealpha=0.8)
    failed = table["ok"].eq(False).fillna(False)
    if failed.any():
        text = "CONVERGENCE PROBLEMS: " + "; ".join(
            f"{r['check']} {_format(r['check'], r['value'])} (needs {r['threshold']})"
            for _, r in table[failed].iterrows()
        )
    else:
        text = "No convergence problem found (R-hat, bulk ESS, divergences, tree depth, E-BFMI)"
    style.title(fig, f"Sampler diagnostics: {fit_caption(tree)}\n{text}", failed=bool(failed.any()))
    return fig


def parameter_labels(da: xr.DataArray) -> list[str]:
    """Index labels ``"S00, growth_rate"`` of a (chain, draw, ...) variable, C order."""
    other = da.dims[2:]
    if not other:
        return [""]
    grids = np.meshgrid(*[da[d].values.astype(str) for d in other], indexing="ij")
    return [", ".join(combo) for combo in zip(*(g.ravel() for g in grids), strict=True)]

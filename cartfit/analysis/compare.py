r"""Growth-law and model comparison by PSIS-LOO (DESIGN.md section 5).

For every fit the expected log pointwise predictive density is estimated by Pareto-smoothed
importance-sampling leave-one-out cross-validation,

.. math::

    \widehat{\mathrm{elpd}}_{loo} = \sum_{i=1}^{n} \log
    \frac{\sum_s w_i^{(s)}\, p(y_i \mid \theta^{(s)})}{\sum_s w_i^{(s)}},
    \qquad w_i^{(s)} \propto 1/p(y_i \mid \theta^{(s)}) \text{ (Pareto-smoothed)},

with standard error :math:`\sqrt{n}\,\mathrm{sd}_i(\widehat{\mathrm{elpd}}_i)`; differences
between fits use the paired pointwise differences (``dse``), and weights are stacking weights
(Yao et al. 2018). Observations whose Pareto shape :math:`\hat k > 0.7` make the estimate
unreliable; they are counted in ``n_bad_pareto_k`` and named in ``warning`` (moment matching
needs the model's unconstrained log density, which a fit file does not carry).

References: Vehtari, Gelman & Gabry (2017) Stat. Comput. 27:1413–1432; Yao, Vehtari, Simpson &
Gelman (2018) Bayesian Anal. 13:917–1007.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

from cartfit.errors import CartfitError

BAD_PARETO_K = 0.7
COLUMNS = (
    "model", "growth", "elpd_loo", "se", "elpd_diff", "dse", "weight", "n_bad_pareto_k",
    "p_loo", "indistinguishable", "warning", "fit",
)  # fmt: skip


def _load(path: Path) -> xr.DataTree:
    from cartfit.inference.predict import load_fit

    tree = load_fit(path)
    if "log_likelihood" not in tree.children or "y" not in tree["log_likelihood"].data_vars:
        raise CartfitError(
            f"{path}: fit file has no pointwise log-likelihood (group log_likelihood)"
        )
    return tree


def _data_key(tree: xr.DataTree) -> tuple:
    """What must agree for two fits to be comparable: cohort hash and the observed rows."""
    const = tree["constant_data"]
    return (
        tree.attrs.get("data_sha256", ""),
        np.asarray(tree["observed_data"]["y"].values, float).tobytes(),
        tuple(np.asarray(const["obs_subject"].values).astype(str)),
        np.asarray(const["obs_time"].values, float).tobytes(),
        tuple(np.asarray(const["obs_analyte"].values).astype(str)),
    )


def _check_same_data(paths: Sequence[Path], trees: Sequence[xr.DataTree]) -> None:
    first = _data_key(trees[0])
    for path, tree in zip(paths[1:], trees[1:], strict=True):
        key = _data_key(tree)
        if key != first:
            what = "cohort (data_sha256)" if key[0] != first[0] else "observations"
            raise CartfitError(
                f"compare: {paths[0]} and {path} were fitted to different data ({what} differ: "
                f"{len(first[2])} vs {len(key[2])} observations); only fits of the same data can "
                "be compared"
            )


def _loo(tree: xr.DataTree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # counted and reported in the table
        return azs.loo(tree, pointwise=True, var_name="y")


def _names(paths: Sequence[Path], trees: Sequence[xr.DataTree]) -> list[str]:
    names = [f"{t.attrs.get('model', '?')}/{t.attrs.get('growth', '?')}" for t in trees]
    if len(set(names)) < len(names):
        names = [f"{n} ({p.stem})" for n, p in zip(names, paths, strict=True)]
    return names


def compare_fits(paths: Sequence[str | Path], kfold: bool = False) -> pd.DataFrame:
    """PSIS-LOO comparison of fits of the same data, best first.

    Columns: ``model``, ``growth``, ``elpd_loo``, ``se``, ``elpd_diff`` (``elpd - elpd_best``,
    <= 0), ``dse`` (SE of the difference), ``weight`` (stacking), ``n_bad_pareto_k``
    (observations with :math:`\\hat k > 0.7`), ``p_loo``, ``indistinguishable``
    (:math:`|\\mathrm{elpd\\_diff}| < 2\\,\\mathrm{dse}`; on the best row: whether any other fit is
    within that band), ``warning`` and ``fit`` (file).

    Raises
    ------
    CartfitError
        If a file is not a fit, if the fits were made on different data, or if ``kfold`` is
        asked for (leave-one-subject-out refits are not implemented yet).
    """
    if kfold:
        raise CartfitError(
            "compare --kfold: leave-one-subject-out k-fold with refits is not implemented yet; "
            "run without --kfold and read n_bad_pareto_k / warning"
        )
    paths = [Path(p) for p in paths]
    if not paths:
        raise CartfitError("compare: give at least one fit file")
    trees = [_load(p) for p in paths]
    _check_same_data(paths, trees)
    names = _names(paths, trees)
    loos = {name: _loo(tree) for name, tree in zip(names, trees, strict=True)}
    if len(loos) > 1:
        table = azs.compare(loos, method="stacking", round_to="none")
    else:
        (name, elpd), = loos.items()  # fmt: skip
        table = pd.DataFrame(
            {"elpd": [elpd.elpd], "se": [elpd.se], "p": [elpd.p], "elpd_diff": [0.0],
             "dse": [0.0], "weight": [1.0], "diag_diff": [""]}, index=[name],
        )  # fmt: skip
    rows = []
    for name in table.index:
        i = names.index(name)
        row = table.loc[name]
        k = np.asarray(loos[name].pareto_k.values)
        n_bad = int(np.sum(k > BAD_PARETO_K))
        notes = []
        if n_bad:
            notes.append(f"{n_bad} Pareto k > {BAD_PARETO_K}: PSIS-LOO unreliable for these points")
        if str(row.get("diag_diff", "")).strip():
            notes.append(str(row["diag_diff"]))
        rows.append({
            "model": trees[i].attrs.get("model", ""),
            "growth": trees[i].attrs.get("growth", ""),
            "elpd_loo": float(row["elpd"]),
            "se": float(row["se"]),
            "elpd_diff": float(row["elpd_diff"]),
            "dse": float(row["dse"]),
            "weight": float(row["weight"]),
            "n_bad_pareto_k": n_bad,
            "p_loo": float(row["p"]),
            "warning": "; ".join(notes),
            "fit": str(paths[i]),
        })  # fmt: skip
    out = pd.DataFrame(rows)
    close = (out["elpd_diff"].abs() < 2.0 * out["dse"]) & (out.index > 0)
    out["indistinguishable"] = close
    if len(out) > 1:
        out.loc[0, "indistinguishable"] = bool(close.any())
    return out[list(COLUMNS)]


def subject_elpd(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Per-subject PSIS-LOO elpd of each fit (the pointwise elpd summed over a subject's rows).

    Columns: ``subject``, ``model``, ``growth``, ``n_obs``, ``elpd_loo``, ``se``
    (:math:`\\sqrt{n}\\,\\mathrm{sd}`), ``elpd_diff`` (to the best fit for that subject),
    ``n_bad_pareto_k``, ``fit``. Fits must share their data, as for :func:`compare_fits`.
    """
    paths = [Path(p) for p in paths]
    trees = [_load(p) for p in paths]
    _check_same_data(paths, trees)
    rows = []
    for path, tree in zip(paths, trees, strict=True):
        loo = _loo(tree)
        subj = np.asarray(tree["constant_data"]["obs_subject"].values).astype(str)
        elpd_i = np.asarray(loo.elpd_i.values)
        k = np.asarray(loo.pareto_k.values)
        for s in sorted(set(subj)):
            sel = subj == s
            rows.append({
                "subject": s, "model": tree.attrs.get("model", ""),
                "growth": tree.attrs.get("growth", ""), "n_obs": int(sel.sum()),
                "elpd_loo": float(elpd_i[sel].sum()),
                "se": float(np.sqrt(sel.sum()) * np.std(elpd_i[sel], ddof=1)) if sel.sum() > 1
                else float("nan"),
                "n_bad_pareto_k": int(np.sum(k[sel] > BAD_PARETO_K)), "fit": str(path),
            })  # fmt: skip
    out = pd.DataFrame(rows)
    out["elpd_diff"] = out["elpd_loo"] - out.groupby("subject")["elpd_loo"].transform("max")
    cols = ["subject", "model", "growth", "n_obs", "elpd_loo", "se", "elpd_diff",
            "n_bad_pareto_k", "fit"]  # fmt: skip
    return out.sort_values(["subject", "elpd_diff"], ascending=[True, False])[cols].reset_index(
        drop=True
    )

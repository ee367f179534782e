r"""Growth-law and model comparison by cross-validation (DESIGN.md section 5).

For every fit the expected log pointwise predictive density is estimated by Pareto-smoothed
importance-sampling leave-one-out cross-validation,

.. math::

    \widehat{\mathrm{elpd}}_{loo} = \sum_{i=1}^{n} \log
    \frac{\sum_s w_i^{(s)}\, p(y_i \mid \theta^{(s)})}{\sum_s w_i^{(s)}},
    \qquad w_i^{(s)} \propto 1/p(y_i \mid \theta^{(s)}) \text{ (Pareto-smoothed)}.

Where the Pareto shape :math:`\hat k_i > 0.7` the importance weights are unreliable; those
points (worst first, at most ``max_refits`` per fit) are refitted without the point and their
term replaced by the exact :math:`\log p(y_i \mid y_{-i})` (:mod:`cartfit.analysis.refit`).
With ``kfold=True`` a population fit is instead scored by k-fold cross-validation over subjects,
each held-out subject predicted as a new subject (:mod:`cartfit.analysis.kfold`). Standard
errors, differences (paired, ``dse``) and stacking weights follow from the pointwise values
(:mod:`cartfit.analysis.elpd`).

References: Vehtari, Gelman & Gabry (2017) Stat. Comput. 27:1413–1432; Yao, Vehtari, Simpson &
Gelman (2018) Bayesian Anal. 13:917–1007.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cartfit.analysis.crossval import (
    BAD_PARETO_K,
    bad_points,
    check_refittable,
    kfold_estimate,
    loo_with_refits,
    psis_loo,
)
from cartfit.analysis.elpd import compare_pointwise
from cartfit.errors import CartfitError
from cartfit.inference.fitfile import (
    BY_CHAIN_NOTE,
    MISFIT_NOTE,
    NOT_CONVERGED_NOTE,
    stored_problems,
)

DEFAULT_MAX_REFITS = 10
COLUMNS = (
    "model", "growth", "elpd_loo", "se", "elpd_diff", "dse", "weight", "n_bad_pareto_k",
    "n_refit", "p_loo", "indistinguishable", "warning", "fit",
)  # fmt: skip


def _load(path: Path) -> xr.DataTree:
    from cartfit.inference.predict import load_fit

    tree = load_fit(path)
    if "log_likelihood" not in tree.children or "y" not in tree["log_likelihood"].data_vars:
        raise CartfitError(
            f"{path}: fit file has no pointwise log-likelihood (group log_likelihood)"
        )
    return tree


def _row_keys(tree: xr.DataTree) -> list[tuple]:
    """One key per observed row: subject, analyte, time, value and the row's rank among equal
    keys (replicates), so that rows of two fits can be matched."""
    const = tree["constant_data"]
    rows = zip(
        np.asarray(const["obs_subject"].values).astype(str),
        np.asarray(const["obs_analyte"].values).astype(str),
        np.asarray(const["obs_time"].values, float),
        np.asarray(tree["observed_data"]["y"].values, float),
        strict=True,
    )
    seen: dict[tuple, int] = {}
    keys = []
    for row in rows:
        seen[row] = seen.get(row, -1) + 1
        keys.append((*row, seen[row]))
    return keys


def common_rows(
    paths: Sequence[Path], trees: Sequence[xr.DataTree]
) -> tuple[list[np.ndarray], str]:
    """Per fit, the indices of the observations that every fit has, in one order, and a note
    when some fit also has others (e.g. the escape model's ``tumor_antigen_neg`` readings,
    which the predator–prey model does not fit): the comparison then scores, counts and
    refits every fit on the shared observations only. Raises if the cohorts differ or no
    observation is shared by all fits."""
    sha = trees[0].attrs.get("data_sha256", "")
    keys = [_row_keys(t) for t in trees]
    first = set(keys[0])
    for path, tree, key in zip(paths[1:], trees[1:], keys[1:], strict=True):
        differ = "cohort (data_sha256)" if tree.attrs.get("data_sha256", "") != sha else ""
        if not differ and not first.intersection(key):
            differ = "observations"
        if differ:
            raise CartfitError(
                f"compare: {paths[0]} and {path} were fitted to different data ({differ} "
                f"differ: {len(keys[0])} vs {len(key)} observations); only fits of the same "
                "data can be compared"
            )
    if all(k == keys[0] for k in keys[1:]):
        return [np.arange(len(k)) for k in keys], ""
    shared = first.intersection(*keys[1:])
    if not shared:
        raise CartfitError(
            f"compare: no observation is in every one of the {len(paths)} fits (each pair "
            "shares some, all of them none); compare them in pairs"
        )
    order = [k for k in keys[0] if k in shared]
    positions = [{k: i for i, k in enumerate(ks)} for ks in keys]
    index = [np.array([pos[k] for k in order]) for pos in positions]
    analytes = sorted({k[1] for k in order})
    extra = [
        f"{p.name} also fitted {len(ks) - len(order)}"
        for p, ks in zip(paths, keys, strict=True)
        if len(ks) > len(order)
    ]
    note = (
        f"scored on the {len(order)} observations every fit has ({', '.join(analytes)}); "
        + ", ".join(extra)
        + " others, left out of its elpd"
    )
    return index, note


def _names(paths: Sequence[Path], trees: Sequence[xr.DataTree]) -> list[str]:
    names = [f"{t.attrs.get('model', '?')}/{t.attrs.get('growth', '?')}" for t in trees]
    if len(set(names)) < len(names):
        names = [f"{n} ({p.stem})" for n, p in zip(names, paths, strict=True)]
    return names


def compare_fits(
    paths: Sequence[str | Path],
    kfold: bool = False,
    *,
    max_refits: int = DEFAULT_MAX_REFITS,
    kfold_groups: int | None = None,
    refit_settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Cross-validated comparison of fits of the same data, best first.

    Parameters
    ----------
    paths
        Fit files (``cartfit fit``) of the same cohort.
    kfold
        Population fits only: k-fold cross-validation over subjects with refits instead of
        PSIS-LOO (see :mod:`cartfit.analysis.kfold`).
    max_refits
        Per fit, at most this many points with :math:`\\hat k > 0.7` are refitted exactly
        (worst first); 0 keeps PSIS everywhere.
    kfold_groups
        Number of subject groups for ``kfold`` (default: one per subject, at most 10).
    refit_settings
        :class:`~cartfit.inference.fit.FitSettings` fields that replace the fit's own settings
        in refits (e.g. fewer draws).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``growth``, ``elpd_loo`` (``elpd_kfold`` with ``kfold``), ``se``,
        ``elpd_diff`` (``elpd - elpd_best``, <= 0), ``dse`` (SE of the paired difference),
        ``weight`` (stacking), ``n_bad_pareto_k`` (points still with :math:`\\hat k > 0.7`
        after the refits), ``n_refit`` (refits made: points, or subject groups with
        ``kfold``), ``p_loo``, ``indistinguishable`` (:math:`|\\mathrm{elpd\\_diff}| <
        2\\,\\mathrm{dse}`; on the best row: whether any other fit is within that band),
        ``warning`` (the fit's R-hat problem; "misfit" where an analyte's residual SD is at
        least :data:`MISFIT_RATIO` times the best fit's; unreliable PSIS) and ``fit`` (file).

    Raises
    ------
    CartfitError
        If a file is not a fit, the fits were made on different data, ``kfold`` is asked for a
        subject fit, or a refit is needed and the fit's cohort folder is missing or changed.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise CartfitError("compare: give at least one fit file")
    if max_refits < 0:
        raise CartfitError(f"compare --max-refits {max_refits}: give 0 (no refits) or more")
    trees = [_load(p) for p in paths]
    shared_rows, shared_note = common_rows(paths, trees)
    names = _names(paths, trees)
    if kfold and shared_note:
        raise CartfitError(
            "compare --kfold: the fits do not share all their observations "
            f"({shared_note}); k-fold scores whole subjects, so compare them by PSIS-LOO"
        )
    if kfold:
        check_refittable(paths, trees, kfold=True)
        est = {
            n: kfold_estimate(t, p, kfold_groups, refit_settings)
            for n, p, t in zip(names, paths, trees, strict=True)
        }
    else:
        psis = [psis_loo(t) for t in trees]
        need = [
            i for i, ((_, k), r) in enumerate(zip(psis, shared_rows, strict=True))
            if max_refits > 0 and len(bad_points(k[r]))
        ]  # fmt: skip
        check_refittable([paths[i] for i in need], [trees[i] for i in need], kfold=False)
        est = {
            n: loo_with_refits(t, p, ps, r, max_refits, refit_settings)
            for n, p, t, ps, r in zip(names, paths, trees, psis, shared_rows, strict=True)
        }
    table = compare_pointwise({n: e.pointwise for n, e in est.items()})
    best_sd = _residual_sd(trees[names.index(str(table.index[0]))])
    rows = []
    for name, row in table.iterrows():
        i, e = names.index(str(name)), est[str(name)]
        notes = _convergence_notes(trees[i])
        if notes and not kfold and len(names) > 1:
            notes += chain_ranking(trees[i], shared_rows[i], table, str(name))
        notes += _misfit_notes(trees[i], best_sd) + list(e.notes)
        notes += [shared_note] if shared_note else []
        if row["elpd_diff"] != 0.0 and e.pointwise.n < 100:
            notes.append("N < 100")
        elif row["elpd_diff"] != 0.0 and abs(row["elpd_diff"]) < 4:
            notes.append("|elpd_diff| < 4")
        rows.append({
            "model": trees[i].attrs.get("model", ""), "growth": trees[i].attrs.get("growth", ""),
            "elpd_loo": row["elpd"], "se": row["se"], "elpd_diff": row["elpd_diff"],
            "dse": row["dse"], "weight": row["weight"], "n_bad_pareto_k": e.n_bad,
            "n_refit": e.n_refit, "p_loo": row["p"], "warning": "; ".join(notes),
            "fit": str(paths[i]),
        })  # fmt: skip
    out = pd.DataFrame(rows)
    close = (out["elpd_diff"].abs() < 2.0 * out["dse"]) & (out.index > 0)
    out["indistinguishable"] = close
    if len(out) > 1:
        out.loc[0, "indistinguishable"] = bool(close.any())
    return out[list(COLUMNS)]


def chain_ranking(tree, rows: np.ndarray, table: pd.DataFrame, name: str) -> list[str]:
    r"""Whether a fit whose chains disagree keeps its place in the ranking chain by chain.

    Each chain :math:`c` alone gives a PSIS-LOO estimate :math:`\widehat{\mathrm{elpd}}_c` on
    the scored ``rows``; the place of fit ``name`` in ``table`` (from
    :func:`~cartfit.analysis.elpd.compare_pointwise`, best first) holds in chain :math:`c`
    when :math:`\widehat{\mathrm{elpd}}_c` lies between the pooled elpd of the fits ranked
    just above and just below it. When it holds in every chain, the chains' disagreement does
    not change the comparison (on data/example the logistic and exponential laws, whose
    chains sit in different modes, are 150 and 250 elpd behind Gompertz in every chain);
    where it does not, the ranking itself is in doubt. Refitted points keep their PSIS values
    here. Returns one note for the fit's ``warning``.
    """
    per_chain = np.array([
        psis_loo(tree.isel(chain=[c]))[0].elpd_i[rows].sum()
        for c in range(tree["posterior"].sizes["chain"])
    ])  # fmt: skip
    order = list(table.index)
    j = order.index(name)
    above = table["elpd"].iloc[j - 1] if j > 0 else np.inf
    below = table["elpd"].iloc[j + 1] if j + 1 < len(order) else -np.inf
    moved = np.flatnonzero((per_chain >= above) | (per_chain <= below))
    diff = per_chain - table["elpd"].iloc[0]
    verdict = (
        f"its place in the ranking changes in chain(s) {', '.join(map(str, moved))}"
        if moved.size
        else "its place in the ranking holds in every chain"
    )
    return [f"{BY_CHAIN_NOTE}elpd_diff {diff.min():.1f} to {diff.max():.1f}: {verdict}"]


#: a residual SD this many times the best fit's marks a model that does not describe the data
MISFIT_RATIO = 1.5


def _residual_sd(tree) -> dict[str, float]:
    """Posterior median of each analyte's residual SD (log scale), by analyte."""
    sigma = tree["posterior"].get("sigma")
    if sigma is None or "analyte" not in sigma.dims:
        return {}
    med = sigma.median([d for d in sigma.dims if d in ("chain", "draw")])
    return {str(a): float(v) for a, v in zip(sigma["analyte"].values, med.values, strict=True)}


def _misfit_notes(tree, best_sd: Mapping[str, float]) -> list[str]:
    """Analytes whose residual SD is at least :data:`MISFIT_RATIO` times the best fit's
    (``best_sd``, from :func:`_residual_sd`; never true of the best fit itself): the
    model cannot follow those data, so its trajectories are a compromise between them (on
    data/example the logistic law's tumour SD is 2.2 log units against Gompertz's 0.59, and
    that compromise is also why its chains disagree)."""
    return [
        f"{MISFIT_NOTE}residual SD of {a} {v:.2f} against {best_sd[a]:.2f} in the best fit"
        for a, v in _residual_sd(tree).items()
        if a in best_sd and v >= MISFIT_RATIO * best_sd[a]
    ]


def _convergence_notes(tree) -> list[str]:
    """The fit's own convergence problems: an elpd from chains that disagree (or a chain stuck
    where the density is astronomically small) is not an estimate of anything."""
    problems = stored_problems(tree.attrs)
    return [f"{NOT_CONVERGED_NOTE}{p}" for p in problems if p.startswith("R-hat")]


def subject_elpd(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Per-subject PSIS-LOO elpd of each fit (the pointwise elpd summed over a subject's rows).

    Columns: ``subject``, ``model``, ``growth``, ``n_obs``, ``elpd_loo``, ``se``
    (:math:`\\sqrt{n}\\,\\mathrm{sd}`), ``elpd_diff`` (to the best fit for that subject),
    ``n_bad_pareto_k``, ``fit``; on the observations all fits share (:func:`common_rows`).
    """
    paths = [Path(p) for p in paths]
    trees = [_load(p) for p in paths]
    shared, _ = common_rows(paths, trees)
    rows = []
    for path, tree, index in zip(paths, trees, shared, strict=True):
        pointwise, k = psis_loo(tree)
        subj = np.asarray(tree["constant_data"]["obs_subject"].values).astype(str)[index]
        elpd_i, k = pointwise.elpd_i[index], k[index]
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

r"""One cross-validated estimate per fit: PSIS-LOO repaired by exact refits, or k-fold.

PSIS-LOO (Vehtari, Gelman & Gabry 2017) gives every observation's
:math:`\widehat{\mathrm{elpd}}_i` from the fit's draws alone. Where its Pareto shape
:math:`\hat k_i > 0.7` the estimate is unreliable; those points, worst first and at most
``max_refits`` per fit, get the exact :math:`\log p(y_i \mid y_{-i})` of a refit without them
(:mod:`cartfit.analysis.refit`), the rest keep PSIS and are counted. With ``kfold`` a population
fit is scored per subject as a new subject instead (:mod:`cartfit.analysis.kfold`). Totals,
standard errors and :math:`p = \sum_i (\mathrm{lppd}_i - \widehat{\mathrm{elpd}}_i)` follow from
the pointwise values (:mod:`cartfit.analysis.elpd`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import xarray as xr

from cartfit.analysis.elpd import Pointwise, lppd_pointwise, with_exact
from cartfit.errors import CartfitError

BAD_PARETO_K = 0.7


@dataclass(frozen=True)
class Estimate:
    """Cross-validated pointwise values of one fit and what was done to get them.

    Attributes
    ----------
    pointwise
        Pointwise elpd and lppd (per observation, or per subject for k-fold).
    n_refit
        Refits made: observations for LOO, subject groups for k-fold.
    n_bad
        Observations still with :math:`\\hat k > 0.7` (PSIS kept).
    notes
        Sentences for the table's ``warning``.
    """

    pointwise: Pointwise
    n_refit: int = 0
    n_bad: int = 0
    notes: tuple[str, ...] = ()


def psis_loo(tree: xr.DataTree) -> tuple[Pointwise, np.ndarray]:
    r"""PSIS-LOO pointwise values (with the full-data lppd) and Pareto k of a fit.

    An observation whose log-likelihood is the same in every draw (a censored reading the
    model predicts far below its LLOQ: :math:`\log\Phi \approx 0`) has uniform importance
    weights, so its leave-one-out value is exactly that constant and its :math:`\hat k` is 0;
    PSIS runs on the others (it cannot fit a tail to constant values)."""
    loglik = tree["log_likelihood"]["y"].stack(sample=("chain", "draw")).transpose("sample", ...)
    values = np.asarray(loglik.values, dtype=float)
    const = np.ptp(values, axis=0) <= 1e-12 * (1.0 + np.abs(values).max(axis=0))
    elpd_i, pareto_k = values[0].copy(), np.zeros(values.shape[1])
    varying = np.flatnonzero(~const)
    if varying.size:
        sub = tree.isel(obs=varying) if const.any() else tree
        try:
            elpd_i[varying], pareto_k[varying] = _psis(sub)
        except ValueError:  # a tail of equal values somewhere: point by point
            for j in varying:
                elpd_i[j], pareto_k[j] = _psis_one(tree, int(j), values[:, j])
    return Pointwise(elpd_i, lppd_pointwise(values)), pareto_k


def _psis(tree: xr.DataTree) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # counted and reported in the table
        loo = azs.loo(tree, pointwise=True, var_name="y")
    return np.asarray(loo.elpd_i.values, float), np.asarray(loo.pareto_k.values, float)


def _psis_one(tree: xr.DataTree, j: int, loglik: np.ndarray) -> tuple[float, float]:
    r"""PSIS-LOO of observation ``j`` alone. When the largest importance ratios are all equal
    (draws repeated by a chain that stopped moving), no Pareto tail can be fitted: the plain
    importance-sampling value :math:`-\log \overline{1/p(y_j\mid\theta)}` is returned with
    :math:`\hat k = \infty`, so the point counts as unreliable (and is refitted when asked)."""
    try:
        elpd, k = _psis(tree.isel(obs=[j]))
        return float(elpd[0]), float(k[0])
    except ValueError:
        neg = -loglik
        top = neg.max()
        return float(-(top + np.log(np.mean(np.exp(neg - top))))), float("inf")


def bad_points(pareto_k: np.ndarray) -> np.ndarray:
    """Indices of the points with :math:`\\hat k > 0.7`, worst first."""
    bad = np.flatnonzero(pareto_k > BAD_PARETO_K)
    return bad[np.argsort(-pareto_k[bad], kind="stable")]


def loo_with_refits(
    tree: xr.DataTree,
    path: str | Path,
    psis: tuple[Pointwise, np.ndarray],
    rows: np.ndarray,
    max_refits: int,
    overrides: Mapping[str, Any] | None = None,
) -> Estimate:
    """PSIS-LOO on the observations ``rows`` (indices into the fit's observations, in the
    order of the result) with the worst ``max_refits`` of them with :math:`\\hat k > 0.7`
    refitted exactly: only those observations are scored, counted and refitted."""
    from cartfit.analysis.refit import exact_loo_point, refit_settings, source_cohort

    rows = np.asarray(rows)
    pointwise = Pointwise(psis[0].elpd_i[rows], psis[0].lppd_i[rows])
    bad = bad_points(psis[1][rows])
    chosen = bad[: max(max_refits, 0)]
    exact = {}
    if len(chosen):
        cohort, settings = source_cohort(tree, path), refit_settings(tree, overrides)
        exact = {int(i): exact_loo_point(tree, cohort, int(rows[i]), settings) for i in chosen}
    left = len(bad) - len(chosen)
    notes = []
    if exact:
        notes.append(
            f"{len(exact)} point(s) with Pareto k > {BAD_PARETO_K} replaced by exact "
            "leave-one-out refits"
        )
    if left:
        cap = f"beyond max_refits={max_refits}" if max_refits > 0 else "refits disabled"
        notes.append(
            f"{left} Pareto k > {BAD_PARETO_K} ({cap}): PSIS-LOO unreliable for these points"
        )
    return Estimate(with_exact(pointwise, exact), len(exact), left, tuple(notes))


def kfold_estimate(
    tree: xr.DataTree,
    path: str | Path,
    n_groups: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Estimate:
    """k-fold over subjects of a population fit (:func:`cartfit.analysis.kfold.kfold_subjects`)."""
    from cartfit.analysis.kfold import kfold_subjects
    from cartfit.analysis.refit import refit_settings

    settings = refit_settings(tree, overrides)
    subjects, pointwise, k = kfold_subjects(tree, path, settings, n_groups)
    note = (
        f"elpd_kfold: {k}-fold cross-validation over {len(subjects)} subjects, each predicted as "
        "a new subject; elpd_loo, se, dse and p_loo hold per-subject k-fold values"
    )
    return Estimate(pointwise, k, 0, (note,))


def require_population(tree: xr.DataTree, path: str | Path) -> None:
    """Refuse k-fold for a subject fit, pointing at PSIS-LOO with exact refits."""
    if tree.attrs.get("mode") != "population":
        n_obs = tree["observed_data"].sizes.get("obs", 0)
        raise CartfitError(
            f"{path}: compare --kfold needs population fits; this is a subject fit, for which "
            f"k-fold means leaving out each of its {n_obs} observations in turn ({n_obs} refits). "
            "Run without --kfold: PSIS-LOO with exact refits of the points with Pareto k > 0.7 "
            "(--max-refits)"
        )


def check_refittable(paths: Sequence[Path], trees: Sequence[xr.DataTree], kfold: bool) -> None:
    """Before the first (long) refit: every fit that needs one can have it."""
    from cartfit.analysis.refit import source_cohort

    for path, tree in zip(paths, trees, strict=True):
        if kfold:
            require_population(tree, path)
        source_cohort(tree, path)

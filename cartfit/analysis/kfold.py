r"""K-fold cross-validation over subjects of a population fit: how well does the model predict a
*new* subject?

Subjects are split into :math:`K` groups (round robin over the sorted ids; one group per subject
up to 10 by default). For each group :math:`G_k` the population model is refitted to the other
subjects, and every held-out subject :math:`j \in G_k` is scored by the log predictive density of
its whole observation vector for a new subject,

.. math::

    \widehat{\mathrm{elpd}}_j = \log \frac1S \sum_{s=1}^{S}
    p\big(y_j \mid \theta_j^{(s)}, x_{j,0}^{(s)}, \sigma^{(s)}\big), \qquad
    \ln\theta_j^{(s)} = \mu^{(s)} + X_j \beta^{(s)} + \omega^{(s)} \odot \eta^{(s)},\
    \eta^{(s)} \sim \mathcal N(0, I),

with :math:`(\mu, \omega, \beta, \sigma)^{(s)}` from the posterior without :math:`G_k`,
:math:`X_j` the subject's covariates (co-stimulation, lymphodepletion centred on the training
subjects), and the log initial states :math:`x_{j,0}^{(s)}` drawn from their prior given the
subject's baseline tumour and dose (:func:`cartfit.inference.priors.initial_state_prior`).
:math:`p(y_j \mid \cdot)` is the product of the rows' likelihood terms (censored rows: the
M3 term). The in-sample counterpart :math:`\mathrm{lppd}_j = \log \frac1S \sum_s p(y_j \mid
\theta^{(s)})` under the full-data posterior gives :math:`p_{kfold} = \sum_j (\mathrm{lppd}_j -
\widehat{\mathrm{elpd}}_j)`.

Reference: Vehtari, Gelman & Gabry (2017) Stat. Comput. 27:1413–1432, sec. 2.3 (k-fold);
Merkle, Furr & Rabe-Hesketh (2019) J. Educ. Behav. Stat. 44:1–22 (leave-one-cluster-out).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import special

from cartfit.analysis.crossval import require_population
from cartfit.analysis.elpd import Pointwise
from cartfit.analysis.refit import posterior_without, source_cohort
from cartfit.data.cohort import Cohort
from cartfit.errors import CartfitError
from cartfit.inference.data import FitData
from cartfit.inference.fit import FitSettings

MAX_DEFAULT_GROUPS = 10


def subject_groups(subjects: list[str], n_groups: int | None = None) -> list[list[str]]:
    """Round-robin split of the sorted subject ids into ``n_groups`` groups (default: one per
    subject, at most 10)."""
    ids = sorted(subjects)
    k = min(len(ids), MAX_DEFAULT_GROUPS) if n_groups is None else int(n_groups)
    if not 2 <= k <= len(ids):
        raise CartfitError(
            f"compare --kfold-groups {k}: needs 2 to {len(ids)} groups ({len(ids)} subjects)"
        )
    return [ids[i::k] for i in range(k)]


def _flat(da: xr.DataArray) -> np.ndarray:
    return da.stack(sample=("chain", "draw")).transpose("sample", ...).values


def _covariates(name: str, train: FitData, held: FitData) -> float:
    """The held-out subject's value of a covariate column of ``builder.covariate_matrix``."""
    cov = held.covariates.iloc[0]
    if name == "costim_cd28":
        return float(str(cov.get("costim")) == "CD28")
    if name == "lymphodepletion":
        mean = train.covariates["lymphodepletion"].astype(float).mean()
        return float(cov["lymphodepletion"]) - float(mean)
    raise CartfitError(f"compare --kfold: no rule for covariate {name!r} of a new subject")


def _rescaled(held: FitData, train: FitData, subject: str) -> tuple[FitData, np.ndarray]:
    """The held-out subject's data in the training fit's scaled units, and its log values."""
    missing = sorted(set(held.analytes) - set(train.analytes))
    if missing:
        raise CartfitError(
            f"compare --kfold: {missing[0]} of held-out subject {subject} is not "
            "measured in any training subject"
        )
    shift = {a: np.log(held.scales[a] / train.scales[a]) for a in held.analytes}
    log_value = held.obs["log_value"].to_numpy() + held.obs["analyte"].map(shift).to_numpy()
    base = held.baseline_log_tumor + shift.get("tumor", 0.0)
    return replace(held, scales=train.scales, baseline_log_tumor=base), log_value


def new_subject_loglik(
    tree: xr.DataTree,
    train: FitData,
    idata: xr.DataTree,
    held: FitData,
    settings: FitSettings,
    seed: int,
) -> np.ndarray:
    """:math:`\\log p(y_j \\mid \\cdot^{(s)})` of one held-out subject's whole observation
    vector for every training posterior draw, with new subject effects and initial states."""
    from cartfit.inference import priors as P
    from cartfit.inference.builder import covariate_matrix, fixed_by_covariate
    from cartfit.inference.predict import fit_model, observation_means, pointwise_loglik

    model = fit_model(tree)
    post = idata["posterior"]
    log_theta = _flat(post["mu"])
    rng = np.random.default_rng(seed)
    for name in covariate_matrix(train, model).columns:
        log_theta = log_theta + _covariates(name, train, held) * _flat(post[f"beta_{name}"])
    log_theta = log_theta + _flat(post["omega"]) * rng.standard_normal(log_theta.shape)
    for j, values in fixed_by_covariate(model, held).items():
        log_theta[:, j] = np.log(values[0])
    scaled, log_value = _rescaled(held, train, held.subjects[0])
    mean, sd = P.initial_state_prior(model, scaled)
    log_y0 = mean + sd * rng.standard_normal((log_theta.shape[0], model.n_states))
    obs = held.obs
    mu = observation_means(
        model,
        np.exp(log_theta)[:, None],
        log_y0[:, None],
        np.zeros(len(obs), dtype=int),
        obs["time"].to_numpy(float),
        obs["analyte"].to_numpy(),
        settings.rtol,
        settings.atol,
    )
    sigma_idx = [train.analytes.index(a) for a in obs["analyte"]]
    sigma = _flat(post["sigma"])[:, sigma_idx]
    loglik = pointwise_loglik(mu, sigma, log_value, obs["blq"].to_numpy(bool), settings.likelihood)
    return loglik.sum(axis=1)


def _log_mean_exp(values: np.ndarray) -> float:
    return float(special.logsumexp(values) - np.log(values.size))


def _subject_lppd(tree: xr.DataTree, subjects: list[str]) -> np.ndarray:
    """In-sample joint log predictive density of each subject's rows under the full fit."""
    loglik = _flat(tree["log_likelihood"]["y"])
    subj = np.asarray(tree["constant_data"]["obs_subject"].values).astype(str)
    return np.array([_log_mean_exp(loglik[:, subj == s].sum(axis=1)) for s in subjects])


def kfold_subjects(
    tree: xr.DataTree,
    path: str | Path,
    settings: FitSettings,
    n_groups: int | None = None,
    cohort: Cohort | None = None,
) -> tuple[list[str], Pointwise, int]:
    """K-fold over subjects of a population fit.

    Returns
    -------
    subjects, pointwise, n_groups
        Sorted subject ids, their pointwise :math:`\\widehat{\\mathrm{elpd}}_j` and
        :math:`\\mathrm{lppd}_j`, and the number of refits made.

    Raises
    ------
    CartfitError
        For a subject fit, a missing or changed cohort, or an impossible number of groups.
    """
    from cartfit.inference.data import prepare
    from cartfit.inference.predict import fit_model

    require_population(tree, path)
    cohort = cohort if cohort is not None else source_cohort(tree, path)
    subjects = sorted(json.loads(tree.attrs["subjects"]))
    groups = subject_groups(subjects, n_groups)
    model = fit_model(tree)
    elpd = {}
    for k, group in enumerate(groups):
        train_ids = [s for s in subjects if s not in group]
        train, idata = posterior_without(tree, cohort, train_ids, settings)
        for s in group:
            held = prepare(cohort, model, [s])
            ll = new_subject_loglik(tree, train, idata, held, settings, settings.seed + 7919 * k)
            elpd[s] = _log_mean_exp(ll)
    elpd_i = np.array([elpd[s] for s in subjects])
    return subjects, Pointwise(elpd_i, _subject_lppd(tree, subjects)), len(groups)

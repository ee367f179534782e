r"""Exact leave-one-out by refitting: the fix for observations with a bad Pareto :math:`\hat k`.

For an observation :math:`i` whose PSIS weights are unreliable (:math:`\hat k > 0.7`), the same
model is refitted to the same cohort without row :math:`i` (same subjects, priors and sampler
settings unless lighter ones are given), and the exact leave-one-out predictive density

.. math::

    \widehat{\mathrm{elpd}}_i = \log p(y_i \mid y_{-i})
    \approx \log \frac1S \sum_{s=1}^{S} p\big(y_i \mid \theta^{(s)}_{-i}\big),
    \qquad \theta^{(s)}_{-i} \sim p(\theta \mid y_{-i}),

replaces the PSIS estimate. :math:`p(y_i \mid \theta)` is the row's term of the fit's
likelihood: the log-normal (or Student-t) density of :math:`\ln y_i` or, for a row below the
LLOQ, the censored term :math:`\Phi\big((\ln \mathrm{LLOQ}_i - \mu_i)/\sigma\big)` — the same
quantity as the fit's ``log_likelihood`` group. The row is removed from the cohort's observation
table before :func:`cartfit.inference.data.prepare`, so everything the data set up (reference
levels, the baseline that centres the initial tumour) is recomputed without it, as for any new
fit. The chains start at the full-data posterior medians (:func:`warm_start`). This is ``reloo``
of Vehtari, Gelman & Gabry (2017) Stat. Comput. 27:1413–1432, sec. 2.1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from cartfit.data.cohort import Cohort
from cartfit.errors import CartfitError
from cartfit.inference.data import FitData
from cartfit.inference.fit import FitSettings


def refit_settings(tree: xr.DataTree, overrides: Mapping[str, Any] | None = None) -> FitSettings:
    """The fit's own :class:`FitSettings` (attribute ``settings``), with ``overrides`` applied
    (e.g. ``{"chains": 1, "draws": 200}`` for lighter refits); progress bars are off."""
    known = {f.name for f in fields(FitSettings)}
    stored = json.loads(tree.attrs.get("settings", "{}") or "{}")
    settings = FitSettings(**{k: v for k, v in stored.items() if k in known})
    bad = sorted(set(overrides or {}) - known)
    if bad:
        raise CartfitError(f"refit settings: unknown field {bad[0]!r} (known: {sorted(known)})")
    return replace(settings, **{"progress": False, **dict(overrides or {})})


def source_cohort(tree: xr.DataTree, path: str | Path) -> Cohort:
    """The cohort a fit was made on, checked against the fit's ``data_sha256``.

    Raises
    ------
    CartfitError
        If the fit does not name its cohort, the folder is gone, or its content has changed.
    """
    from cartfit.data import load_cohort

    folder = tree.attrs.get("cohort")
    if not folder:
        raise CartfitError(
            f"{path}: the fit names no cohort folder (attribute 'cohort'); "
            "refits need the data the fit was made on"
        )
    if not Path(folder).is_dir():
        raise CartfitError(
            f"{path}: cohort folder {folder} (attribute 'cohort') not found; "
            "refits need the data the fit was made on"
        )
    cohort = load_cohort(folder)
    if cohort.sha256 != tree.attrs.get("data_sha256"):
        raise CartfitError(
            f"{path}: cohort folder {folder} has changed since the fit (its sha256 "
            f"{cohort.sha256[:12]}... differs from the fit's data_sha256 "
            f"{str(tree.attrs.get('data_sha256'))[:12]}...); refits need the data the fit was "
            "made on"
        )
    return cohort


def cohort_row(cohort: Cohort, tree: xr.DataTree, index: int) -> int:
    """Position in ``cohort.observations`` of the fit's observation ``index`` (matched on
    subject, analyte and time, which the data contract makes unique)."""
    const = tree["constant_data"]
    subject = str(const["obs_subject"].values[index])
    analyte = str(const["obs_analyte"].values[index])
    time = float(const["obs_time"].values[index])
    obs = cohort.observations
    hit = np.flatnonzero(
        (obs["subject"] == subject).to_numpy()
        & (obs["analyte"] == analyte).to_numpy()
        & np.isclose(obs["time"].to_numpy(float), time, rtol=0.0, atol=1e-9)
    )
    if len(hit) != 1:
        raise CartfitError(
            f"{cohort.path}: observation {subject} {analyte} day {time:g} of the "
            f"fit found {len(hit)} times in the cohort"
        )
    return int(hit[0])


def warm_start(tree: xr.DataTree, pm_model: Any) -> dict[str, np.ndarray]:
    """Posterior medians of the fit's free variables, on the refit's coordinates (e.g. only the
    training subjects): leaving out a little data moves the posterior a little, so the chains
    start where it will be rather than at the prior, away from the local modes that the fit's
    multi-start optimisation had to avoid."""
    post = tree["posterior"]
    start = {}
    for rv in pm_model.free_RVs:
        if rv.name not in post.data_vars:
            continue
        value = post[rv.name].median(("chain", "draw"))
        try:
            for dim in pm_model.named_vars_to_dims.get(rv.name, ()):
                value = value.sel({dim: list(pm_model.coords[dim])})
        except KeyError:  # a coordinate the fit did not have: let that variable start as usual
            continue
        start[rv.name] = value.values
    return start


def posterior_without(
    tree: xr.DataTree, cohort: Cohort, subjects: list[str], settings: FitSettings
) -> tuple[FitData, xr.DataTree]:
    """Refit the fit's model (``model``, ``growth``, ``mode`` attributes) to ``subjects`` of
    ``cohort`` (already stripped of the held-out rows); returns the data and the sampled tree."""
    from cartfit.inference.data import prepare
    from cartfit.inference.fit import build_with_settings
    from cartfit.inference.predict import fit_model
    from cartfit.inference.sampling import sample_posterior

    population = tree.attrs.get("mode") == "population"
    model = fit_model(tree)
    data = prepare(cohort, model, subjects)
    pm_model = build_with_settings(model, data, population, settings)
    idata = sample_posterior(pm_model, settings, warm_start(tree, pm_model) or None).idata
    return data, idata


def row_loglik(
    tree: xr.DataTree, data: FitData, idata: xr.DataTree, row: pd.Series, settings: FitSettings
) -> np.ndarray:
    """:math:`\\log p(y_i \\mid \\theta^{(s)})` of one cohort row under every refit draw, in
    the refit's scaled units (a shift of :math:`\\ln y`, so the density is unchanged)."""
    from cartfit.inference.predict import (
        fit_model,
        observation_means,
        pointwise_loglik,
        posterior_draws,
    )

    analyte, subject = str(row["analyte"]), str(row["subject"])
    if analyte not in data.scales:
        raise CartfitError(
            f"refit without {subject} {analyte} day {row['time']:g}: no other "
            f"{analyte} observation is left to fit"
        )
    draws = posterior_draws(idata)
    scale = data.scales[analyte]
    blq = bool(row["blq"])
    log_value = np.log((row["lloq"] if blq else row["value"]) / scale)
    mu = observation_means(
        fit_model(tree),
        draws["theta"],
        draws["log_y0"],
        np.array([data.subjects.index(subject)]),
        np.array([float(row["time"])]),
        np.array([analyte]),
        settings.rtol,
        settings.atol,
    )
    sigma = draws["sigma"][:, [data.analytes.index(analyte)]]
    loglik = pointwise_loglik(
        mu, sigma, np.array([log_value]), np.array([blq]), settings.likelihood
    )
    return loglik[:, 0]


def exact_loo_point(tree: xr.DataTree, cohort: Cohort, index: int, settings: FitSettings) -> float:
    """:math:`\\log p(y_i \\mid y_{-i})` of the fit's observation ``index`` by one refit."""
    position = cohort_row(cohort, tree, index)
    obs = cohort.observations
    kept = replace(cohort, observations=obs.drop(index=obs.index[position]).reset_index(drop=True))
    data, idata = posterior_without(tree, kept, json.loads(tree.attrs["subjects"]), settings)
    loglik = row_loglik(tree, data, idata, obs.iloc[position], settings)
    return float(special.logsumexp(loglik) - np.log(loglik.size))

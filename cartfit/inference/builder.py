r"""PyMC model builders: mechanism (ODE), measurement (error model) and population, composed.

The builders only construct a ``pm.Model``; they neither sample nor read files.

Observation model (per row :math:`j` of subject :math:`i`, analyte :math:`a`, time :math:`t_j`):

.. math::

    \ln(y_j / s_a) = h_a(x_i(t_j)) + \varepsilon_j, \qquad
    \varepsilon_j \sim \mathcal N(0, \sigma_a) \text{ or } \sigma_a\, t_\nu

with :math:`x_i` the log states of the ODE (or, for pre-infusion tumour rows, the growth law's
closed form from :math:`x_i(0)`), :math:`h_a` the model's observable, :math:`s_a` the analyte's
reference level. Rows below the LLOQ enter as left-censored (Beal's M3):
:math:`\log \Phi\big((\ln(\mathrm{LLOQ}_j/s_a) - h_a)/\sigma_a\big)`.

Parameters (log scale, non-centred). One subject: :math:`\ln\theta = \ln m + \tau z`,
:math:`z \sim \mathcal N(0, I)` with the model's prior medians :math:`m` and log-SDs :math:`\tau`.
Population:

.. math::

    \ln\theta_{ij} = \mu_j + X_i \beta_j + \omega_j \eta_{ij}, \quad
    \mu_j \sim \mathcal N(\ln m_j, \tau_j),\ \omega_j \sim \mathcal N^+(0.5),\
    \beta \sim \mathcal N(0, 0.5),\ \eta_{ij} \sim \mathcal N(0, 1)

with covariates :math:`X_i` (co-stimulation CD28 vs 4-1BB, centred lymphodepletion) where they
vary in the cohort. The subject effects are sampled partially centred, with a weight per subject
and parameter between the non-centred form above and the centred
:math:`\ln\theta_{ij} \sim \mathcal N(\mu_j + X_i \beta_j, \omega_j)`; the weights start at
1 for the parameters of :func:`centred_parameters` and 0 for the rest, and the sampler sets
them from the data (see :mod:`cartfit.inference.centring`). Initial CAR T is proportional to dose;
initial tumour is centred on the subject's baseline (see :mod:`cartfit.inference.priors`).
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt

from cartfit.inference import priors as P
from cartfit.inference.centring import Centring
from cartfit.inference.data import FitData
from cartfit.inference.likelihood import (
    LAYOUT,
    ODELikelihoodOp,
    layout_arrays,
    predicted_means,
)
from cartfit.inference.op import ODESolveOp
from cartfit.inference.predict import observation_means
from cartfit.models.base import ODEModel


def _data(name: str, value) -> pt.TensorVariable:
    """A data array as a shared variable ``data_<name>`` rather than a constant: the compiled
    log density then depends on the model's structure, not on the data's values, and is loaded
    from the compile cache for any cohort of the same structure (see
    :mod:`cartfit.inference.compiled`)."""
    return pytensor.shared(np.asarray(value), name=f"data_{name}")


def covariate_matrix(data: FitData, model: ODEModel | None = None) -> pd.DataFrame:
    """Covariates that vary in the cohort, coded for the log parameters (one column each).

    Co-stimulation is coded as a CD28 indicator (4-1BB is the reference), lymphodepletion as
    its centred value, unless ``model`` sets a parameter from that column directly (the
    multi-fate model's depth ``D``, see :func:`fixed_by_covariate`)."""
    cov = data.covariates
    direct = set(model.extras.get("covariates", {}).values()) if model is not None else set()
    cov = cov.drop(columns=[c for c in cov.columns if c in direct])
    cols = {}
    if "costim" in cov.columns:
        costim = cov["costim"].astype("string")
        if costim.isin(["CD28"]).any() and costim.isin(["4-1BB"]).any():
            cols["costim_cd28"] = (costim == "CD28").fillna(False).astype(float).to_numpy()
    if "lymphodepletion" in cov.columns:
        ld = pd.to_numeric(cov["lymphodepletion"], errors="coerce")
        if ld.notna().all() and ld.std() > 0:
            cols["lymphodepletion"] = (ld - ld.mean()).to_numpy()
    return pd.DataFrame(cols, index=list(data.subjects))


def shared_parameters(model: ODEModel) -> tuple[str, ...]:
    """Parameters without subject effects in a population fit: the growth law's carrying
    capacity (informed only by the few subjects whose tumour approaches it) unless the model
    names its own set in ``extras["shared_parameters"]``."""
    default = tuple(n for n in model.parameter_names if n == "carrying_capacity")
    shared = tuple(model.extras.get("shared_parameters", default))
    return shared + tuple(n for n in fixed_parameters(model) if n not in shared)


def fixed_parameters(model: ODEModel) -> tuple[str, ...]:
    """Parameters held at their prior medians in a population fit, named by the model in
    ``extras["population_fixed"]``: constants that the cohort's measurements cannot inform and
    whose prior ranges only add curved, flat directions to the posterior (the multi-fate
    model's cytokine constants). A covariate column can still set one per subject
    (:func:`fixed_by_covariate`). One-subject fits estimate them under their priors."""
    return tuple(n for n in model.extras.get("population_fixed", ()) if n in model.parameter_names)


def centred_parameters(model: ODEModel, data: FitData) -> tuple[str, ...]:
    """Parameters whose subject effects start centred (weight 1) in a population fit.

    Non-centring suits a parameter the subject's own data say little about; a parameter the
    subject's data pin down mixes better centred (Papaspiliopoulos, Roberts & Sköld 2007). When
    the cohort measures CAR T, each subject's 8-12 CAR T readings set its expansion and
    contraction, and its pre-infusion and relapse tumour readings its growth rate, so those are
    centred; killing, seen only through the few tumour readings of the response (most of them
    censored), stays non-centred. On data/example (predator-prey, Gompertz, 16 subjects,
    4 x 300/300) this took the worst R-hat from 1.13 (all non-centred) to 1.018 and the
    leapfrog steps per draw from 127 (the tree-depth cap) to ~30; centring killing as well gave
    R-hat 2.7. A model can name its own set in ``extras["centred_parameters"]``.
    """
    if "car_t" not in data.analytes:
        return ()
    default = ("growth_rate", "proliferation_rate", "death_rate")
    names = model.extras.get("centred_parameters", default)
    shared = set(shared_parameters(model))
    return tuple(n for n in names if n in model.parameter_names and n not in shared)


def covariate_parameters(model: ODEModel) -> tuple[str, ...]:
    """Parameters that covariates act on: the CAR T and killing parameters (not the growth law,
    which describes the tumour before it meets the product), or the model's own set in
    ``extras["covariate_parameters"]``."""
    fixed = set(fixed_parameters(model))
    if "covariate_parameters" in model.extras:
        return tuple(n for n in model.extras["covariate_parameters"] if n not in fixed)
    growth = model.extras.get("growth_law")
    growth_names = set(growth.parameter_names) if growth is not None else set()
    return tuple(n for n in model.parameter_names if n not in growth_names | fixed)


def _subject_log_params(model: ODEModel, data: FitData, population: bool):
    priors = P.parameter_priors(model, data)
    log_m = _data("prior_log_median", np.log([priors[n]["median"] for n in model.parameter_names]))
    tau = _data("prior_log_sd", [priors[n]["log_sd"] for n in model.parameter_names])
    if not population:
        z = pm.Normal("z", 0.0, 1.0, dims=("subject", "parameter"))
        return log_m + tau * z
    pm_model = pm.modelcontext(None)
    fixed = set(fixed_parameters(model))
    if fixed:  # typical values: estimated ones free, fixed ones at their prior medians
        est = [i for i, n in enumerate(model.parameter_names) if n not in fixed]
        pm_model.add_coord("estimated_parameter", [model.parameter_names[i] for i in est])
        mu_free = pm.Normal("mu_free", log_m[est], tau[est], dims="estimated_parameter")
        mu = pm.Deterministic("mu", pt.set_subtensor(log_m[est], mu_free), dims="parameter")
    else:
        mu = pm.Normal("mu", log_m, tau, dims="parameter")
    shared = shared_parameters(model)
    varying = [i for i, n in enumerate(model.parameter_names) if n not in shared]
    pm_model.add_coord("varying_parameter", [model.parameter_names[i] for i in varying])
    omega_free = pm.HalfNormal("omega_free", P.OMEGA_SCALE, dims="varying_parameter")
    pm.Deterministic(
        "omega", pt.set_subtensor(pt.zeros(model.n_params)[varying], omega_free), dims="parameter"
    )
    cov_params = covariate_parameters(model)
    cov_idx = np.array([model.parameter_names.index(n) for n in cov_params])
    pm_model.add_coord("covariate_parameter", list(cov_params))
    loc = pt.broadcast_to(mu, (data.n_subjects, model.n_params))
    beta_sd = model.extras.get("covariate_sd", P.BETA_SD)
    for name, x in covariate_matrix(data, model).items():
        x = _data(f"covariate_{name}", x.to_numpy(float))
        beta_free = pm.Normal(f"beta_{name}_free", 0.0, beta_sd, dims="covariate_parameter")
        beta = pt.set_subtensor(pt.zeros(model.n_params)[cov_idx], beta_free)
        pm.Deterministic(f"beta_{name}", beta, dims="parameter")
        loc = loc + x[:, None] * beta
    idx = np.asarray(varying, dtype=int)
    centred_names = set(centred_parameters(model, data))
    initial = [1.0 if model.parameter_names[i] in centred_names else 0.0 for i in varying]
    weights = _data("centring", np.tile(initial, (data.n_subjects, 1)))
    loc_v = loc[:, idx]
    eta = pm.Normal(
        "eta", weights * loc_v, omega_free**weights, dims=("subject", "varying_parameter")
    )
    effect = omega_free ** (1.0 - weights) * (eta - weights * loc_v)
    log_theta = pt.set_subtensor(loc[:, idx], loc_v + effect)
    pm_model.cartfit_centring = Centring(weights, loc_v, omega_free)
    return log_theta


def fixed_by_covariate(model: ODEModel, data: FitData) -> dict[int, np.ndarray]:
    """Model parameters set per subject from a covariate column (e.g. the multifate model's
    lymphodepletion depth from ``subjects.csv``), when every fitted subject has a value.

    ``extras["covariates"]`` maps parameter name -> column; returns index -> values."""
    fixed = {}
    for name, column in model.extras.get("covariates", {}).items():
        if column in data.covariates.columns:
            values = pd.to_numeric(data.covariates[column], errors="coerce").to_numpy(float)
            if np.all(np.isfinite(values)) and np.all(values > 0):
                fixed[model.parameter_names.index(name)] = values
    return fixed


def _log_initial_states(model: ODEModel, data: FitData, population: bool):
    mean, sd = P.initial_state_prior(model, data)
    mean, sd = _data("initial_state_mean", mean), _data("initial_state_sd", sd)
    z0 = pm.Normal("z0", 0.0, 1.0, dims=("subject", "state"))
    return mean + sd * z0


def build_model(
    model: ODEModel,
    data: FitData,
    *,
    population: bool = False,
    likelihood: str = "lognormal",
    rtol: float = 1e-6,
    atol: float = 1e-6,
    fused: bool = True,
) -> pm.Model:
    """Construct the PyMC model of ``model`` for the subjects in ``data``.

    The log-normal likelihood is one compiled Op with the ODE solve
    (:class:`~cartfit.inference.likelihood.ODELikelihoodOp`); ``fused=False`` (and the
    Student-t likelihood) builds the same density as a PyTensor graph around the solve."""
    if likelihood not in ("lognormal", "student_t"):
        raise ValueError(f"unknown likelihood {likelihood!r}; expected lognormal or student_t")
    coords = {
        "subject": list(data.subjects),
        "parameter": list(model.parameter_names),
        "state": list(model.states),
        "analyte": list(data.analytes),
        "obs": np.arange(len(data.obs)),
    }
    with pm.Model(coords=coords) as pm_model:
        log_theta = _subject_log_params(model, data, population)
        for j, values in fixed_by_covariate(model, data).items():
            log_theta = pt.set_subtensor(log_theta[:, j], _data(f"fixed_{j}", np.log(values)))
        log_y0 = _log_initial_states(model, data, population)
        pm.Deterministic("theta", pt.exp(log_theta), dims=("subject", "parameter"))
        pm.Deterministic("log_y0", log_y0, dims=("subject", "state"))
        sigma = pm.LogNormal("sigma", np.log(P.SIGMA_MEDIAN), P.SIGMA_LOG_SD, dims="analyte")
        if likelihood == "lognormal" and fused:
            _fused_likelihood(model, data, log_theta, log_y0, sigma, rtol, atol)
        else:
            _graph_likelihood(model, data, log_theta, log_y0, sigma, likelihood, rtol, atol)
    # mu_obs at posterior draws of theta and log_y0, computed after sampling (nutpie does not
    # store it, see cartfit.inference.compiled); both likelihoods predict with the same solve
    pm_model.cartfit_predict = partial(predicted_means, model, data, rtol=rtol, atol=atol)
    return pm_model


def _fused_likelihood(model, data, log_theta, log_y0, sigma, rtol, atol) -> None:
    """Predictions ``mu_obs`` and the observed ``y`` from :class:`ODELikelihoodOp`."""
    obs = data.obs
    layout = [_data(name, value) for name, value
              in zip(LAYOUT, layout_arrays(model, data), strict=True)]  # fmt: skip
    op = ODELikelihoodOp(model.name, model.growth, rtol=rtol, atol=atol)
    observed = _data("observed", obs["log_value"].to_numpy(float))
    pm.Deterministic("mu_obs", op(log_theta, log_y0, sigma, observed, *layout)[1], dims="obs")

    def logp(value, log_theta, log_y0, sigma, t_obs):
        return op(log_theta, log_y0, sigma, value, *layout)[0]

    def random(log_theta, log_y0, sigma, t_obs, rng=None, size=None):
        """A draw of every row: normal around the prediction, censored at its LLOQ."""
        mu = observation_means(model, np.exp(log_theta)[None], log_y0[None],
                               obs["subject_idx"].to_numpy(), t_obs,
                               obs["analyte"].to_numpy(), rtol, atol)[0]  # fmt: skip
        draws = rng.normal(mu, sigma[obs["analyte_idx"].to_numpy()])
        return np.where(obs["blq"].to_numpy(bool), np.minimum(draws, obs["log_lloq"]), draws)

    # the rows' times as the last parameter give the size of the output
    pm.CustomDist("y", log_theta, log_y0, sigma, layout[7], logp=logp, random=random,
                  signature="(s,p),(s,n),(a),(o)->(o)", observed=observed, dims="obs")  # fmt: skip


def _graph_likelihood(model, data, log_theta, log_y0, sigma, likelihood, rtol, atol) -> None:
    """Predictions ``mu_obs`` and the observed ``y`` as a PyTensor graph around the solve."""
    obs = data.obs
    growth = model.extras["growth_law"]
    op = ODESolveOp(model.name, model.growth, rtol=rtol, atol=atol)
    ys, _, status = op(log_theta, log_y0, _data("times", data.times),
                       _data("n_times", data.n_times))  # fmt: skip
    pm.Potential("solver_failed", pt.switch(pt.any(status > 0), -np.inf, 0.0))

    s_idx = _data("subject_idx", obs["subject_idx"].to_numpy())
    # mu_j = h_{a_j}(x_{s_j}(t_j)): each observation's states, read from the flattened
    # (subject, time) grid, through the observable h of its analyte
    flat = obs["subject_idx"].to_numpy() * data.times.shape[-1] + obs["time_idx"].to_numpy()
    states_at_obs = ys.reshape((-1, model.n_states))[_data("subject_time_idx", flat)]
    analyte_idx = _data("analyte_idx", obs["analyte_idx"].to_numpy())
    observed_as = [model.observables[a](states_at_obs, pt) for a in data.analytes]
    pred = observed_as[-1]
    for k in reversed(range(len(observed_as) - 1)):
        pred = pt.switch(pt.eq(analyte_idx, k), observed_as[k], pred)
    if obs["pre"].to_numpy().any():
        pre = _data("pre", obs["pre"].to_numpy(bool))
        log_b0 = model.observables["tumor"](log_y0, pt)[s_idx]
        # one gather per parameter: gathering the rows first gave PyTensor 3.3.8's numba
        # build a wrong log density (tests/unit/test_backend.py)
        growth_params = [pt.exp(log_theta[s_idx, k]) for k in range(growth.n_params)]
        time = _data("time", obs["time"].to_numpy(float))
        pre_pred = growth.log_solution(time, log_b0, growth_params, pt)
        pred = pt.switch(pre, pre_pred, pred)
    pm.Deterministic("mu_obs", pred, dims="obs")

    sigma_obs = sigma[analyte_idx]
    if likelihood == "student_t":
        dist = pm.StudentT.dist(nu=P.STUDENT_T_NU, mu=pred, sigma=sigma_obs)
    else:
        dist = pm.Normal.dist(mu=pred, sigma=sigma_obs)
    lower = np.where(obs["blq"].to_numpy(), obs["log_lloq"].to_numpy(), -np.inf)
    observed = _data("observed", obs["log_value"].to_numpy(float))
    pm.Censored("y", dist, lower=_data("lower", lower), upper=None, observed=observed,
                dims="obs")  # fmt: skip


def prior_predictive(pm_model: pm.Model, draws: int = 500, seed: int = 0):
    """Draws from the prior predictive distribution of a built model (one call)."""
    with pm_model, warnings.catch_warnings():
        # the observations' draws solve the ODE in Python, which PyTensor says it will do
        warnings.filterwarnings(
            "ignore", message="Numba will use object mode", category=UserWarning
        )
        return pm.sample_prior_predictive(draws=draws, random_seed=seed)

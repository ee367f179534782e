"""Priors of the inference layer that are not properties of one model: initial states,
residual error and the population hierarchy. Model-parameter priors live next to each model's
equations (``Parameter.median`` and ``Parameter.log_sd``).
"""

from __future__ import annotations

import numpy as np

from cartfit.errors import CartfitError
from cartfit.inference.data import FitData
from cartfit.models.base import ODEModel

#: initial CAR T level relative to the cohort's reference (median peak) level for the median
#: dose: ~1/4000, the typical fold expansion reported for tisagenlecleucel (Stein et al. 2019).
C0_RELATIVE = 2.5e-4
C0_LOG_SD = 1.5
#: a tumour baseline measured near day 0 pins the initial burden to within measurement noise
B0_LOG_SD_KNOWN = 0.5
B0_LOG_SD_UNKNOWN = 2.0
#: minor states (antigen-negative tumour, memory, exhausted) start as small fractions
MINOR_FRACTION = {"tumor": 1e-3, "car_t": 0.1}
MINOR_LOG_SD = 2.0
#: residual SD on the natural-log scale: LogNormal(ln 0.3, 0.5), 95 % between 0.11 and 0.8.
#: qPCR and flow assays have CVs of 20-50 % and imaging/blast counts 10-30 %; a residual SD
#: above 1 (a factor e per measurement) means the model does not describe the data, and a prior
#: that allows it gives the sampler a mode where the ODE is ignored.
SIGMA_MEDIAN = 0.3
SIGMA_LOG_SD = 0.5
#: cohort.yaml ``priors`` key of the initial CAR T level per unit dose (not a model parameter)
INITIAL_CAR_T = "initial_car_t"
#: Student-t degrees of freedom for the robust likelihood option
STUDENT_T_NU = 5.0
#: population hierarchy: HalfNormal scale of the SD of log subject effects, Normal SD of
#: covariate effects on log parameters
OMEGA_SCALE = 0.5
BETA_SD = 0.5


def _state_groups(model: ODEModel) -> tuple[tuple[int, ...], tuple[int, ...]]:
    tumor = tuple(model.extras.get("tumor_states", ()))
    car_t = tuple(model.extras.get("car_t_states", ()))
    if not car_t:
        car_t = tuple(i for i, s in enumerate(model.states) if "car_t" in s)
    if not tumor:
        tumor = tuple(i for i, s in enumerate(model.states) if "tumor" in s)
    return tumor, car_t


def initial_state_prior(model: ODEModel, data: FitData) -> tuple[np.ndarray, np.ndarray]:
    r"""Prior mean (n_subjects, n_states) and SD (n_subjects, n_states) of the log initial states.

    The first tumour state is centred on the subject's baseline burden, the first CAR T state on
    ``C0_RELATIVE * dose / median dose``; other states start as small fractions of those. Where
    the CAR T measurement and the dose count the same cells (an in-vitro assay), cohort.yaml's
    ``priors: {initial_car_t: {median: f, log_sd: s}}`` centres it on ``f * dose`` measured
    units instead: :math:`\ln C_0 \sim \mathcal N(\ln(f\,\mathrm{dose}/s_C), s)`.
    """
    n_sub, n_s = data.n_subjects, model.n_states
    mean = np.zeros((n_sub, n_s))
    sd = np.full((n_sub, n_s), MINOR_LOG_SD)
    tumor, car_t = _state_groups(model)
    known = np.isfinite(data.baseline_log_tumor)
    base = np.where(known, data.baseline_log_tumor, 0.0)
    c0, c0_sd = np.log(C0_RELATIVE) + data.log_dose_rel, np.full(n_sub, C0_LOG_SD)
    per_dose = data.prior_overrides.get(INITIAL_CAR_T)
    if per_dose is not None:
        if "car_t" not in data.scales:
            raise CartfitError(
                "cohort.yaml: priors: initial_car_t needs car_t measurements (its unit is the "
                "car_t measurement's)"
            )
        c0 = np.log(per_dose.get("median", 1.0) * data.dose / data.scales["car_t"])
        c0_sd = np.full(n_sub, per_dose.get("log_sd", C0_LOG_SD))
    for group, anchor, anchor_sd, kind in (
        (tumor, base, np.where(known, B0_LOG_SD_KNOWN, B0_LOG_SD_UNKNOWN), "tumor"),
        (car_t, c0, c0_sd, "car_t"),
    ):
        for rank, i in enumerate(group):
            if rank == 0:
                mean[:, i], sd[:, i] = anchor, anchor_sd
            else:
                mean[:, i] = anchor + np.log(MINOR_FRACTION[kind])
    return mean, sd


def parameter_priors(model: ODEModel, data: FitData) -> dict[str, dict]:
    r"""Prior of each model parameter, ``{name: {symbol, unit, median, log_sd}}``:
    :math:`\ln\theta \sim \mathcal N(\ln m, \tau)` with the model's defaults, replaced by the
    cohort's ``priors`` in cohort.yaml where it names the parameter.

    Raises
    ------
    CartfitError
        If cohort.yaml names a parameter the model does not have.
    """
    unknown = sorted(set(data.prior_overrides) - set(model.parameter_names) - {INITIAL_CAR_T})
    if unknown:
        raise CartfitError(
            f"cohort.yaml: priors: {', '.join(unknown)} is not a parameter of {model.name} "
            f"({model.growth}); expected among {', '.join(model.parameter_names)}"
        )
    preset_name = costim_preset(model, data)
    preset = model.extras["costim_presets"][preset_name] if preset_name else {}
    out = {}
    for p in model.parameters:
        spec = {"symbol": p.symbol, "unit": p.unit, "median": p.median, "log_sd": p.log_sd}
        if p.name in preset:
            spec["median"], spec["log_sd"] = preset[p.name]
            spec["source"] = f"{preset_name} preset"
        spec.update(data.prior_overrides.get(p.name, {}))
        out[p.name] = spec
    return out


def costim_preset(model: ODEModel, data: FitData) -> str | None:
    """The co-stimulation preset whose prior medians a fit uses, for a model that has presets
    (``extras["costim_presets"]``): the fitted subjects' domain when they share one, and the
    reference domain (4-1BB) when they mix domains, for then a population fit
    estimates the other domain's difference as a covariate effect (see
    :func:`cartfit.inference.builder.covariate_matrix`). ``None`` without presets or when no
    fitted subject has a domain with a preset."""
    reference = "4-1BB"  # covariate_matrix codes CD28 against 4-1BB
    presets = model.extras.get("costim_presets")
    if not presets or "costim" not in data.covariates.columns:
        return None
    domains = {str(c) for c in data.covariates["costim"].dropna() if str(c) in presets}
    if len(domains) == 1:
        return domains.pop()
    return reference if domains and reference in presets else None

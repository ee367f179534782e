"""Layout of a cartfit fit file (one NetCDF file, an ArviZ 1 ``xarray.DataTree``).

Every reader of fits (analysis, plotting, report) relies on these names; they are the contract
between ``cartfit fit`` and everything downstream.

Groups and variables
--------------------
``posterior``
    ``theta``      (chain, draw, subject, parameter)  model parameters, natural positive scale,
                   in the model's scaled units (see ``scales`` below), parameter coords =
                   ``ODEModel.parameter_names``.
    ``log_y0``     (chain, draw, subject, state)  log initial states at day 0, scaled units.
    ``sigma``      (chain, draw, analyte)  residual SD on the natural-log scale per analyte.
    population fits also hold ``mu`` (chain, draw, parameter) — typical log parameter for the
    reference covariates, ``omega`` (chain, draw, parameter) — SD of the log subject effects,
    and ``beta_<covariate>`` (chain, draw, parameter) covariate effects on the log parameters.
``posterior_predictive``
    ``y`` (chain, draw, obs)  replicated measurements (natural measured units; values that
    fall below the row's LLOQ are reported as drawn, the flag is for the reader).
``log_likelihood``
    ``y`` (chain, draw, obs)  pointwise log-likelihood of every observation (censored rows:
    ``log Phi((log LLOQ - log yhat)/sigma)``).
``observed_data``
    ``y`` (obs)  the measurement (the LLOQ for censored rows).
``constant_data``
    ``obs_subject`` (obs, str), ``obs_time`` (obs, days), ``obs_analyte`` (obs, str),
    ``obs_lloq`` (obs, NaN if none), ``obs_blq`` (obs, int 0/1),
    ``scale`` (analyte): the reference level that divides each analyte's measured values
    (scaled = measured / scale), ``subject_dose`` (subject), ``subject_costim`` (subject, str);
    population fits add ``centring`` (subject, varying_parameter), the partial-centring weights
    the subject effects ``eta`` were sampled under (see :mod:`cartfit.inference.centring`).
``sample_stats``
    nutpie's sample statistics (``diverging``, ``tree_depth``, ``energy``, ``step_size`` ...).

Root attributes (strings; JSON where structured)
------------------------------------------------
``model``, ``growth``, ``mode`` (``subject`` | ``population``), ``subjects`` (JSON list),
``cartfit_version``, ``data_sha256``, ``cohort`` (folder path), ``seed``, ``sampler``,
``settings`` (JSON), ``priors`` (JSON), ``units`` (JSON analyte -> unit), ``cohort_meta`` (JSON of
cohort.yaml), ``diagnostics`` (JSON summary: R-hat, ESS, counts, problems and notes, and the
rows of :func:`cartfit.inference.divergences.locate_divergences` under ``divergences`` and of
:func:`cartfit.inference.stiffness.locate_stiffness` under ``stiffness``), ``created`` (ISO
time); population fits add
``covariates``, ``centred_parameters`` (centred before the weights are set from the data) and
``fixed_parameters`` (JSON lists; the last held at their prior medians, see
:func:`cartfit.inference.builder.fixed_parameters`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

POSTERIOR_PARAMS = "theta"
POSTERIOR_LOG_Y0 = "log_y0"
POSTERIOR_SIGMA = "sigma"
OBS = "y"
ROOT_ATTRS = (
    "model",
    "growth",
    "mode",
    "subjects",
    "cartfit_version",
    "data_sha256",
    "cohort",
    "seed",
    "sampler",
    "settings",
    "priors",
    "units",
    "cohort_meta",
    "diagnostics",
    "created",
)

#: opening words of the note that says where a fit's divergences happened (the report shows it)
DIVERGENCE_NOTE = "divergences located"
#: opening words of the note that says which chain disagrees with the others, and where
CHAIN_NOTE = "chains disagree"
#: opening words of the note that says which readings make the trees hit the depth cap
STIFFNESS_NOTE = "depth cap located"
#: prefix of a comparison table's warning that a fit does not describe the data (see
#: cartfit.analysis.compare; the report lists these warnings at the top)
MISFIT_NOTE = "misfit: "
#: prefix of a comparison table's warning that a fit's chains did not converge
NOT_CONVERGED_NOTE = "fit not converged: "
#: opening words of a comparison table's warning that scores such a fit chain by chain
BY_CHAIN_NOTE = "chains alone give "


def stored_diagnostics(attrs: Mapping[str, str]) -> dict:
    """The diagnostics ``cartfit fit`` stored as JSON in a fit's ``diagnostics`` attribute
    (``max_r_hat``, ``problems``, ``notes``, ...); empty if none are stored. Raises
    ``ValueError`` if the attribute is not JSON."""
    text = attrs.get("diagnostics")
    return json.loads(text) if text else {}


def stored_problems(attrs: Mapping[str, str]) -> list[str]:
    """The convergence problems stored in a fit's diagnostics (``R-hat > 1.01 for ...``,
    ``... divergent transitions``); empty if none are stored."""
    return list(stored_diagnostics(attrs).get("problems", []))

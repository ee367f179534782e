"""cartfit: Bayesian pharmacology fitting pipeline for CAR T-cell therapy.

The public API, grouped by concept (imported lazily so that ``import cartfit`` and the command
line start fast; ``from cartfit import fit_cohort`` loads PyMC only then):

* data — ``load_cohort``, ``Cohort``, ``summarize``, ``import_nonmem``, ``write_cohort``
* growth laws and models — ``get_growth_law``, ``GROWTH_LAWS``, ``get_model``, ``MODEL_NAMES``,
  ``ODEModel``, ``Parameter``
* simulation — ``solve_reference``, ``simulate_cohort``
* inference — ``FitSettings``, ``fit_cohort``, ``build_model``, ``prepare``, ``prior_predictive``,
  ``load_fit``, ``trajectories``
* analysis — ``compare_fits``, ``exposure_table``, ``relapse_table``, ``virtual_trial``,
  ``trial_contrast``
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_cohort": "cartfit.data",
    "Cohort": "cartfit.data",
    "summarize": "cartfit.data",
    "import_nonmem": "cartfit.data",
    "write_cohort": "cartfit.io",
    "get_growth_law": "cartfit.growth",
    "GROWTH_LAWS": "cartfit.growth",
    "get_model": "cartfit.models",
    "MODEL_NAMES": "cartfit.models",
    "ODEModel": "cartfit.models",
    "Parameter": "cartfit.models",
    "solve_reference": "cartfit.simulate",
    "simulate_cohort": "cartfit.simulate",
    "FitSettings": "cartfit.inference",
    "fit_cohort": "cartfit.inference",
    "build_model": "cartfit.inference",
    "prepare": "cartfit.inference",
    "prior_predictive": "cartfit.inference",
    "load_fit": "cartfit.inference.predict",
    "trajectories": "cartfit.inference.predict",
    "compare_fits": "cartfit.analysis",
    "exposure_table": "cartfit.analysis",
    "relapse_table": "cartfit.analysis",
    "virtual_trial": "cartfit.analysis",
    "trial_contrast": "cartfit.analysis",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cartfit' has no attribute {name!r}")

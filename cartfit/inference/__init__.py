"""Bayesian ODE inference: compiled sensitivity solver, PyTensor Op, model builders, fitting.

Names are imported lazily so that readers of fit files (``cartfit.inference.predict``) do not
pay for importing PyMC.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "build_model": "cartfit.inference.builder",
    "prior_predictive": "cartfit.inference.builder",
    "FitData": "cartfit.inference.data",
    "prepare": "cartfit.inference.data",
    "FitReport": "cartfit.inference.fit",
    "FitSettings": "cartfit.inference.fit",
    "fit_cohort": "cartfit.inference.fit",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cartfit.inference' has no attribute {name!r}")

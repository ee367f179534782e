"""Bayesian ODE inference: compiled sensitivity solver, PyTensor Op, model builders, fitting."""

from cartfit.inference.builder import build_model, prior_predictive
from cartfit.inference.data import FitData, prepare
from cartfit.inference.fit import FitReport, FitSettings, fit_cohort

__all__ = ["FitData", "FitReport", "FitSettings", "build_model", "fit_cohort", "prepare", "prior_predictive"]

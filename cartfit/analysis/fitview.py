r"""What the analyses read from a fit file: units, scales, cell conversions, model quantities.

Trajectories come from :func:`cartfit.inference.predict.trajectories` in the data's measured
units; the model's parameters are in scaled units (scaled = measured / scale, see
:mod:`cartfit.inference.fitfile`). Here those are turned into the quantities the analyses
report: per-capita kill rates (1/day), the control level :math:`C_{ctrl} = r/k` in measured
CAR T units, and tumour cell numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from cartfit.models.base import ODEModel

DEFAULT_REFERENCE_CELLS = 1e10
"""Tumour cells in one reference burden (the fit's tumour ``scale``) when ``cohort.yaml`` has
no ``tumor_cells_per_unit`` — a typical CAR T-treated tumour load (1e9–1e12 cells)."""


@dataclass(frozen=True)
class FitView:
    """A loaded fit with the pieces analyses need."""

    path: Path
    tree: xr.DataTree
    model: ODEModel
    subjects: list[str]
    scales: dict[str, float]
    units: dict[str, str]
    meta: dict[str, Any]

    @property
    def population(self) -> bool:
        return self.tree.attrs.get("mode", "") == "population"

    def obs_times(self) -> NDArray:
        return np.asarray(self.tree["constant_data"]["obs_time"].values, float)

    def lloq(self, subject: str, analyte: str = "car_t") -> float:
        """Median LLOQ of a subject's rows of ``analyte`` (cohort median if the subject has
        none; NaN if no row has one)."""
        const = self.tree["constant_data"]
        lloq = np.asarray(const["obs_lloq"].values, float)
        is_a = np.asarray(const["obs_analyte"].values).astype(str) == analyte
        mine = is_a & (np.asarray(const["obs_subject"].values).astype(str) == subject)
        for rows in (mine, is_a):
            vals = lloq[rows & np.isfinite(lloq)]
            if len(vals):
                return float(np.median(vals))
        return float("nan")

    def tumor_cells_per_unit(self) -> float:
        """Tumour cells per measured tumour unit (``cohort.yaml``, else the default)."""
        value = self.meta.get("tumor_cells_per_unit")
        if value is not None:
            return float(value)
        return DEFAULT_REFERENCE_CELLS / self.scales.get("tumor", 1.0)

    def relapse_threshold(self) -> float | None:
        """Relapse threshold in measured tumour units from ``cohort.yaml`` (None if absent)."""
        value = self.meta.get("relapse_threshold")
        return None if value is None else float(value)


def open_fit(path: str | Path) -> FitView:
    """Load a fit file (:func:`cartfit.inference.predict.load_fit`) and its model."""
    from cartfit.inference.predict import fit_model, load_fit

    tree = load_fit(path)
    const = tree["constant_data"]
    scales = dict(
        zip(
            np.asarray(const["analyte"].values).astype(str).tolist(),
            np.asarray(const["scale"].values, float).tolist(),
            strict=True,
        )
    )
    return FitView(
        path=Path(path),
        tree=tree,
        model=fit_model(tree),
        subjects=list(json.loads(tree.attrs["subjects"])),
        scales=scales,
        units=dict(json.loads(tree.attrs.get("units", "{}"))),
        meta=dict(json.loads(tree.attrs.get("cohort_meta", "{}") or "{}")),
    )


def parameter(model: ODEModel, theta: NDArray, name: str) -> NDArray:
    """One parameter from ``theta`` (..., parameter)."""
    return theta[..., model.parameter_names.index(name)]


def killing_rate(model: ODEModel, log_states: NDArray, theta: NDArray) -> NDArray:
    r"""Per-capita kill rate of antigen-positive tumour, e.g. :math:`k\,C(t)` (1/day).

    ``log_states`` (draw, time, state) and ``theta`` (draw, parameter).
    """
    return model.extras["killing"](log_states, np.moveaxis(theta, -1, 0)[..., None])


def control_level(model: ODEModel, theta: NDArray, car_t_scale: float) -> NDArray:
    r""":math:`C_{ctrl} = r/k` in measured CAR T units (``k`` is per scaled CAR T unit)."""
    return (
        parameter(model, theta, "growth_rate") / parameter(model, theta, "kill_rate") * car_t_scale
    )

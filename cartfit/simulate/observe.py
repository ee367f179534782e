r"""Noisy, censored observations of one subject with given parameters (the observation model).

For analyte :math:`a` at time :math:`t` the true level (scaled units) is the model's observable
:math:`h_a(y(t))` for :math:`t \ge 0`; before infusion the total tumour follows the growth law's
closed form backwards from :math:`B(0)` (see :func:`pre_infusion_log_tumor`) and the
antigen-negative tumour keeps its day-0 share of it. The reported result is that level in
measured units with the assay's log-normal noise and LLOQ (:mod:`cartfit.simulate.measurement`).

:func:`simulate_observations` is the entry point for tests and recovery studies that need data
from known parameters without a whole cohort.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from cartfit.analysis.metrics import metric_grid
from cartfit.models.base import ODEModel
from cartfit.simulate.design import CohortDesign
from cartfit.simulate.emergence import CloneSettings
from cartfit.simulate.measurement import measure
from cartfit.simulate.trajectory import Trajectory, observables, solve_subject
from cartfit.simulate.untreated import pre_infusion_log_tumor

COLUMNS = ["subject", "time", "analyte", "value", "unit", "lloq", "blq"]


def true_log_levels(
    model: ODEModel,
    params: Mapping[str, float],
    trajectory: Trajectory,
    analyte: str,
    times: ArrayLike,
) -> NDArray[np.float64]:
    """Noise-free log level (scaled units) of ``analyte`` at ``times`` (on the grid if >= 0)."""
    t = np.asarray(times, float)
    out = np.empty(t.size)
    post = t >= 0
    if post.any():
        out[post] = observables(model, trajectory.at(t[post]))[analyte]
    if (~post).any():
        if analyte not in ("tumor", "tumor_antigen_neg"):
            raise ValueError(f"{analyte} cannot be observed before infusion (t < 0)")
        day0 = observables(model, trajectory.log_states[:1])
        total = pre_infusion_log_tumor(model, params, float(day0["tumor"][0]), t[~post])
        share = day0[analyte][0] - day0["tumor"][0]
        out[~post] = total + share
    return out


def observation_rows(
    subject: str,
    analyte: str,
    times: ArrayLike,
    log_levels: ArrayLike,
    design: CohortDesign,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Contract rows (``subject, time, analyte, value, unit, lloq, blq``) of one analyte."""
    assay = design.assays[analyte]
    value, blq = measure(assay, log_levels, rng)
    t = np.asarray(times, float)
    return pd.DataFrame(
        {
            "subject": subject,
            "time": t,
            "analyte": analyte,
            "value": value,
            "unit": assay.unit,
            "lloq": assay.lloq,
            "blq": blq.astype(int),
        },
        columns=COLUMNS,
    )


def simulate_observations(
    model: ODEModel,
    params: Mapping[str, float],
    log_y0: ArrayLike,
    times: Mapping[str, ArrayLike],
    rng: np.random.Generator,
    *,
    subject: str = "S01",
    design: CohortDesign | None = None,
    clones: CloneSettings | None = None,
) -> pd.DataFrame:
    """Simulate the measurements of one subject from known parameters.

    Parameters
    ----------
    model
        The model (e.g. ``get_model("predator_prey", "gompertz")``).
    params
        Parameter name -> value in scaled units.
    log_y0
        Log states at infusion (scaled units).
    times
        Analyte -> measurement days; negative days only for tumour analytes.
    rng
        Random generator (noise, and clone emergence when ``clones`` is given).
    subject
        Subject id written in the rows.
    design
        Units, scales, noise and LLOQ of each analyte (default :class:`CohortDesign`).
    clones
        Stochastic antigen-negative emergence (escape model); ``None`` solves ``log_y0``
        deterministically.

    Returns
    -------
    pandas.DataFrame
        Rows of ``observations.csv`` sorted by time and analyte.
    """
    design = design or CohortDesign()
    unknown = set(times) - set(model.observables)
    if unknown:
        raise ValueError(f"model {model.name!r} does not observe {sorted(unknown)}")
    post = np.concatenate([np.asarray(v, float) for v in times.values()])
    end = max(float(post.max(initial=0.0)), 1.0)
    grid = np.union1d(metric_grid(end), post[post >= 0])
    trajectory = solve_subject(model, params, log_y0, grid, clones=clones, rng=rng)
    parts = [
        observation_rows(
            subject, analyte, t, true_log_levels(model, params, trajectory, analyte, t), design, rng
        )
        for analyte, t in times.items()
    ]
    rows = pd.concat(parts, ignore_index=True)
    return rows.sort_values(["time", "analyte"], kind="stable").reset_index(drop=True)

r"""Predicted CAR T re-expansion on antigen rechallenge (a relapse) in multi-fate fits.

For every posterior draw and fitted subject the multi-fate model is solved to ``day``; there
the tumour (the antigen, :math:`A = T`) is raised by a bolus :math:`\Delta T`,

.. math:: T(\text{day}^+) = T(\text{day}) + \Delta T,

and the model is solved on for ``follow_up`` days. The re-expansion is

.. math:: F = \frac{\max_{0 \le s \le s_{max}} C(\text{day} + s)}{C(\text{day})}, \qquad
    C = E + M + X,

(fold, :math:`\ge 1`; 1 = no re-expansion). Memory cells that antigen reactivates
(:math:`k_{ME}\phi_{hi}M`) and surviving effectors drive it, so it measures the functional
memory a product leaves behind.

The restart is exact: the only explicit time dependence of the model is the cytokine
:math:`c(t)`, and :math:`c(\text{day} + s; D) = c(s; D e^{-\text{day}/\tau})`, so the second solve
starts at :math:`s = 0` with the lymphodepletion depth :math:`D` replaced by
:math:`D e^{-\text{day}/\tau}` (:func:`shifted_parameters`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.costim import (
    DEFAULT_DRAWS,
    STEP,
    SUBJECT_COLUMNS,
    draw_indices,
    open_multifate,
)
from cartfit.analysis.exposure import summarize_draws
from cartfit.analysis.fitview import FitView
from cartfit.analysis.metrics import cmax, tmax
from cartfit.errors import CartfitError
from cartfit.models.base import ODEModel


def shifted_parameters(model: ODEModel, theta: np.ndarray, day: float) -> np.ndarray:
    r"""Parameters (..., parameter) whose solve from 0 continues one from ``day`` (days):
    :math:`D \to \min(\max(D, 0), 1)\, e^{-\text{day}/\tau}`."""
    names = model.parameter_names
    d, tau = names.index("lymphodepletion"), names.index("lymphocyte_recovery_time")
    out = np.array(theta, dtype=float, copy=True)
    out[..., d] = np.clip(out[..., d], 0.0, 1.0) * np.exp(-day / out[..., tau])
    return out


def default_bolus(view: FitView) -> float:
    """Antigen bolus (measured tumour units): the cohort's relapse threshold from
    ``cohort.yaml``, else the median posterior tumour burden at infusion."""
    threshold = view.relapse_threshold()
    if threshold is not None:
        return threshold
    log_t0 = view.tree["posterior"]["log_y0"].sel(state="log_tumor").values
    return float(np.exp(np.median(log_t0)) * view.scales.get("tumor", 1.0))


def rechallenge(
    fit_path: str | Path,
    day: float = 180.0,
    dose_of_antigen: float | None = None,
    follow_up: float = 60.0,
    n_draws: int | None = DEFAULT_DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Per subject, CAR T re-expansion after a tumour bolus at ``day``.

    Parameters
    ----------
    fit_path
        A multifate fit (one subject or a population).
    day
        Day of the rechallenge (days since infusion, > 0).
    dose_of_antigen
        Tumour bolus :math:`\\Delta T` in the data's tumour unit (e.g. % marrow blasts);
        default :func:`default_bolus`.
    follow_up
        Days after the rechallenge over which the peak is sought (0.05-day grid).
    n_draws, seed
        Posterior draws used (chosen at random with ``seed``; ``None`` = all).

    Returns
    -------
    DataFrame
        Columns :data:`~cartfit.analysis.costim.SUBJECT_COLUMNS`; metrics ``car_t_before``
        (CAR T unit, level at ``day``), ``peak_after`` (CAR T unit), ``fold_reexpansion``
        (ratio :math:`F`) and ``time_to_peak`` (days after the rechallenge).
    """
    from cartfit.inference.predict import solve_draws

    view = open_multifate(fit_path)
    if not (day > 0 and follow_up > 0):
        raise CartfitError(f"rechallenge: day ({day}) and follow-up ({follow_up}) must be > 0")
    bolus = default_bolus(view) if dose_of_antigen is None else float(dose_of_antigen)
    if not bolus > 0:
        raise CartfitError(f"rechallenge: the antigen dose must be > 0, got {dose_of_antigen}")
    post, model = view.tree["posterior"], view.model
    idx = draw_indices(view, n_draws, seed)
    theta = post["theta"].stack(sample=("chain", "draw")).transpose("sample", ...).values[idx]
    log_y0 = post["log_y0"].stack(sample=("chain", "draw")).transpose("sample", ...).values[idx]
    ys, _ = solve_draws(model, theta, log_y0, np.array([0.0, day]))
    state = ys[:, :, -1].copy()
    state[..., 3] = np.logaddexp(state[..., 3], np.log(bolus / view.scales.get("tumor", 1.0)))
    shifted = shifted_parameters(model, theta, day)
    grid = np.linspace(0.0, follow_up, int(np.ceil(follow_up / STEP)) + 1)
    unit = view.units.get("car_t", "")
    rows = []
    for i, subject in enumerate(view.subjects):
        after, ok = solve_draws(model, shifted[:, i : i + 1], state[:, i : i + 1], grid)
        car_t = np.exp(model.observables["car_t"](after[:, 0], np)) * view.scales["car_t"]
        metrics = {
            "car_t_before": (car_t[:, 0], unit),
            "peak_after": (cmax(grid, car_t), unit),
            "fold_reexpansion": (cmax(grid, car_t) / car_t[:, 0], "ratio"),
            "time_to_peak": (tmax(grid, car_t), "day"),
        }
        for name, (values, u) in metrics.items():
            values = np.where(ok[:, 0], values, np.nan)
            rows.append({"subject": subject, "metric": name, **summarize_draws(values),
                         "unit": u})  # fmt: skip
    return pd.DataFrame(rows, columns=list(SUBJECT_COLUMNS))

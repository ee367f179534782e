"""Posterior exposure metrics per subject (the ``cartfit exposure`` table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.fitview import FitView, control_level, killing_rate, open_fit
from cartfit.analysis.metrics import exposure_metrics, metric_grid

DEFAULT_DRAWS = 1000
COLUMNS = ("subject", "metric", "mean", "median", "q05", "q95", "unit")


def metric_units(car_t_unit: str, window: float) -> dict[str, str]:
    """Unit of every exposure metric given the CAR T unit."""
    return {
        "cmax": car_t_unit,
        "tmax": "day",
        f"auc_0_{window:g}": f"{car_t_unit}*day",
        "c_day28": car_t_unit,
        "persistence_days": "day",
        "killing_exposure": "e-folds",
        "tumor_nadir_log10_reduction": "log10",
        "time_to_nadir": "day",
        "c_ctrl": car_t_unit,
    }


def summarize_draws(values: np.ndarray) -> dict[str, float]:
    """Mean, median, 5 % and 95 % quantiles over finite draws (NaN if none)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": np.nan, "median": np.nan, "q05": np.nan, "q95": np.nan}
    q05, med, q95 = np.quantile(v, [0.05, 0.5, 0.95])
    return {"mean": float(v.mean()), "median": float(med), "q05": float(q05), "q95": float(q95)}


def subject_metrics(view: FitView, traj: dict, s: int, window: float) -> dict[str, np.ndarray]:
    """Exposure metrics of every draw for subject index ``s`` of ``trajectories`` output."""
    times = traj["times"]
    car_t = traj["observables"]["car_t"][:, s]
    tumor = traj["observables"]["tumor"][:, s]
    ok = traj["ok"][:, s]
    kill = killing_rate(view.model, traj["log_states"][:, s], traj["theta"][:, s])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_car_t = kill / car_t
    lloq = traj["lloq"] if "lloq" in traj else view.lloq(view.subjects[s])
    out = exposure_metrics(
        times,
        car_t,
        tumor,
        per_car_t,
        lloq=lloq if np.isfinite(lloq) else np.inf,
        window=window,
        control_level=control_level(view.model, traj["theta"][:, s], view.scales["car_t"]),
    )
    if not np.isfinite(lloq):
        out.pop("persistence_days")
    return {k: np.where(ok, v, np.nan) for k, v in out.items()}


def exposure_table(
    fit_path: str | Path, window: float = 28.0, n_draws: int | None = DEFAULT_DRAWS, seed: int = 0
) -> pd.DataFrame:
    """Exposure metrics of each subject's noise-free trajectory over posterior draws.

    The grid is :func:`cartfit.analysis.metrics.metric_grid` up to the last observation time
    (at least ``window`` and day 28); up to ``n_draws`` posterior draws (chosen at random with
    ``seed``) are solved. ``persistence_days`` is left out when the data give no CAR T LLOQ.

    Returns
    -------
    DataFrame
        Columns ``subject``, ``metric``, ``mean``, ``median``, ``q05``, ``q95``, ``unit``
        (DESIGN.md section 6), values in the data's units.
    """
    from cartfit.inference.predict import trajectories

    view = open_fit(fit_path)
    grid = metric_grid(float(np.max(view.obs_times(), initial=0.0)), window)
    traj = trajectories(view.tree, grid, n_draws=n_draws, seed=seed)
    units = metric_units(view.units.get("car_t", ""), window)
    rows = []
    for s, subject in enumerate(view.subjects):
        for name, values in subject_metrics(view, traj, s, window).items():
            rows.append({"subject": subject, "metric": name, **summarize_draws(values),
                         "unit": units[name]})  # fmt: skip
    if view.population:
        rows += population_rows(view, grid, window, n_draws or DEFAULT_DRAWS, seed, units)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def population_rows(view: FitView, grid: np.ndarray, window: float, n_draws: int, seed: int,
                    units: dict[str, str]) -> list[dict]:  # fmt: skip
    """Rows ``population_typical`` (subject effects zero: uncertainty of the typical subject)
    and ``new_subject`` (posterior predictive of a new subject drawn from the population), each
    with the initial state of a randomly chosen cohort subject and reference covariates."""
    from cartfit.analysis.trial import _trajectories, virtual_subjects

    rows = []
    lloq = np.nanmedian([view.lloq(s) for s in view.subjects])
    for label, typical in (("population_typical", True), ("new_subject", False)):
        theta, log_y0 = virtual_subjects(view, n_draws, seed, typical=typical)
        traj = _trajectories(view, theta, log_y0, grid)
        traj["lloq"] = lloq
        for name, values in subject_metrics(view, traj, 0, window).items():
            rows.append({"subject": label, "metric": name, **summarize_draws(values),
                         "unit": units[name]})  # fmt: skip
    return rows

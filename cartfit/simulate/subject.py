r"""One virtual patient of a simulated cohort: covariates, parameters, visits, data and truth.

Subject :math:`i` gets costim 4-1BB (even :math:`i`) or CD28 (odd :math:`i`), a dose
:math:`D_i` log-uniform on the design's range, parameters from
:func:`~cartfit.simulate.population.draw_parameters`, a tumour burden at infusion
:math:`B_i(0)` and a CAR T level at infusion :math:`C_i(0) = c_D D_i`. For growth laws with a
carrying capacity :math:`K_i`, :math:`B_i(0) = K_i e^{-x_i}` with
:math:`\ln x_i \sim \mathcal N(\ln 0.7, 0.5^2)` (always below :math:`K_i`); for exponential
growth, which has no ceiling, :math:`\ln B_i(0) \sim \mathcal N(\ln 0.75, 0.3^2)` (scaled
units), a little lower so that untreated growth stays below 100 % blasts for months.

Four independent random streams per subject (parameters, visits, assay noise, clones) keep one
part's draws from shifting another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cartfit.analysis.metrics import exposure_metrics, metric_grid
from cartfit.data.schema import FRACTION_ANALYTES
from cartfit.models.base import ODEModel
from cartfit.simulate.design import CohortDesign
from cartfit.simulate.emergence import CloneSettings, escape_layout
from cartfit.simulate.observe import observation_rows, true_log_levels
from cartfit.simulate.outcomes import Outcome, observed_outcome, true_outcome
from cartfit.simulate.population import PopulationSpec, draw_parameters, to_measured
from cartfit.simulate.schedule import draw_visits
from cartfit.simulate.trajectory import Trajectory, observables, solve_subject

METRIC_WINDOW = 28.0


@dataclass(frozen=True)
class VirtualSubject:
    """What one subject contributes to the cohort files."""

    observations: pd.DataFrame
    subject: dict[str, Any]
    truth: dict[str, Any]


def _covariates(index: int, design: CohortDesign, rng: np.random.Generator) -> tuple[str, float]:
    costim = "4-1BB" if index % 2 == 0 else "CD28"
    lo, hi = design.dose_range
    dose = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return costim, float(f"{dose:.2g}")


def _baseline_tumor(params: dict[str, float], rng: np.random.Generator) -> float:
    if "carrying_capacity" in params:
        x = 0.7 * np.exp(0.5 * rng.standard_normal())
        return float(params["carrying_capacity"] * np.exp(-x))
    return float(0.75 * np.exp(0.3 * rng.standard_normal()))


def truth_metrics(
    model: ODEModel,
    spec: PopulationSpec,
    params: dict[str, float],
    trajectory: Trajectory,
    design: CohortDesign,
) -> dict[str, float]:
    r"""Noise-free exposure metrics (measured units) on the metric grid of the trajectory.

    The killing exposure integrates the model's per-capita kill rate of the tumour; the
    control level is :math:`C_{ctrl} = r/k` in copies/µg.
    """
    grid = metric_grid(design.schedule.last_day, METRIC_WINDOW)
    ly = trajectory.at(grid)
    obs = observables(model, ly)
    car_t = design.car_t_scale * np.exp(obs["car_t"])
    tumor = design.tumor_scale * np.exp(obs["tumor"])
    killing = model.extras["killing"](ly, model.pack(params))
    measured = to_measured(spec, params, design.car_t_scale, design.tumor_scale)
    metrics = exposure_metrics(
        grid,
        car_t,
        tumor,
        kill_rate=killing / car_t,
        lloq=design.assays["car_t"].lloq,
        window=METRIC_WINDOW,
        control_level=measured["growth_rate"] / measured["kill_rate"],
    )
    return {name: float(value) for name, value in metrics.items()}


def simulate_subject(
    model: ODEModel,
    spec: PopulationSpec,
    design: CohortDesign,
    subject: str,
    index: int,
    seed: np.random.SeedSequence,
) -> VirtualSubject:
    """Simulate subject number ``index`` (0-based) with its own seed sequence."""
    r_par, r_visit, r_noise, r_clone = (np.random.default_rng(s) for s in seed.spawn(4))
    costim, dose = _covariates(index, design, r_par)
    params, low_fitness = draw_parameters(spec, model.parameter_names, costim, r_par)
    covariates = dict(model.extras.get("covariates", {}))  # parameter -> subjects.csv column
    for name in covariates:
        params[name] = round(params[name], 4)  # as written, so the file and the truth agree
    tumor0 = _baseline_tumor(params, r_par)
    car_t0 = design.car_t_per_cell_infused * dose / design.car_t_scale
    log_y0 = np.asarray(model.extras["initial_state"](tumor0, car_t0), float)

    visits = draw_visits(design.schedule, r_visit)
    post = visits["time"][visits["time"] >= 0]
    grid = np.union1d(metric_grid(design.schedule.last_day, METRIC_WINDOW), post)
    clones = None
    if escape_layout(model) is not None:
        cells = design.tumor_scale * design.tumor_cells_per_unit
        clones = CloneSettings(
            cells, design.clone_birth_rate, design.established_cells, design.clone_history_days
        )
    trajectory = solve_subject(model, params, log_y0, grid, clones=clones, rng=r_clone)

    obs = _measure(model, params, trajectory, visits, design, subject, r_noise)
    seen = _observed(obs, design)
    if not seen.responder:  # off study after the response assessment
        obs = obs[obs["nominal"] <= design.response_day]
    elif np.isfinite(seen.relapse_day):  # off study at relapse
        obs = obs[obs["time"] <= seen.relapse_day]
    obs = obs.drop(columns="nominal").sort_values(["time", "analyte"], kind="stable")

    pre = obs[(obs["analyte"] == "tumor") & (obs["time"] < 0)]["value"].dropna()
    subject_row = {
        "subject": subject,
        "dose": int(dose),
        "costim": costim,
        "product": design.products[costim],
        "disease": design.disease,
        "baseline_tumor": float(pre.iloc[-1]) if len(pre) else np.nan,
        "best_response": "CR" if seen.responder else "NR",
        "relapse_day": seen.relapse_day,
        "relapse_antigen": seen.relapse_antigen,
    }
    subject_row |= {column: params[name] for name, column in covariates.items()}
    truth = {
        "subject": subject,
        "costim": costim,
        "dose": int(dose),
        "low_fitness": low_fitness,
        **_true_values(model, spec, params, trajectory, design),
        "observed_best_response": subject_row["best_response"],
        "observed_relapse_day": seen.relapse_day,
        "observed_relapse_antigen": seen.relapse_antigen,
    }
    return VirtualSubject(obs.reset_index(drop=True), subject_row, truth)


def _measure(
    model: ODEModel,
    params: dict[str, float],
    trajectory: Trajectory,
    visits: pd.DataFrame,
    design: CohortDesign,
    subject: str,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Contract rows of every analyte the model observes, with each visit's nominal day."""
    parts = {}
    for analyte in (a for a in design.assays if a in model.observables):
        if analyte in FRACTION_ANALYTES:  # a phenotype: where CAR T was quantified
            quantified = parts["car_t"].loc[parts["car_t"]["blq"] == 0, "time"]
            at = visits[visits["phenotype"] & visits["time"].isin(quantified)]
        else:
            at = visits[visits["car_t"] if analyte == "car_t" else visits["tumor"]]
        if at.empty:
            continue
        levels = true_log_levels(model, params, trajectory, analyte, at["time"])
        rows = observation_rows(subject, analyte, at["time"], levels, design, rng)
        rows["nominal"] = at["nominal"].to_numpy()
        parts[analyte] = rows
    return pd.concat(parts.values(), ignore_index=True)


def _true_values(
    model: ODEModel,
    spec: PopulationSpec,
    params: dict[str, float],
    trajectory: Trajectory,
    design: CohortDesign,
) -> dict[str, Any]:
    """Parameters, initial states and levels, metrics and outcome of the noise-free subject."""
    measured = to_measured(spec, params, design.car_t_scale, design.tumor_scale)
    day0 = observables(model, trajectory.log_states[:1])
    true = _true(model, trajectory, design)
    return {
        **{f"scaled_{k}": v for k, v in params.items()},
        **{f"measured_{k}": v for k, v in measured.items()},
        **{
            f"init_{s}": float(v)
            for s, v in zip(model.states, trajectory.log_states[0], strict=True)
        },
        **{
            f"{a}_day0": float(design.assays[a].scale * np.exp(day0[a][0]))
            for a in design.assays
            if a in model.observables
        },
        **truth_metrics(model, spec, params, trajectory, design),
        "responder": true.responder,
        "remission_day": true.remission_day,
        "relapse_day": true.relapse_day,
        "relapse_antigen": true.relapse_antigen,
        "escape_day": trajectory.escape_day,
        "antigen_neg_cells_day0": trajectory.antigen_neg_cells_day0,
    }


def _observed(obs: pd.DataFrame, design: CohortDesign) -> Outcome:
    tumor = obs[(obs["analyte"] == "tumor") & (obs["time"] >= 0)].sort_values("time")
    neg = None
    if "tumor_antigen_neg" in set(obs["analyte"]):
        neg_rows = obs[obs["analyte"] == "tumor_antigen_neg"].set_index("time")["value"]
        neg = neg_rows.reindex(tumor["time"]).to_numpy()
    return observed_outcome(
        tumor["time"],
        tumor["nominal"],
        tumor["value"],
        neg,
        design.relapse_threshold,
        design.response_day,
        design.antigen_neg_fraction,
    )


def _true(model: ODEModel, trajectory: Trajectory, design: CohortDesign) -> Outcome:
    obs = observables(model, trajectory.log_states)
    tumor = design.tumor_scale * np.exp(obs["tumor"])
    neg = None
    if "tumor_antigen_neg" in obs:
        neg = design.tumor_scale * np.exp(obs["tumor_antigen_neg"])
    return true_outcome(
        trajectory.times, tumor, neg, design.relapse_threshold, design.antigen_neg_fraction
    )

"""Relapse, escape and cure probabilities per subject from a fit (the ``cartfit relapse`` table).

For every posterior draw the noise-free trajectory is turned into the branching model of
:mod:`cartfit.analysis.relapse`, in tumour cells (``cohort.yaml``'s ``tumor_cells_per_unit``,
else :data:`cartfit.analysis.fitview.DEFAULT_REFERENCE_CELLS` per reference burden):

* models with an antigen-negative compartment (``extras["escape"]``): antigen-positive cells
  :math:`T_A(t)`, antigen loss :math:`\\mu` (the model's parameter), antigen-negative founders
  :math:`T_{A-}(0)` and their per-capita net growth :math:`g_N(t)` = the model's right-hand
  side for the antigen-negative state with :math:`\\mu = 0` (growth law on the total burden
  minus off-target killing);
* other models: the whole tumour is antigen-positive and ``p_relapse_antigen_neg`` is 0.

The relapse threshold is ``cohort.yaml``'s ``relapse_threshold`` (tumour units), else
:data:`cartfit.analysis.relapse.DEFAULT_THRESHOLD_FRACTION` of each draw's day-0 burden; the
division rate of tumour cells is :data:`cartfit.analysis.relapse.DEFAULT_BIRTH_RATE`.
Probabilities are averaged over draws (the posterior predictive probability).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.analysis.fitview import FitView, open_fit, parameter
from cartfit.analysis.relapse import (
    DEFAULT_BIRTH_RATE,
    DEFAULT_THRESHOLD_FRACTION,
    relapse_grid,
    relapse_probabilities,
)

DEFAULT_DRAWS = 100
COLUMNS = (
    "subject", "horizon_days", "p_relapse", "p_relapse_antigen_pos", "p_relapse_antigen_neg",
    "p_cure", "p_response", "n_draws",
)  # fmt: skip


def _neg_net_growth(view: FitView, log_states: np.ndarray, theta: np.ndarray, times) -> np.ndarray:
    """Per-capita net growth (1/day) of antigen-negative cells without the inflow."""
    model = view.model
    esc = model.extras["escape"]
    params = theta.copy()
    params[:, model.parameter_names.index(esc["mutation_parameter"])] = 0.0
    out = np.empty(log_states.shape[:2])
    for d in range(len(params)):
        p = np.ascontiguousarray(params[d])
        for i, t in enumerate(times):
            out[d, i] = model.rhs(float(t), np.ascontiguousarray(log_states[d, i]), p)[
                esc["negative_state"]
            ]
    return out


def subject_inputs(view: FitView, traj: dict, s: int) -> dict:
    """Arguments of :func:`relapse_probabilities` for subject ``s`` (draws with a good solve)."""
    ok = traj["ok"][:, s]
    ly = traj["log_states"][ok, s]
    theta = traj["theta"][ok, s]
    cells = view.tumor_cells_per_unit() * view.scales.get("tumor", 1.0)  # per scaled unit
    esc = view.model.extras.get("escape")
    total = traj["observables"]["tumor"][ok, s] * view.tumor_cells_per_unit()
    if esc is None:
        inputs = {"tumor_pos": total}
    else:
        inputs = {
            "tumor_pos": np.exp(ly[..., esc["positive_state"]]) * cells,
            "antigen_loss_rate": parameter(view.model, theta, esc["mutation_parameter"]),
            "neg_net_growth": _neg_net_growth(view, ly, theta, traj["times"]),
            "tumor_neg0": np.exp(ly[:, 0, esc["negative_state"]]) * cells,
        }
    limit = view.relapse_threshold()
    if limit is None:
        inputs["threshold"] = DEFAULT_THRESHOLD_FRACTION * total[:, 0]
    else:
        inputs["threshold"] = np.full(len(total), limit * view.tumor_cells_per_unit())
    return inputs


def relapse_table(
    fit_path: str | Path,
    horizons: Sequence[float] = (90, 180, 365),
    n_draws: int | None = DEFAULT_DRAWS,
    seed: int = 0,
    birth_rate: float = DEFAULT_BIRTH_RATE,
) -> pd.DataFrame:
    """Posterior relapse, escape and cure probabilities per subject and horizon.

    Returns
    -------
    DataFrame
        ``subject``, ``horizon_days``, ``p_relapse``, ``p_relapse_antigen_pos``,
        ``p_relapse_antigen_neg``, ``p_cure`` (DESIGN.md section 6), plus ``p_response`` and
        ``n_draws`` (draws with a successful solve).
    """
    from cartfit.inference.predict import trajectories

    hz = sorted({float(h) for h in horizons})
    view = open_fit(fit_path)
    times = relapse_grid(max(hz))
    traj = trajectories(view.tree, times, n_draws=n_draws, seed=seed)
    # every subject's draws in one call: the rows are independent, and one call pays the
    # per-grid-node work of the branching computation once rather than once per subject
    per_subject = [subject_inputs(view, traj, s) for s in range(len(view.subjects))]
    counts = [len(inputs["tumor_pos"]) for inputs in per_subject]
    if sum(counts):  # every input has one row per draw with a good solve
        joined = {key: np.concatenate([inputs[key] for inputs in per_subject])
                  for key in per_subject[0]}  # fmt: skip
        probs = relapse_probabilities(times, horizons=hz, birth_rate=birth_rate, **joined)
    ends = np.cumsum(counts)
    rows = []
    for s, subject in enumerate(view.subjects):
        n_ok = counts[s]
        mine = slice(ends[s] - n_ok, ends[s])
        for j, h in enumerate(hz):
            row = {"subject": subject, "horizon_days": int(h) if h == int(h) else h}
            row.update({k: float(np.mean(probs[k][mine, j])) if n_ok else np.nan
                        for k in COLUMNS[2:7]})  # fmt: skip
            rows.append({**row, "n_draws": n_ok})
    return pd.DataFrame(rows, columns=list(COLUMNS))

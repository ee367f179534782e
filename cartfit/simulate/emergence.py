r"""Stochastic emergence of antigen-negative disease in a virtual patient of the escape model.

Antigen-negative cells arise from the antigen-positive tumour :math:`T_A` one at a time, as a
Poisson stream of rate :math:`\mu\, T_A(t)` (cells/day); each founds a lineage that divides at
rate :math:`\max(b, \lambda(t))` and dies at rate :math:`\max(b - \lambda(t), 0)`, where

.. math::

    \lambda(t) = \frac{d \ln T_{A-}}{dt}\Big|_{\mu = 0}

is the per-capita net growth the model's ODE gives the antigen-negative tumour (growth law on the
total burden minus off-target killing). The stream runs from ``history_days`` before infusion,
when the untreated tumour follows its growth law's closed form (no CAR T), so a subject may
carry a few antigen-negative cells at infusion. The antigen-negative cell count is simulated
exactly by :func:`cartfit.simulate.branching.simulate_lineages`; most lineages die out. Once
the count reaches ``established_cells`` (at infusion at the earliest) the clone is
*established*: from then on the antigen-negative tumour follows the deterministic ODE (with its
mean-field inflow :math:`\mu T_A`), starting from the simulated count. Until then it is absent
from the ODE (log level :data:`LOG_ABSENT`), which is solved with :math:`\mu = 0`; a subject
therefore relapses antigen-negative only when a clone actually arose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cartfit.models.base import ODEModel
from cartfit.simulate.branching import simulate_lineages
from cartfit.simulate.reference import solve_reference
from cartfit.simulate.untreated import pre_infusion_log_tumor

LOG_ABSENT = -300.0
"""Log level (scaled units) standing for an absent state (e^-300 ≈ 0)."""


@dataclass(frozen=True)
class CloneSettings:
    """How antigen-negative lineages are simulated.

    Attributes
    ----------
    cells_per_scaled_tumor
        Tumour cells per scaled tumour unit (converts the burden to cell numbers).
    birth_rate
        Division rate :math:`b` of antigen-negative cells (1/day).
    established_cells
        Lineage size (cells) from which the clone is followed deterministically.
    history_days
        How long before infusion the stream starts (days).
    history_step
        Grid step (days) of the pre-infusion part of the simulation.
    """

    cells_per_scaled_tumor: float
    birth_rate: float = 0.5
    established_cells: float = 1000.0
    history_days: float = 365.0
    history_step: float = 1.0


@dataclass(frozen=True)
class EscapeLayout:
    """Where the escape model keeps its antigen-positive and -negative tumour states."""

    positive_state: int
    negative_state: int
    mutation_parameter: str


@dataclass(frozen=True)
class Emergence:
    """Result of :func:`solve_with_emergence`."""

    log_states: NDArray[np.float64]
    escape_day: float
    cells_day0: float


_POSITIVE, _NEGATIVE, _LOSS = "log_tumor_antigen_pos", "log_tumor_antigen_neg", "antigen_loss_rate"


def escape_layout(model: ODEModel) -> EscapeLayout | None:
    """The antigen-escape layout of ``model``, or ``None`` if it has no antigen-negative state.

    Read from ``model.extras["escape"]`` (keys ``positive_state``, ``negative_state``,
    ``mutation_parameter``) or, failing that, from the state names ``log_tumor_antigen_pos``,
    ``log_tumor_antigen_neg`` and the parameter ``antigen_loss_rate``.
    """
    layout = model.extras.get("escape")
    if layout is None:
        if {_POSITIVE, _NEGATIVE} <= set(model.states) and _LOSS in model.parameter_names:
            return EscapeLayout(model.states.index(_POSITIVE), model.states.index(_NEGATIVE), _LOSS)
        return None
    return EscapeLayout(
        positive_state=int(layout["positive_state"]),
        negative_state=int(layout["negative_state"]),
        mutation_parameter=str(layout["mutation_parameter"]),
    )


def _history(
    model: ODEModel,
    params: Mapping[str, float],
    y0: NDArray,
    layout: EscapeLayout,
    clones: CloneSettings,
) -> tuple[NDArray, NDArray]:
    """Pre-infusion grid and log states: untreated tumour, everything else absent."""
    n = int(np.ceil(clones.history_days / clones.history_step))
    times = -clones.history_step * np.arange(n, 0, -1, dtype=float)
    states = np.full((n, model.n_states), LOG_ABSENT)
    states[:, layout.positive_state] = pre_infusion_log_tumor(
        model, params, float(y0[layout.positive_state]), times
    )
    return times, states


def solve_with_emergence(
    model: ODEModel,
    params: Mapping[str, float],
    log_y0: ArrayLike,
    times: NDArray[np.float64],
    clones: CloneSettings,
    rng: np.random.Generator,
) -> Emergence:
    """Log states on ``times`` (from day 0) with stochastic antigen-negative emergence.

    ``log_y0``'s antigen-negative entry is ignored: antigen-negative cells present at infusion
    come from the simulated pre-infusion history. The establishment day is NaN when no clone
    was established, negative when one was established before infusion (the ODE then starts
    from the simulated count at day 0).
    """
    layout = escape_layout(model)
    if layout is None:
        raise ValueError(f"model {model.name!r} has no antigen-negative state")
    no_inflow = {**params, layout.mutation_parameter: 0.0}
    y0 = np.array(log_y0, float)
    y0[layout.negative_state] = LOG_ABSENT
    quiet = solve_reference(model, no_inflow, y0, times)
    before, history = _history(model, params, y0, layout, clones)
    grid = np.concatenate([before, times])
    states = np.concatenate([history, quiet])

    theta = model.pack(no_inflow)
    rhs = model.rhs
    net = np.array(
        [rhs(t, y, theta)[layout.negative_state] for t, y in zip(grid, states, strict=True)]
    )
    arrivals = (
        params[layout.mutation_parameter]
        * np.exp(states[:, layout.positive_state])
        * clones.cells_per_scaled_tumor
    )
    day0 = before.size
    hit, cells = _until_established(grid, net, arrivals, clones, rng)
    if hit is None:
        return Emergence(quiet, float("nan"), float(cells[day0]))
    if hit < day0:  # established before infusion: deterministic growth up to day 0
        growth = np.trapezoid(net[hit : day0 + 1], grid[hit : day0 + 1])
        cells_day0 = cells[hit] * np.exp(growth)
    else:
        cells_day0 = cells[day0]
    k = max(hit, day0)
    y_est = states[k].copy()
    y_est[layout.negative_state] = np.log(
        (cells_day0 if k == day0 else cells[k]) / clones.cells_per_scaled_tumor
    )
    out = quiet.copy()
    out[k - day0 :] = solve_reference(model, params, y_est, grid[k:], t0=float(grid[k]))
    return Emergence(out, float(grid[hit]), float(cells_day0))


def _until_established(
    grid: NDArray,
    net: NDArray,
    arrivals: NDArray,
    clones: CloneSettings,
    rng: np.random.Generator,
    chunk: int = 64,
) -> tuple[int | None, NDArray]:
    """Antigen-negative cell counts on ``grid`` until the first reaches the established size.

    Returns the index of establishment (or ``None``) and the counts (zero after that index).
    The exact simulation runs chunk by chunk so that it stops once the clone is established.
    """
    birth = np.maximum(clones.birth_rate, net[:-1])
    death = birth - net[:-1]
    cells = np.zeros(grid.size)
    start = 0
    while start < grid.size - 1:
        stop = min(start + chunk, grid.size - 1)
        seg = slice(start, stop)
        _, count = simulate_lineages(
            grid[start : stop + 1],
            0,
            0.0,
            0.0,
            int(cells[start]),
            birth[seg],
            death[seg],
            arrivals[:-1][seg],
            1,
            rng,
        )
        cells[start : stop + 1] = count[0]
        hit = np.flatnonzero(count[0] >= clones.established_cells)
        if hit.size:
            return start + int(hit[0]), cells
        start = stop
    return None, cells

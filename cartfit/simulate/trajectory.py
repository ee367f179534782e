r"""Noise-free trajectories of one virtual patient after infusion.

From day 0 the model's log-state ODE :math:`dy/dt = f(t, y; \theta)` is solved with the
reference solver; for the antigen-escape model the antigen-negative tumour instead arises
stochastically (:mod:`cartfit.simulate.emergence`). Untreated growth before infusion is in
:mod:`cartfit.simulate.untreated`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cartfit.models.base import ODEModel
from cartfit.simulate.emergence import CloneSettings, escape_layout, solve_with_emergence
from cartfit.simulate.reference import solve_reference


@dataclass(frozen=True)
class Trajectory:
    """True log states of one subject on a time grid (days >= 0).

    Attributes
    ----------
    times
        Grid, days since infusion.
    log_states
        Shape ``(len(times), n_states)``, natural logs in scaled units.
    escape_day
        Day an antigen-negative clone was established (NaN: never, or not an escape model);
        negative when it was established before infusion.
    antigen_neg_cells_day0
        Antigen-negative cells present at infusion (stochastic emergence only, else NaN).
    """

    times: NDArray[np.float64]
    log_states: NDArray[np.float64]
    escape_day: float = float("nan")
    antigen_neg_cells_day0: float = float("nan")

    def at(self, times: ArrayLike) -> NDArray[np.float64]:
        """Log states at ``times`` (each must be a grid point)."""
        t = np.asarray(times, float)
        idx = np.searchsorted(self.times, t)
        idx = np.clip(idx, 0, len(self.times) - 1)
        if not np.array_equal(self.times[idx], t):
            raise ValueError("requested times are not on the trajectory's grid")
        return self.log_states[idx]


def observables(model: ODEModel, log_states: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Analyte -> log of the measured quantity in scaled units (the model's observables)."""
    ly = np.asarray(log_states, float)
    return {name: np.asarray(f(ly, np), float) for name, f in model.observables.items()}


def solve_subject(
    model: ODEModel,
    params: Mapping[str, float],
    log_y0: ArrayLike,
    times: ArrayLike,
    *,
    clones: CloneSettings | None = None,
    rng: np.random.Generator | None = None,
) -> Trajectory:
    """Solve one subject from day 0 on ``times`` (increasing, starting at 0).

    Without ``clones`` (or for a model without an antigen-negative state, see
    :func:`escape_layout`) this is the deterministic reference solution from ``log_y0``. With
    ``clones`` and ``rng`` the antigen-negative tumour of the escape model is absent at infusion
    and arises stochastically (:func:`solve_with_emergence`).
    """
    t = np.asarray(times, float)
    if t.size == 0 or t[0] != 0.0 or np.any(np.diff(t) <= 0):
        raise ValueError("times must increase and start at day 0")
    if clones is None or escape_layout(model) is None:
        return Trajectory(t, solve_reference(model, params, log_y0, t))
    if rng is None:
        raise ValueError("stochastic clone emergence needs a random generator")
    result = solve_with_emergence(model, params, log_y0, t, clones, rng)
    return Trajectory(t, result.log_states, result.escape_day, result.cells_day0)

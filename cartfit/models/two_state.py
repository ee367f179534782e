"""The tumour/CAR T pair shared by the two-state models (predator–prey, constant supply).

Both solve for the log states ``(u, v) = (ln B, ln C)`` (scaled units), observe them directly
and kill at the per-capita rate ``k C`` with the kill rate ``k`` right after the growth law's
parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cartfit.models.logsum import LogSumRatio

STATES = ("log_tumor", "log_car_t")
OBSERVABLES = {
    "tumor": LogSumRatio((0,)),
    "car_t": LogSumRatio((1,)),
}


def initial_state(tumor, car_t):
    """Log states from the scaled tumour burden and CAR T level at infusion."""
    return np.log(np.array([tumor, car_t], dtype=float))


def extras(growth, n_g: int) -> dict[str, Any]:
    """The ``ODEModel.extras`` of a two-state model whose kill rate is ``params[n_g]``."""

    def killing_rate(log_states, params):
        """Per-capita kill rate k C (1/day), vectorised over leading axes of ``log_states``."""
        return params[n_g] * np.exp(np.asarray(log_states)[..., 1])

    return {
        "growth_law": growth,
        "killing": killing_rate,
        "tumor_states": (0,),
        "car_t_states": (1,),
        "initial_state": initial_state,
    }

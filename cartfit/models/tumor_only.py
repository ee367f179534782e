r"""Untreated tumour growth as a one-state model (no CAR T).

.. math::

    \frac{dB}{dt} = g(B) = B\, G(\ln B), \qquad \frac{du}{dt} = G(u), \quad u = \ln B

with ``B`` the tumour burden (scaled: measured units / cohort reference burden) and ``G`` the
per-capita rate (1/day) of the composed growth law (exponential, logistic or Gompertz). It is
the limit of every treated model without CAR T, the model of pre-infusion tumour data, and the
system on which the reference solver is checked against the growth laws' closed forms.

Reference: Benzekry et al., PLoS Comput Biol 10:e1003800 (2014) (growth laws compared).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import GrowthLaw
from cartfit.models.base import ODEModel
from cartfit.models.logsum import LogSumRatio


def _no_killing(log_states: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Per-capita kill rate: zero (no CAR T)."""
    return np.zeros(np.shape(log_states)[:-1])


def make_tumor_only(growth: GrowthLaw) -> ODEModel:
    """Return the untreated tumour model for growth law ``growth``."""
    per_capita = growth.per_capita
    per_capita_jac = growth.per_capita_jac
    n_g = growth.n_params

    @numba.njit(error_model="numpy")
    def rhs(t, y, params):
        # du/dt = G(u)
        dy = np.empty(1)
        dy[0] = per_capita(y[0], params)
        return dy

    @numba.njit(error_model="numpy")
    def jac(t, y, params):
        jy = np.zeros((1, 1))
        jp = np.zeros((1, n_g))
        _, jy[0, 0] = per_capita_jac(y[0], params, jp, 0)
        return jy, jp

    return ODEModel(
        name="tumor_only",
        growth=growth.name,
        states=("log_tumor",),
        parameters=growth.parameters,
        rhs=rhs,
        jac=jac,
        observables={"tumor": LogSumRatio((0,))},
        equations=growth.equation,
        extras={
            "growth_law": growth,
            "killing": _no_killing,
            "tumor_states": (0,),
            "car_t_states": (),
        },
    )

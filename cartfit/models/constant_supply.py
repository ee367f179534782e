r"""Constant CAR T supply and the tumour-control number.

.. math::

    \frac{dT}{dt} = r T - \alpha C T, \qquad \frac{dC}{dt} = \kappa - \delta C

solved in log coordinates :math:`u = \ln T`, :math:`v = \ln C`:
:math:`\dot u = G(u) - \alpha e^{v}`, :math:`\dot v = \kappa e^{-v} - \delta`, with ``G = r`` for
exponential growth (the default; another law gives its small-burden rate ``r``).

``T`` tumour burden (scaled: × reference burden); ``C`` CAR T level (scaled: × reference
level); ``r`` tumour growth rate (1/day); ``α`` kill rate (1/(scaled CAR T · day)); ``κ`` CAR T
supply (scaled CAR T/day, e.g. a steady output of a memory pool); ``δ`` CAR T clearance (1/day).

``C`` relaxes to ``C* = κ/δ``, where the tumour's net per-capita rate is ``r − ακ/δ``. Hence
the tumour-control number and the CAR T level needed for control

.. math::

    R_\mathrm{ctrl} = \frac{r \delta}{\alpha \kappa} = \frac{C_\mathrm{ctrl}}{C^\ast}, \qquad
    C_\mathrm{ctrl} = \frac{r}{\alpha}

and the tumour is eventually cleared (``ln T → −∞`` at rate ``r(1/R_ctrl − 1)``) iff
``R_ctrl < 1``. The solution is closed-form:
:math:`C(t) = C^\ast + (C_0 - C^\ast) e^{-\delta t}`,
:math:`\ln T(t) = \ln T_0 + r t - \alpha [C^\ast t + (C_0 - C^\ast)(1 - e^{-\delta t})/\delta]`.

Reference: the seed document's control-number argument; cf. Kimmel et al., Front Immunol
12:634 (2021).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth import EXPONENTIAL
from cartfit.growth.base import GrowthLaw
from cartfit.models import two_state
from cartfit.models.base import ODEModel, Parameter

KILL_RATE = Parameter(
    "kill_rate", "α", "1/(scaled CAR T · day)", "CAR T killing rate per unit CAR T level", 0.5, 1.0
)
SUPPLY = Parameter("supply_rate", "κ", "scaled CAR T/day", "constant CAR T supply", 0.01, 1.5)
CLEARANCE = Parameter("clearance_rate", "δ", "1/day", "CAR T clearance", 0.1, 1.0)


def control_number(r: float, alpha: float, kappa: float, delta: float) -> float:
    """Tumour-control number ``R_ctrl = r δ / (α κ)``; control iff ``R_ctrl < 1``."""
    return r * delta / (alpha * kappa)


def control_level(r: float, k: float) -> float:
    """CAR T level ``C_ctrl = r / k`` at which killing balances growth (scaled CAR T)."""
    return r / k


def make_constant_supply(growth: GrowthLaw = EXPONENTIAL) -> ODEModel:
    """Return the constant-supply model (exponential tumour growth unless ``growth`` is given)."""
    per_capita = growth.per_capita
    per_capita_jac = growth.per_capita_jac
    n_g = growth.n_params

    @numba.njit(error_model="numpy")
    def rhs(t, y, params):
        # du/dt = G(u) - alpha e^v ;  dv/dt = kappa e^{-v} - delta
        alpha, kappa, delta = params[n_g], params[n_g + 1], params[n_g + 2]
        dy = np.empty(2)
        dy[0] = per_capita(y[0], params) - alpha * np.exp(y[1])
        dy[1] = kappa * np.exp(-y[1]) - delta
        return dy

    @numba.njit(error_model="numpy")
    def jac(t, y, params):
        alpha, kappa = params[n_g], params[n_g + 1]
        jy = np.zeros((2, 2))
        jp = np.zeros((2, n_g + 3))
        _, jy[0, 0] = per_capita_jac(y[0], params, jp, 0)
        jy[0, 1] = -alpha * np.exp(y[1])
        jy[1, 1] = -kappa * np.exp(-y[1])
        jp[0, n_g] = -np.exp(y[1])
        jp[1, n_g + 1] = np.exp(-y[1])
        jp[1, n_g + 2] = -1.0
        return jy, jp

    return ODEModel(
        name="constant_supply",
        growth=growth.name,
        states=two_state.STATES,
        parameters=(*growth.parameters, KILL_RATE, SUPPLY, CLEARANCE),
        rhs=rhs,
        jac=jac,
        observables=two_state.OBSERVABLES,
        equations=r"\frac{dT}{dt} = rT - \alpha C T,\quad \frac{dC}{dt} = \kappa - \delta C",
        extras=two_state.extras(growth, n_g),
    )

r"""The CAR T / tumour predator–prey model (the core engine).

.. math::

    \frac{dB}{dt} = g(B) - k B C, \qquad \frac{dC}{dt} = p B C - d C

solved in log coordinates :math:`u = \ln B`, :math:`v = \ln C`:

.. math::

    \frac{du}{dt} = G(u) - k e^{v}, \qquad \frac{dv}{dt} = p e^{u} - d

with

* ``B`` tumour burden (scaled: measured units / cohort reference burden),
* ``C`` CAR T level in blood (scaled: measured units / cohort reference level),
* ``g(B) = B G(ln B)`` the tumour growth law (exponential, logistic or Gompertz),
* ``k`` kill rate (1/(scaled CAR T · day)), ``p`` antigen-driven proliferation
  (1/(scaled tumour · day)), ``d`` CAR T death/contraction rate (1/day).

It reproduces expansion (``pB > d`` while tumour is high), tumour regression (``kC > G``) and
contraction once the tumour is gone (``dv/dt -> -d``). The CAR T level that holds the tumour
in check at small burden is ``C_ctrl = r/k``.

Reference: Kimmel et al., Front Immunol 12:634 (2021); Mostolizadeh et al., Cells 11:1051 (2022).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import GrowthLaw
from cartfit.models import two_state
from cartfit.models.base import ODEModel, Parameter, pure_kernels

KILL_RATE = Parameter(
    "kill_rate", "k", "1/(scaled CAR T · day)", "CAR T killing rate per unit CAR T level", 0.5, 1.0
)
PROLIFERATION_RATE = Parameter(
    "proliferation_rate",
    "p",
    "1/(scaled tumour · day)",
    "antigen-driven CAR T proliferation per unit tumour burden",
    0.5,
    1.0,
)
DEATH_RATE = Parameter("death_rate", "d", "1/day", "CAR T death / contraction rate", 0.1, 1.0)


def make_predator_prey(growth: GrowthLaw) -> ODEModel:
    """Compose the predator–prey model with a tumour growth law."""
    per_capita = growth.per_capita
    per_capita_jac = growth.per_capita_jac
    n_g = growth.n_params

    @numba.njit(error_model="numpy")
    def rhs_into(t, y, params, out):
        # du/dt = G(u) - k e^v ;  dv/dt = p e^u - d
        k, p, d = params[n_g], params[n_g + 1], params[n_g + 2]
        out[0] = per_capita(y[0], params) - k * np.exp(y[1])
        out[1] = p * np.exp(y[0]) - d

    @numba.njit(error_model="numpy")
    def rhs_jac_into(t, y, params, out, jy, jp):
        # the right-hand side and J_y = [[G'(u), -k e^v], [p e^u, 0]], J_p: growth block,
        # -e^v, e^u, -1, with e^u and e^v computed once
        k, p, d = params[n_g], params[n_g + 1], params[n_g + 2]
        eu, ev = np.exp(y[0]), np.exp(y[1])
        g, jy[0, 0] = per_capita_jac(y[0], params, jp, 0)
        out[0] = g - k * ev
        out[1] = p * eu - d
        jy[0, 1] = -k * ev
        jy[1, 0] = p * eu
        jp[0, n_g] = -ev
        jp[1, n_g + 1] = eu
        jp[1, n_g + 2] = -1.0

    rhs, jac = pure_kernels(rhs_into, rhs_jac_into, 2, n_g + 3)

    return ODEModel(
        name="predator_prey",
        growth=growth.name,
        states=two_state.STATES,
        parameters=(*growth.parameters, KILL_RATE, PROLIFERATION_RATE, DEATH_RATE),
        rhs=rhs,
        jac=jac,
        rhs_into=rhs_into,
        rhs_jac_into=rhs_jac_into,
        observables=two_state.OBSERVABLES,
        equations=(
            growth.equation.replace("B", "B", 1) + r" - k B C,\quad \frac{dC}{dt} = p B C - d C"
        ),
        extras=two_state.extras(growth, n_g),
    )

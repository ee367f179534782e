r"""Lymphodepletion and homeostatic cytokines (IL-7/IL-15) that feed CAR T memory.

.. math::

    \frac{d\,Cyt}{dt} = s - \delta\, Cyt - \gamma L(t)\, Cyt, \qquad
    Cyt^\ast = \frac{s}{\delta + \gamma L}, \qquad
    L(t) = L_0 \left(1 - D e^{-t/\tau}\right)

with ``Cyt`` the cytokine level (× its pre-treatment steady state), ``s`` production
(× baseline / day), ``δ`` clearance (1/day), ``γ`` consumption by lymphocytes
(1/(lymphocyte unit · day)), ``L`` lymphocyte count (× normal count, ``L_0`` before
treatment), ``D ∈ [0, 1]`` lymphodepletion depth at infusion (t = 0) and ``τ`` the lymphocyte
recovery time (days). Fewer lymphocytes consume less: ``Cyt*`` rises when ``L`` falls.

Homeostatic proliferation of CAR T (memory) cells is

.. math::

    h(Cyt) = \alpha_h \frac{Cyt}{K_C + Cyt}

with ``α_h`` the maximal rate (1/day) and ``K_C`` the half-saturating level (× baseline).

IL-7 and IL-15 are cleared within hours while lymphocytes recover over weeks, so the cytokine
sits at its quasi-steady state; relative to the baseline ``s/(δ + γ L_0)`` that is

.. math::

    c(t) = \frac{Cyt^\ast(L(t))}{Cyt^\ast(L_0)}
         = \frac{1 + \rho}{1 + \rho \left(1 - D e^{-t/\tau}\right)}, \qquad
    \rho = \frac{\gamma L_0}{\delta}

(:func:`relative_cytokine`), the known function of time the multi-fate model uses instead of
a stiff fast state. ``t`` is clamped at 0 (lymphodepletion precedes infusion).

References: Kochenderfer et al., J Clin Oncol 35:1803 (2017) (serum IL-15 rises after
cyclophosphamide/fludarabine and predicts response); Gattinoni et al., J Exp Med 202:907 (2005)
(lymphodepletion frees homeostatic cytokines for transferred T cells).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike

from cartfit.models.base import ODEModel, Parameter
from cartfit.models.logsum import LogSumRatio

PRODUCTION = Parameter(
    "cytokine_production", "s", "× baseline/day", "cytokine production", 8.0, 1.0
)
CLEARANCE = Parameter(
    "cytokine_clearance", "δ", "1/day", "cytokine clearance (half-life of hours)", 2.0, 1.0
)
CONSUMPTION = Parameter(
    "cytokine_consumption",
    "γ",
    "1/(× normal lymphocytes · day)",
    "cytokine consumption by lymphocytes",
    6.0,
    1.0,
)
LYMPHOCYTES = Parameter(
    "baseline_lymphocytes", "L_0", "× normal count", "lymphocyte count before treatment", 1.0, 0.5
)
DEPTH = Parameter(
    "lymphodepletion",
    "D",
    "fraction",
    "lymphodepletion depth at infusion, in [0, 1] (a subject covariate)",
    0.9,
    0.1,
)
RECOVERY = Parameter(
    "lymphocyte_recovery_time", "τ", "day", "time constant of lymphocyte recovery", 14.0, 0.5
)


def cytokine_steady_state(
    production: float, clearance: float, consumption: float, lymphocytes: float
) -> float:
    """Steady state ``s / (δ + γ L)`` of the cytokine equation."""
    return production / (clearance + consumption * lymphocytes)


def homeostatic_rate(cytokine: ArrayLike, max_rate: float, half_saturation: float) -> ArrayLike:
    """Homeostatic proliferation rate ``α_h Cyt / (K_C + Cyt)`` (1/day), elementwise."""
    return max_rate * cytokine / (half_saturation + cytokine)


@numba.njit(cache=True, error_model="numpy")
def relative_cytokine(
    t: float, depth: float, ratio: float, recovery_time: float, out: np.ndarray
) -> float:
    """Quasi-steady ``c(t)`` (× baseline); writes ``dc/d(depth, ratio, recovery_time)`` to ``out``.

    ``depth`` is the lymphodepletion depth ``D``, ``ratio`` is ``ρ = γL_0/δ`` and
    ``recovery_time`` is ``τ`` (days); ``out`` needs 3 entries.
    """
    inside = 0.0 <= depth <= 1.0
    depth = min(max(depth, 0.0), 1.0)  # a depth outside [0, 1] acts as its nearest bound
    s = max(t, 0.0)
    decay = np.exp(-s / recovery_time)
    remaining = 1.0 - depth * decay  # L(t) / L_0
    denom = 1.0 + ratio * remaining
    c = (1.0 + ratio) / denom
    dc_dremaining = -(1.0 + ratio) * ratio / denom**2
    out[0] = -decay * dc_dremaining if inside else 0.0
    out[1] = (1.0 - remaining) / denom**2
    out[2] = -depth * decay * s / recovery_time**2 * dc_dremaining
    return c


def make_cytokine() -> ODEModel:
    """The cytokine equation in log coordinates, ``d ln Cyt/dt = s e^{-y} - δ - γ L(t)``."""

    @numba.njit(error_model="numpy")
    def rhs(t, y, params):
        s, delta, gamma, l0 = params[0], params[1], params[2], params[3]
        depth, tau = min(max(params[4], 0.0), 1.0), params[5]
        lymph = l0 * (1.0 - depth * np.exp(-max(t, 0.0) / tau))  # L(t)
        dy = np.empty(1)
        dy[0] = s * np.exp(-y[0]) - delta - gamma * lymph
        return dy

    @numba.njit(error_model="numpy")
    def jac(t, y, params):
        s, gamma, l0 = params[0], params[2], params[3]
        inside = 0.0 <= params[4] <= 1.0
        depth, tau = min(max(params[4], 0.0), 1.0), params[5]
        s_t = max(t, 0.0)
        decay = np.exp(-s_t / tau)
        jy = np.zeros((1, 1))
        jp = np.zeros((1, 6))
        jy[0, 0] = -s * np.exp(-y[0])
        jp[0, 0] = np.exp(-y[0])
        jp[0, 1] = -1.0
        jp[0, 2] = -l0 * (1.0 - depth * decay)
        jp[0, 3] = -gamma * (1.0 - depth * decay)
        jp[0, 4] = gamma * l0 * decay if inside else 0.0
        jp[0, 5] = gamma * l0 * depth * decay * s_t / tau**2
        return jy, jp

    return ODEModel(
        name="cytokine",
        growth=None,
        states=("log_cytokine",),
        parameters=(PRODUCTION, CLEARANCE, CONSUMPTION, LYMPHOCYTES, DEPTH, RECOVERY),
        rhs=rhs,
        jac=jac,
        observables={"cytokine": LogSumRatio((0,))},
        equations=r"\frac{dCyt}{dt} = s - \delta Cyt - \gamma L(t) Cyt",
        extras={
            "growth_law": None,
            "killing": lambda log_states, params: np.zeros(np.shape(log_states)[:-1]),
            "tumor_states": (),
            "car_t_states": (),
            "covariates": {"lymphodepletion": "lymphodepletion"},
        },
    )

r"""Antigen escape: antigen-positive and antigen-negative tumour under CAR T pressure.

.. math::

    \frac{dT_A}{dt} &= G(\ln T)\, T_A - k C T_A - \mu T_A \\
    \frac{dT_-}{dt} &= \mu T_A + G(\ln T)\, T_- - \kappa_\mathrm{off} C T_- \\
    \frac{dC}{dt}   &= p T_A C - d C, \qquad T = T_A + T_-

solved in log coordinates :math:`a = \ln T_A`, :math:`n = \ln T_-`, :math:`v = \ln C`:

.. math::

    \dot a = G(w) - k e^{v} - \mu, \quad
    \dot n = \mu e^{a - n} + G(w) - \kappa_\mathrm{off} e^{v}, \quad
    \dot v = p e^{a} - d, \quad w = \ln(e^a + e^n)

with

* ``T_A``, ``T_-`` antigen-positive and antigen-negative tumour (scaled: units of the cohort's
  reference tumour burden); ``C`` CAR T level in blood (scaled: units of the reference level);
* ``G`` the per-capita rate (1/day) of the growth law, evaluated at the *total* burden so that
  crowding (logistic, Gompertz) acts on ``T_A + T_-``; both clones share it (the growth rate
  of the antigen-negative clone, ``r_A-`` of the seed, equals ``r``: a separate rate is not
  identifiable from total and antigen-negative burden alone);
* ``k`` CAR T killing of ``T_A`` (1/(scaled CAR T · day)); ``κ_off`` antigen-independent
  (bystander) killing of ``T_-`` (1/(scaled CAR T · day));
* ``μ`` antigen loss rate (1/day): the per-cell rate of switching to antigen-negative;
* ``p`` proliferation driven by antigen-positive tumour only (1/(scaled tumour · day));
  ``d`` CAR T death/contraction rate (1/day).

``T_-`` must start positive (log states). Antigen-negative clones are born a few cells at a
time, so this deterministic model describes their mean; the relapse analysis treats their
emergence as a Poisson process of rate ``μ T_A(t)``.

References: Hamieh et al., Nature 568:112 (2019) (antigen loss under CAR T);
Orlando et al., Nat Med 24:1504 (2018) (CD19-negative relapse); Kimmel et al., Front Immunol
12:634 (2021) (predator–prey core).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import GrowthLaw
from cartfit.models.base import ODEModel, Parameter
from cartfit.models.logsum import LogSumRatio
from cartfit.models.predator_prey import DEATH_RATE, KILL_RATE, PROLIFERATION_RATE

OFF_TARGET_KILL_RATE = Parameter(
    "off_target_kill_rate",
    "κ_off",
    "1/(scaled CAR T · day)",
    "antigen-independent (bystander) killing of antigen-negative tumour",
    0.02,
    1.5,
)
ANTIGEN_LOSS_RATE = Parameter(
    "antigen_loss_rate",
    "μ",
    "1/day",
    "per-cell rate at which antigen-positive tumour cells become antigen-negative",
    1e-9,
    2.5,
)
"""Prior: ~1e11 leukaemic cells then make ~100 antigen-negative cells a day, few of whose
lineages establish; with 41 % of 166 relapses after CD19 CAR T being CD19-negative (Blood Adv
7:575, 2023) only a minority of patients may carry an established clone, so the median is
well below gene mutation rates (~1e-6); ±2.5 log-SD spans 1e-11 to 1e-7."""


def make_escape(growth: GrowthLaw) -> ODEModel:
    """Compose the antigen-escape model with a tumour growth law."""
    per_capita = growth.per_capita
    per_capita_jac = growth.per_capita_jac
    n_g = growth.n_params

    @numba.njit(error_model="numpy")
    def rhs(t, y, params):
        k, k_off, p = params[n_g], params[n_g + 1], params[n_g + 2]
        d, mu = params[n_g + 3], params[n_g + 4]
        a, n, v = y[0], y[1], y[2]
        w = max(a, n) + np.log1p(np.exp(-abs(a - n)))  # ln(T_A + T_-)
        g = per_capita(w, params)
        ev = np.exp(v)
        dy = np.empty(3)
        dy[0] = g - k * ev - mu
        dy[1] = mu * np.exp(a - n) + g - k_off * ev
        dy[2] = p * np.exp(a) - d
        return dy

    @numba.njit(error_model="numpy")
    def jac(t, y, params):
        k, k_off, p, mu = params[n_g], params[n_g + 1], params[n_g + 2], params[n_g + 4]
        a, n, v = y[0], y[1], y[2]
        w = max(a, n) + np.log1p(np.exp(-abs(a - n)))
        frac_a, frac_n = np.exp(a - w), np.exp(n - w)  # dw/da, dw/dn
        jy = np.zeros((3, 3))
        jp = np.zeros((3, n_g + 5))
        _, dg_dw = per_capita_jac(w, params, jp, 0)
        for j in range(n_g):  # both clones share G
            jp[1, j] = jp[0, j]
        ev, ratio = np.exp(v), np.exp(a - n)
        jy[0, 0] = dg_dw * frac_a
        jy[0, 1] = dg_dw * frac_n
        jy[0, 2] = -k * ev
        jy[1, 0] = mu * ratio + dg_dw * frac_a
        jy[1, 1] = -mu * ratio + dg_dw * frac_n
        jy[1, 2] = -k_off * ev
        jy[2, 0] = p * np.exp(a)
        jp[0, n_g] = -ev
        jp[0, n_g + 4] = -1.0
        jp[1, n_g + 1] = -ev
        jp[1, n_g + 4] = ratio
        jp[2, n_g + 2] = np.exp(a)
        jp[2, n_g + 3] = -1.0
        return jy, jp

    def killing_rate(log_states, params):
        """Per-capita CAR T kill rate of antigen-positive tumour, k C (1/day)."""
        return params[n_g] * np.exp(np.asarray(log_states)[..., 2])

    def initial_state(tumor, car_t, antigen_neg_fraction=1e-6):
        """Log states from scaled total tumour, CAR T level and antigen-negative fraction."""
        f = float(antigen_neg_fraction)
        return np.log(np.array([tumor * (1.0 - f), tumor * f, car_t], dtype=float))

    return ODEModel(
        name="escape",
        growth=growth.name,
        states=("log_tumor_antigen_pos", "log_tumor_antigen_neg", "log_car_t"),
        parameters=(
            *growth.parameters,
            KILL_RATE,
            OFF_TARGET_KILL_RATE,
            PROLIFERATION_RATE,
            DEATH_RATE,
            ANTIGEN_LOSS_RATE,
        ),
        rhs=rhs,
        jac=jac,
        observables={
            "tumor": LogSumRatio((0, 1)),
            "tumor_antigen_neg": LogSumRatio((1,)),
            "car_t": LogSumRatio((2,)),
        },
        equations=(
            r"\frac{dT_A}{dt} = G(T) T_A - k C T_A - \mu T_A,\quad "
            r"\frac{dT_-}{dt} = \mu T_A + G(T) T_- - \kappa_{off} C T_-,\quad "
            r"\frac{dC}{dt} = p T_A C - d C"
        ),
        extras={
            "growth_law": growth,
            "killing": killing_rate,
            "tumor_states": (0, 1),
            "car_t_states": (2,),
            "initial_state": initial_state,
            "escape": {
                "positive_state": 0,
                "negative_state": 1,
                "mutation_parameter": "antigen_loss_rate",
            },
        },
    )

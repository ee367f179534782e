r"""Logistic tumour growth.

.. math::

    \frac{dB}{dt} = r B \left(1 - \frac{B}{K}\right), \qquad
    B(t) = \frac{K}{1 + (K/B_0 - 1)\, e^{-r t}}

with ``r`` the growth rate (1/day) and ``K`` the carrying capacity (scaled burden units).
The inflection point of ``B(t)`` lies at ``B = K/2``.

Reference: Verhulst (1838); Murray, *Mathematical Biology I* (2002), section 1.1.
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import CARRYING_CAPACITY, GROWTH_RATE, GrowthLaw


@numba.njit(cache=True, error_model="numpy")
def per_capita(u: float, params: np.ndarray) -> float:
    """G(u) = r (1 - e^u / K)."""
    return params[0] * (1.0 - np.exp(u) / params[1])


@numba.njit(cache=True, error_model="numpy")
def per_capita_jac(u: float, params: np.ndarray, jp: np.ndarray, row: int) -> float:
    """dG/dr = 1 - B/K, dG/dK = r B / K^2 into ``jp[row]``; returns (G, dG/du) =
    (r (1 - B/K), -r B / K)."""
    b_over_k = np.exp(u) / params[1]
    jp[row, 0] = 1.0 - b_over_k
    jp[row, 1] = params[0] * b_over_k / params[1]
    return params[0] * (1.0 - b_over_k), -params[0] * b_over_k


#: below this the argument ``a`` of ln a in :func:`log_solution` is continued linearly: exact
#: up to B = 100 K, far beyond any burden a fit can put at a visit, and a wall gentle enough
#: (slope 100) that the sampler is turned back without energy errors of 10^20 (at 1e-8, on
#: data/example, all 238 divergences of a logistic population fit came from that wall)
LOG_ARGUMENT_FLOOR = 1e-2


def log_solution(t, log_b0, params, xp=np):
    r"""ln B(t) = ln K - ln a, a = 1 + (K/B0 - 1) e^{-r t}.

    From B0 > K the solution runs backwards to B = ∞ at :math:`t^* = \ln(1 - K/B_0)/r < 0`, and
    before it :math:`a \le 0`: no finite tumour at those times. There ln a is continued as
    :math:`\ln\epsilon + (a - \epsilon)/\epsilon` (:math:`\epsilon` = ``LOG_ARGUMENT_FLOOR``,
    value and slope continuous at :math:`a = \epsilon`), an enormous predicted burden with a
    finite gradient that leads the sampler back, where ln a would give NaN.
    """
    growth_rate, capacity = params
    log_k = xp.log(capacity)
    a = 1.0 + xp.expm1(log_k - log_b0) * xp.exp(-growth_rate * t)
    eps = LOG_ARGUMENT_FLOOR
    safe = xp.where(a > eps, a, 1.0)
    log_a = xp.where(a > eps, xp.log(safe), np.log(eps) + (a - eps) / eps)
    return log_k - log_a


@numba.njit(cache=True, error_model="numpy")
def log_solution_grad(t: float, log_b0: float, params: np.ndarray, d_log_p: np.ndarray) -> tuple:
    r""":func:`log_solution` at one time with its derivatives: returns (ln B, d/d ln B0) and
    writes d/d ln r and d/d ln K into ``d_log_p``. With :math:`q = e^{\ln K - \ln B_0} - 1`,
    :math:`e = e^{-rt}`, :math:`a = 1 + q e` and :math:`\ell = d \ln a / da` (``1/a``, or
    ``1/eps`` on the continuation): d/d ln B0 = ℓ (q + 1) e, d/d ln r = ℓ q e r t,
    d/d ln K = 1 - ℓ (q + 1) e."""
    log_k = np.log(params[1])
    q = np.expm1(log_k - log_b0)
    decay = np.exp(-params[0] * t)
    a = 1.0 + q * decay
    eps = LOG_ARGUMENT_FLOOR
    if a > eps:
        log_a, slope = np.log(a), 1.0 / a
    else:
        log_a, slope = np.log(eps) + (a - eps) / eps, 1.0 / eps
    d_log_p[0] = slope * q * decay * params[0] * t
    d_log_p[1] = 1.0 - slope * (q + 1.0) * decay
    return log_k - log_a, slope * (q + 1.0) * decay


LOGISTIC = GrowthLaw(
    name="logistic",
    parameters=(GROWTH_RATE, CARRYING_CAPACITY),
    per_capita=per_capita,
    per_capita_jac=per_capita_jac,
    log_solution=log_solution,
    log_solution_grad=log_solution_grad,
    equation=r"\frac{dB}{dt} = r B \left(1 - \frac{B}{K}\right)",
    inflection=lambda growth_rate, carrying_capacity: carrying_capacity / 2.0,
)

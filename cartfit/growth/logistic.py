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
def per_capita_jac(u: float, params: np.ndarray, out: np.ndarray) -> float:
    """dG/dr = 1 - B/K, dG/dK = r B / K^2; returns dG/du = -r B / K."""
    b_over_k = np.exp(u) / params[1]
    out[0] = 1.0 - b_over_k
    out[1] = params[0] * b_over_k / params[1]
    return -params[0] * b_over_k


def log_solution(t, log_b0, params, xp=np):
    """ln B(t) = ln K - ln(1 + (K/B0 - 1) e^{-r t})."""
    growth_rate, capacity = params
    log_k = xp.log(capacity)
    return log_k - xp.log1p(xp.expm1(log_k - log_b0) * xp.exp(-growth_rate * t))


LOGISTIC = GrowthLaw(
    name="logistic",
    parameters=(GROWTH_RATE, CARRYING_CAPACITY),
    per_capita=per_capita,
    per_capita_jac=per_capita_jac,
    log_solution=log_solution,
    equation=r"\frac{dB}{dt} = r B \left(1 - \frac{B}{K}\right)",
    inflection=lambda growth_rate, carrying_capacity: carrying_capacity / 2.0,
)

r"""Gompertz tumour growth.

.. math::

    \frac{dB}{dt} = r B \ln\frac{K}{B}, \qquad
    \ln B(t) = \ln K + (\ln B_0 - \ln K)\, e^{-r t}

with ``r`` the growth rate (1/day) and ``K`` the plateau (scaled burden units). The inflection
point of ``B(t)`` lies at ``B = K/e``.

Reference: Gompertz (1825); Laird, Br J Cancer 18:490 (1964).
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import CARRYING_CAPACITY, GROWTH_RATE, GrowthLaw


@numba.njit(cache=True, error_model="numpy")
def per_capita(u: float, params: np.ndarray) -> float:
    """G(u) = r (ln K - u)."""
    return params[0] * (np.log(params[1]) - u)


@numba.njit(cache=True, error_model="numpy")
def per_capita_jac(u: float, params: np.ndarray, jp: np.ndarray, row: int) -> float:
    """dG/dr = ln K - u, dG/dK = r / K into ``jp[row]``; returns (G, dG/du) = (r (ln K - u), -r)."""
    gap = np.log(params[1]) - u
    jp[row, 0] = gap
    jp[row, 1] = params[0] / params[1]
    return params[0] * gap, -params[0]


@numba.njit(cache=True, error_model="numpy")
def log_solution_grad(t: float, log_b0: float, params: np.ndarray, d_log_p: np.ndarray) -> tuple:
    """:func:`log_solution` at one time with its derivatives: returns (ln B, d/d ln B0) and
    writes d/d ln r = -r t (ln B0 - ln K) e^{-rt}, d/d ln K = 1 - e^{-rt} into ``d_log_p``."""
    log_k = np.log(params[1])
    decay = np.exp(-params[0] * t)
    d_log_p[0] = -params[0] * t * (log_b0 - log_k) * decay
    d_log_p[1] = 1.0 - decay
    return log_k + (log_b0 - log_k) * decay, decay


def log_solution(t, log_b0, params, xp=np):
    """ln B(t) = ln K + (ln B0 - ln K) e^{-r t}."""
    growth_rate, capacity = params
    log_k = xp.log(capacity)
    return log_k + (log_b0 - log_k) * xp.exp(-growth_rate * t)


GOMPERTZ = GrowthLaw(
    name="gompertz",
    parameters=(GROWTH_RATE, CARRYING_CAPACITY),
    per_capita=per_capita,
    per_capita_jac=per_capita_jac,
    log_solution=log_solution,
    log_solution_grad=log_solution_grad,
    equation=r"\frac{dB}{dt} = r B \ln\frac{K}{B}",
    inflection=lambda growth_rate, carrying_capacity: carrying_capacity / np.e,
)

r"""Exponential tumour growth.

.. math::

    \frac{dB}{dt} = r B, \qquad \ln B(t) = \ln B_0 + r t

with ``B`` the tumour burden (measurement units) and ``r`` the growth rate (1/day).
``ln B`` is exactly linear in ``t``: the model-free diagnostic for this law.
"""

from __future__ import annotations

import numba
import numpy as np

from cartfit.growth.base import GROWTH_RATE, GrowthLaw


@numba.njit(cache=True, error_model="numpy")
def per_capita(u: float, params: np.ndarray) -> float:
    """G(u) = r."""
    return params[0]


@numba.njit(cache=True, error_model="numpy")
def per_capita_jac(u: float, params: np.ndarray, jp: np.ndarray, row: int) -> float:
    """dG/dr = 1 into ``jp[row]``; returns (G, dG/du) = (r, 0)."""
    jp[row, 0] = 1.0
    return params[0], 0.0


@numba.njit(cache=True, error_model="numpy")
def log_solution_grad(t: float, log_b0: float, params: np.ndarray, d_log_p: np.ndarray) -> tuple:
    """:func:`log_solution` at one time with its derivatives: returns (ln B, d/d ln B0) and
    writes d/d ln r into ``d_log_p[0]``."""
    d_log_p[0] = params[0] * t
    return log_b0 + params[0] * t, 1.0


def log_solution(t, log_b0, params, xp=np):
    """ln B(t) = ln B0 + r t."""
    (growth_rate,) = params
    return log_b0 + growth_rate * t


EXPONENTIAL = GrowthLaw(
    name="exponential",
    parameters=(GROWTH_RATE,),
    per_capita=per_capita,
    per_capita_jac=per_capita_jac,
    log_solution=log_solution,
    log_solution_grad=log_solution_grad,
    equation=r"\frac{dB}{dt} = r B",
    inflection=None,
)

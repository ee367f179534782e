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
def per_capita_jac(u: float, params: np.ndarray, out: np.ndarray) -> float:
    """dG/dr = 1; returns dG/du = 0."""
    out[0] = 1.0
    return 0.0


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
    equation=r"\frac{dB}{dt} = r B",
    inflection=None,
)

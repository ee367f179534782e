r"""Untreated tumour growth before infusion, from the growth law's closed form.

Before infusion (:math:`t < 0`) the total tumour grows untreated; its log burden is the growth
law's closed form run backwards from the burden at infusion,

.. math::

    \ln B(t) = \ell(t;\, \ln B(0), r, K), \qquad t \le 0,

e.g. Gompertz :math:`\ln B(t) = \ln K + (\ln B(0) - \ln K)\, e^{-rt}` (scaled units).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cartfit.models.base import ODEModel


def pre_infusion_log_tumor(
    model: ODEModel, params: Mapping[str, float], log_tumor0: float, times: ArrayLike
) -> NDArray[np.float64]:
    """Untreated total tumour (log, scaled units) at ``times <= 0`` from its value at infusion."""
    t = np.asarray(times, float)
    if np.any(t > 0):
        raise ValueError("pre-infusion times must be <= 0")
    growth = model.extras["growth_law"]
    growth_params = [params[name] for name in growth.parameter_names]
    return np.asarray(growth.log_solution(t, log_tumor0, growth_params, np), float)

r"""Numerically stable sums of log quantities, written once for ``numpy`` and ``pytensor.tensor``.

Observables such as total tumour ``ln(T_A + T_-)`` or blood CAR T ``ln(E + M + X)`` are sums of
states held as logarithms. ``log_sum_exp`` computes

.. math::

    \ln \sum_i e^{a_i} = m + \ln \sum_i e^{a_i - m}, \qquad m = \max_i a_i

so that no exponential overflows or underflows to zero, with only ``maximum``, ``exp`` and
``log`` so the same expression builds a PyTensor graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def log_sum_exp(*terms: Any, xp: Any = np) -> Any:
    """Return ``ln(exp(terms[0]) + exp(terms[1]) + ...)`` elementwise, without overflow."""
    if not terms:
        raise ValueError("log_sum_exp needs at least one term")
    m = terms[0]
    for a in terms[1:]:
        m = xp.maximum(m, a)
    total = xp.exp(terms[0] - m)
    for a in terms[1:]:
        total = total + xp.exp(a - m)
    return m + xp.log(total)

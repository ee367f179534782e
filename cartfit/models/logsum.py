r"""Numerically stable sums of log quantities, written once for ``numpy`` and ``pytensor.tensor``.

Observables such as total tumour ``ln(T_A + T_-)`` or blood CAR T ``ln(E + M + X)`` are sums of
states held as logarithms. ``log_sum_exp`` computes

.. math::

    \ln \sum_i e^{a_i} = m + \ln \sum_i e^{a_i - m}, \qquad m = \max_i a_i

so that no exponential overflows or underflows to zero, with only ``maximum``, ``exp`` and
``log`` so the same expression builds a PyTensor graph.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class LogSumRatio:
    r"""An observable of log states: :math:`h(x) = \ln\sum_{i \in N} e^{x_i} - \ln\sum_{i \in D}
    e^{x_i}` (``den`` empty: no denominator).

    One state (``LogSumRatio((1,))``) is a measured state, several a measured total (blood
    CAR T ``ln(E + M + X)``), a ratio a measured fraction (``ln M/(E + M + X)``). Called as
    ``h(log_states, xp)`` on the last axis with ``numpy`` or ``pytensor.tensor``; the index
    sets also let the compiled likelihood evaluate it and its gradient
    :math:`\partial h/\partial x_i = w^N_i - w^D_i` (softmax weights over each set).
    """

    num: tuple[int, ...]
    den: tuple[int, ...] = ()

    def __call__(self, log_states: Any, xp: Any = np) -> Any:
        out = log_sum_exp(*(log_states[..., i] for i in self.num), xp=xp)
        if self.den:
            out = out - log_sum_exp(*(log_states[..., i] for i in self.den), xp=xp)
        return out

    def weights(self, n_states: int) -> np.ndarray:
        """``(2, n_states)`` 0/1 membership of each state in the numerator and denominator."""
        w = np.zeros((2, n_states))
        w[0, list(self.num)] = 1.0
        w[1, list(self.den)] = 1.0
        return w

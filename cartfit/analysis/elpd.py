r"""Pointwise expected log predictive densities: totals, exact replacements and comparison.

A cross-validation estimate is a vector of pointwise values :math:`\widehat{\mathrm{elpd}}_i`
(one per observation for leave-one-out, one per subject for k-fold over subjects), with

.. math::

    \widehat{\mathrm{elpd}} = \sum_{i=1}^{n} \widehat{\mathrm{elpd}}_i, \qquad
    \mathrm{se} = \sqrt{n\, \mathrm{var}_i(\widehat{\mathrm{elpd}}_i)}, \qquad
    p = \sum_{i=1}^{n} \big(\mathrm{lppd}_i - \widehat{\mathrm{elpd}}_i\big),

where :math:`\mathrm{lppd}_i = \log \frac1S \sum_s p(y_i \mid \theta^{(s)})` is the in-sample log
predictive density under the full-data posterior (all on the natural-log density scale of the
measurements; var with ``ddof=1``). Between fits *a* and the best fit *b* on the same points,

.. math::

    \Delta = \sum_i (\widehat{\mathrm{elpd}}_{a,i} - \widehat{\mathrm{elpd}}_{b,i}), \qquad
    \mathrm{dse} = \sqrt{n\, \mathrm{var}_i(\widehat{\mathrm{elpd}}_{a,i}
    - \widehat{\mathrm{elpd}}_{b,i})},

and the stacking weights maximise :math:`\sum_i \log \sum_k w_k \exp(\widehat{\mathrm{elpd}}_{k,i})`
over the simplex.

References: Vehtari, Gelman & Gabry (2017) Stat. Comput. 27:1413–1432 (eqs. 22–24); Yao,
Vehtari, Simpson & Gelman (2018) Bayesian Anal. 13:917–1007.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special


@dataclass(frozen=True)
class Pointwise:
    """Pointwise cross-validated values of one fit.

    Attributes
    ----------
    elpd_i
        :math:`\\widehat{\\mathrm{elpd}}_i` per point (nats).
    lppd_i
        In-sample :math:`\\mathrm{lppd}_i` per point (nats), same length.
    """

    elpd_i: np.ndarray
    lppd_i: np.ndarray

    @property
    def n(self) -> int:
        """Number of points."""
        return len(self.elpd_i)

    @property
    def elpd(self) -> float:
        """:math:`\\sum_i \\widehat{\\mathrm{elpd}}_i`."""
        return float(np.sum(self.elpd_i))

    @property
    def se(self) -> float:
        """:math:`\\sqrt{n\\,\\mathrm{var}(\\widehat{\\mathrm{elpd}}_i)}` (0 for one point)."""
        return float(np.sqrt(self.n * np.var(self.elpd_i, ddof=1))) if self.n > 1 else 0.0

    @property
    def p(self) -> float:
        """Effective number of parameters :math:`\\sum_i (\\mathrm{lppd}_i - \\mathrm{elpd}_i)`."""
        return float(np.sum(self.lppd_i - self.elpd_i))


def lppd_pointwise(log_lik: np.ndarray) -> np.ndarray:
    """:math:`\\log \\frac1S \\sum_s \\exp \\ell_{s,i}` of a (draws, points) log-likelihood."""
    log_lik = np.asarray(log_lik, dtype=float)
    return special.logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])


def with_exact(loo: Pointwise, exact: Mapping[int, float]) -> Pointwise:
    """Replace the PSIS values of some points by exact leave-one-out values.

    Parameters
    ----------
    loo
        PSIS-LOO pointwise values and the full-data ``lppd_i``.
    exact
        Point index -> :math:`\\log p(y_i \\mid y_{-i})` from a refit without point ``i``.
    """
    elpd_i = np.array(loo.elpd_i, dtype=float, copy=True)
    for i, value in exact.items():
        elpd_i[int(i)] = float(value)
    return Pointwise(elpd_i, np.asarray(loo.lppd_i, dtype=float))


def stacking_weights(elpd_matrix: np.ndarray) -> np.ndarray:
    """Stacking weights of the columns (fits) of an (n points, n fits) elpd matrix.

    Each row is shifted by its maximum before exponentiating, which leaves the optimum
    unchanged and keeps subject-level values (tens of nats) from underflowing.
    """
    m = np.asarray(elpd_matrix, dtype=float)
    k = m.shape[1]
    if k == 1:
        return np.ones(1)
    dens = np.exp(m - m.max(axis=1, keepdims=True))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        mix = np.maximum(dens @ w, 1e-300)
        return -float(np.sum(np.log(mix))), -(dens / mix[:, None]).sum(axis=0)

    res = optimize.minimize(
        loss,
        np.full(k, 1.0 / k),
        jac=True,
        bounds=optimize.Bounds(np.zeros(k), np.ones(k)),
        constraints=optimize.LinearConstraint(np.ones(k), 1.0, 1.0),
        tol=1e-10,
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def compare_pointwise(fits: Mapping[str, Pointwise]) -> pd.DataFrame:
    """Rank fits on the same points, best first.

    Returns a table indexed by name with ``elpd``, ``se``, ``p``, ``elpd_diff`` (to the best,
    <= 0), ``dse`` (from the paired pointwise differences) and ``weight`` (stacking).
    """
    names = list(fits)
    sizes = {fits[n].n for n in names}
    if len(sizes) != 1:
        raise ValueError(f"fits have different numbers of points: {sorted(sizes)}")
    elpd = np.array([fits[n].elpd for n in names])
    order = np.argsort(-elpd, kind="stable")
    best = fits[names[order[0]]]
    weights = stacking_weights(np.column_stack([fits[n].elpd_i for n in names]))
    rows = []
    for j in order:
        f = fits[names[j]]
        diff = f.elpd_i - best.elpd_i
        dse = float(np.sqrt(f.n * np.var(diff, ddof=1))) if f.n > 1 else 0.0
        rows.append(
            {
                "name": names[j],
                "elpd": f.elpd,
                "se": f.se,
                "p": f.p,
                "elpd_diff": float(diff.sum()),
                "dse": dse,
                "weight": float(weights[j]),
            }
        )
    return pd.DataFrame(rows).set_index("name")

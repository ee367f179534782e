r"""Exact stochastic simulation of tumour lineages under CAR T killing (two-type branching).

Two independent populations are simulated on a time grid whose per-capita rates are constant
on each interval ``[t_i, t_{i+1})``:

* antigen-positive cells :math:`Z_A`: ``pos_founders`` cells at day 0, birth :math:`\lambda_A`,
  death :math:`\mu_A(t)` (intrinsic death plus CAR T killing);
* antigen-negative cells :math:`Z_N`: ``neg_founders`` cells at day 0, birth :math:`b`, death
  :math:`\delta(t) = \delta_0 + \kappa_{off} C(t)`, and new lineages arriving as a Poisson
  process of rate :math:`\nu(t) = \mu\,T_A(t)` (antigen loss of antigen-positive cells).

The simulation is exact for piecewise-constant rates, with no time-step error: over an
interval of length :math:`\Delta` each of :math:`n` cells leaves a lineage that survives with
probability :math:`S_\Delta` and, if it survives, has a geometric size with mean
:math:`e^{(\lambda-\mu)\Delta}/S_\Delta` (Kendall 1948), so

.. math::

    K \sim \mathrm{Binomial}(n, S_\Delta), \qquad
    Z(t_{i+1}) = K + \mathrm{NegBin}(K, S_\Delta e^{-(\lambda-\mu)\Delta}).

Arrivals within an interval that survive to its end are a Poisson number with mean
:math:`\nu \int_0^\Delta S_u\,du`; each has age :math:`u` drawn from the density
:math:`\propto S_u` (closed-form inverse) and a geometric size given that age. Large and small
numbers are handled by the same exact draws, so a population of :math:`10^{10}` cells and a
single surviving cell are both simulated exactly; only when more than
:data:`MANY_ARRIVALS` arriving lineages survive an interval in one replicate is their summed
size drawn from the normal law with its exact mean and variance.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _ratio(a: NDArray, dt: NDArray | float) -> NDArray:
    """:math:`(e^{a\\,dt} - 1)/a`, continuous at ``a = 0``."""
    a = np.asarray(a, float)
    small = np.abs(a * dt) < 1e-9
    return np.where(small, dt, np.expm1(a * dt) / np.where(small, 1.0, a))


def _survival(birth: NDArray, death: NDArray, age: NDArray) -> NDArray:
    """Kendall survival of one cell over ``age`` days at constant rates."""
    return 1.0 / (1.0 + death * _ratio(death - birth, age))


def _integrated_survival(birth: float, death: float, dt: float) -> float:
    r""":math:`\int_0^{\Delta} S_u\,du = \ln(1 + \lambda (e^{a\Delta}-1)/a)/\lambda`, a = λ − μ."""
    x = float(_ratio(np.asarray(birth - death), dt))
    lx = birth * x
    return x * (1.0 - 0.5 * lx) if lx < 1e-9 else np.log1p(lx) / birth


def _age_quantile(birth: float, death: float, c: NDArray) -> NDArray:
    """Inverse of ``u -> int_0^u S``: the age with integrated survival ``c``."""
    y = _ratio(np.asarray(birth), c) if birth > 0 else c  # (e^{λc} - 1)/λ
    a = birth - death
    return y if abs(a) < 1e-12 else np.log1p(a * y) / a


def _step(rng: np.random.Generator, z: NDArray, birth: float, death: float, dt: float) -> NDArray:
    """Exact transition of independent linear birth–death lineages over ``dt`` days."""
    out = np.zeros_like(z)
    live = np.flatnonzero(z)
    if live.size == 0:
        return out
    surv = float(_survival(np.asarray(birth), np.asarray(death), np.asarray(dt)))
    survivors = rng.binomial(z[live], surv)
    p = min(surv * np.exp(-(birth - death) * dt), 1.0)
    alive = survivors > 0
    if p < 1.0 and np.any(alive):
        survivors[alive] += rng.negative_binomial(survivors[alive].astype(float), p)
    out[live] = survivors
    return out


MANY_ARRIVALS = 1000
"""Surviving arrivals per replicate and interval above which their summed size is drawn from
the normal law with the exact mean and variance (relative error of the sum ~ 1/sqrt(count))."""


def _arrivals(
    rng: np.random.Generator, n_rep: int, rate: float, birth: float, death: float, dt: float
) -> NDArray:
    """Cells at the end of an interval descending from Poisson arrivals within it."""
    if rate <= 0:
        return np.zeros(n_rep, dtype=np.int64)
    total = _integrated_survival(birth, death, dt)
    counts = rng.poisson(rate * total, size=n_rep)
    out = np.zeros(n_rep, dtype=np.int64)
    many = counts > MANY_ARRIVALS
    if np.any(many):
        # size of one survivor: geometric with p(u) given its age u ~ S(u)/int S
        x, w = np.polynomial.legendre.leggauss(64)
        age = 0.5 * dt * (x + 1.0)
        dens = _survival(np.asarray(birth), np.asarray(death), age) * 0.5 * dt * w / total
        p = np.minimum(_survival(np.asarray(birth), np.asarray(death), age)
                       * np.exp(-(birth - death) * age), 1.0)  # fmt: skip
        m1 = np.sum(dens / p)
        var = np.sum(dens * (2.0 - p) / p**2) - m1**2
        c = counts[many]
        out[many] = np.rint(np.maximum(rng.normal(c * m1, np.sqrt(c * var)), c))
    few = np.where(many, 0, counts)
    n = int(few.sum())
    if n == 0:
        return out
    age = _age_quantile(birth, death, rng.uniform(0.0, total, size=n))
    surv = _survival(np.asarray(birth), np.asarray(death), age)
    p = np.minimum(surv * np.exp(-(birth - death) * age), 1.0)
    owner = np.repeat(np.arange(n_rep), few)
    sizes = np.bincount(owner, weights=rng.geometric(p), minlength=n_rep)
    return out + sizes.astype(np.int64)


def simulate_lineages(
    times: ArrayLike,
    pos_founders: int,
    pos_birth: ArrayLike,
    pos_death: ArrayLike,
    neg_founders: int,
    neg_birth: ArrayLike,
    neg_death: ArrayLike,
    immigration: ArrayLike,
    n_replicates: int,
    rng: np.random.Generator,
) -> tuple[NDArray, NDArray]:
    """Simulate antigen-positive and antigen-negative cell counts on a grid.

    Parameters
    ----------
    times
        Grid (days), shape ``(n_t,)``, starting at day 0.
    pos_founders, neg_founders
        Cells present at day 0.
    pos_birth, pos_death, neg_birth, neg_death
        Per-capita rates (1/day) on each interval, shape ``(n_t - 1,)`` (or scalars).
    immigration
        Rate of new antigen-negative lineages (1/day) on each interval, ``(n_t - 1,)``.
    n_replicates
        Independent realisations.
    rng
        Random generator (seed it for reproducibility).

    Returns
    -------
    pos, neg
        Integer cell counts, shape ``(n_replicates, n_t)``.
    """
    t = np.asarray(times, float)
    n_int = len(t) - 1
    rates = [
        np.broadcast_to(np.asarray(a, float), (n_int,))
        for a in (pos_birth, pos_death, neg_birth, neg_death, immigration)
    ]
    if any(np.any(r < 0) for r in rates):
        raise ValueError("birth, death and immigration rates must be >= 0")
    lam_a, mu_a, lam_n, mu_n, nu = rates
    pos = np.empty((n_replicates, len(t)), dtype=np.int64)
    neg = np.empty((n_replicates, len(t)), dtype=np.int64)
    pos[:, 0] = pos_founders
    neg[:, 0] = neg_founders
    for i in range(n_int):
        dt = t[i + 1] - t[i]
        pos[:, i + 1] = _step(rng, pos[:, i], lam_a[i], mu_a[i], dt)
        neg[:, i + 1] = _step(rng, neg[:, i], lam_n[i], mu_n[i], dt) + _arrivals(
            rng, n_replicates, nu[i], lam_n[i], mu_n[i], dt
        )
    return pos, neg


def outcome_frequencies(
    times: ArrayLike, pos: NDArray, neg: NDArray, threshold: float, horizons: ArrayLike
) -> dict[str, NDArray]:
    """Fractions of simulated replicates with each outcome by each horizon.

    A replicate *responds* at the first grid time its total falls below ``threshold``
    (cells) and *relapses* at the first later grid time with total ``>= threshold``; the
    relapse is antigen-negative when ``neg >= pos`` then. *Cure* at a horizon: no cell of
    either kind left. Returns ``p_relapse``, ``p_relapse_antigen_pos``,
    ``p_relapse_antigen_neg``, ``p_cure``, ``p_response``, each of shape ``(n_horizons,)``.
    """
    t = np.asarray(times, float)
    total = pos + neg
    n_t = len(t)
    below = total < threshold
    k_resp = np.where(below.any(1), np.argmax(below, 1), n_t)
    later = (np.arange(n_t)[None, :] > k_resp[:, None]) & (total >= threshold)
    k_rel = np.where(later.any(1), np.argmax(later, 1), n_t)
    rows = np.arange(len(total))
    at = np.minimum(k_rel, n_t - 1)
    neg_dominant = neg[rows, at] >= pos[rows, at]
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "p_relapse",
            "p_relapse_antigen_pos",
            "p_relapse_antigen_neg",
            "p_cure",
            "p_response",
        )
    }
    for h in np.asarray(horizons, float):
        k = int(np.searchsorted(t, h))
        relapsed = k_rel <= k
        out["p_relapse"].append(relapsed.mean())
        out["p_relapse_antigen_pos"].append((relapsed & ~neg_dominant).mean())
        out["p_relapse_antigen_neg"].append((relapsed & neg_dominant).mean())
        out["p_cure"].append((total[:, k] == 0).mean())
        out["p_response"].append((k_resp <= k).mean())
    return {k: np.asarray(v) for k, v in out.items()}

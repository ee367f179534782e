"""Multi-start optimisation to place the chains in the main posterior mode.

ODE posteriors of CAR T kinetics have local modes (e.g. a tumour predicted to regrow before the
last visit, explained away by a large residual SD) that a chain started at the prior median can
fall into and not leave within a run. Before sampling, L-BFGS is run on the log posterior density
(unconstrained space) from ``n_starts`` points drawn around the prior median; the chains start at
the best optimum found. The log densities of all optima are kept so the fit can report whether
distinct modes were found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize


@dataclass
class StartReport:
    """Log densities of the optima from each start, best first, and the best optimum ``x``
    (the model's unconstrained parameters, raveled); ``n_unconverged`` of the starts stopped at
    the iteration limit rather than at an optimum (large cohorts: 200 subjects, none of six
    converged in 400 iterations)."""

    log_densities: list[float]
    x: np.ndarray
    n_unconverged: int = 0
    #: every start's end point, in the order of ``log_densities``
    points: list[np.ndarray] = field(default_factory=list)

    def distinct(self) -> list[tuple[float, int]]:
        """The finite optima more than 1 log-density unit apart, best first, each with the
        number of starts that ended within 1 unit below it."""
        vals = sorted(v for v in self.log_densities if np.isfinite(v))[::-1]
        groups: list[list[float]] = []
        for v in vals:
            if groups and groups[-1][0] - v <= 1.0:
                groups[-1].append(v)
            else:
                groups.append([v])
        return [(g[0], len(g)) for g in groups]

    @property
    def n_distinct(self) -> int:
        """Number of optima more than 1 log-density unit apart."""
        return len(self.distinct())


#: the objective where the log density is not finite
FAILED = 1e12


def multistart(
    logp_dlogp: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    n_starts: int = 6,
    seed: int = 0,
    spread: float = 1.0,
    max_iter: int = 400,
) -> StartReport:
    """Maximise the log density ``logp_dlogp(x) -> (logp, grad)`` by L-BFGS from ``x0`` and from
    ``n_starts - 1`` points ``x0 + spread * N(0, I)``; return every optimum's log density and the
    best point."""
    rng = np.random.default_rng(seed)

    def objective(x):
        logp, grad = logp_dlogp(x)
        if not np.isfinite(logp):
            return FAILED, np.zeros_like(x)
        return -float(logp), -np.asarray(grad, dtype=float)

    results = []
    for k in range(n_starts):
        start = x0 + (0.0 if k == 0 else spread) * rng.standard_normal(x0.shape)
        res = optimize.minimize(
            objective, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
        )
        logp = -float(res.fun) if res.fun < FAILED else -np.inf  # ended where logp is not finite
        results.append((logp, res.x, res.nit >= max_iter))
    results.sort(key=lambda r: -r[0])
    return StartReport(
        [r[0] for r in results],
        results[0][1],
        sum(r[2] for r in results),
        [r[1] for r in results],
    )

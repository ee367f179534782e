r"""Why the sampler's trees hit the depth cap, in terms of the data.

NUTS takes a step size small enough for the stiffest direction it meets and as many steps as
the widest direction needs; a tree at the depth cap means the two are far apart. The mass
matrix rescales the posterior by its overall covariance :math:`\Sigma = L L^\top`; what it
cannot rescale is curvature that changes from one region to another. At a posterior draw
:math:`x` this module measures the largest eigenvalue :math:`\lambda` of the negative Hessian
in those units,

.. math::

    \lambda = \max_{\lVert u \rVert = 1} -u^\top L^\top \nabla^2 \log p(x)\, L u,

which is about 1 where the posterior is close to a Gaussian and :math:`\lambda` where a step of
:math:`1/\sqrt\lambda` of the overall scale is the most a leapfrog step can take. Along its
eigenvector :math:`v = L u` each observation's share of that curvature is its term's second
difference, :math:`c_j = -\big(\ell_j(x + hv) - 2\ell_j(x) + \ell_j(x - hv)\big)/h^2`, so the
stiffness is named by the reading that makes it. Hessian–vector products are central
differences of the compiled gradient (two gradients each), and :math:`\lambda` comes from
Lanczos iterations (at most :data:`LANCZOS_RESTARTS` ARPACK restarts of about 20 products), so
a draw costs at most about 400 gradients however many coordinates the fit has.

On data/example's predator–prey fit with logistic growth (4 x 1000/1000, depth 6)
:math:`\lambda` had a median of 56 over eight draws (up to 345), at each draw 90 % of it
(median) from one reading: pre-infusion tumour readings, where a logistic burden above the
capacity runs back to infinity in finite time, and CAR T readings at or after relapse, whose
day the model's CAR T re-expansion moves by days for a small change of the killing. The
Gompertz fit's :math:`\lambda` was 6-21 (three draws) and its step size three to four times
larger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
import pymc as pm
from pymc.blocking import DictToArrayBijection
from pymc.logprob.transforms import LogTransform
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from cartfit.inference.divergences import pointwise_terms
from cartfit.inference.fitfile import STIFFNESS_NOTE
from cartfit.inference.whiten import HESSIAN_STEP

#: share of transitions at the depth cap from which a fit's stiffness is located
CAPPED_SHARE = 0.25
#: posterior draws examined (evenly spaced over the chains)
N_POINTS = 8
#: step along the stiffest direction, in units of the posterior's own scale, for the
#: observations' second differences
OBS_STEP = 0.02


def _draw_indices(n_chains: int, n_draws: int, n_points: int) -> list[tuple[int, int]]:
    """``n_points`` (chain, draw) pairs spread evenly over chains and draws."""
    flat = np.linspace(0, n_chains * n_draws - 1, n_points).round().astype(int)
    return [(int(i // n_draws), int(i % n_draws)) for i in np.unique(flat)]


#: ARPACK restarts (each about 20 Hessian–vector products) and relative tolerance of
#: :math:`\lambda`; a draw where they do not suffice, or where a gradient is not finite (a
#: failed solve next to it), is left out
LANCZOS_RESTARTS, LANCZOS_TOL = 10, 1e-2


def largest_curvature(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, factor: np.ndarray
) -> tuple[float, np.ndarray] | None:
    r""":math:`\lambda` and :math:`u` of the module docstring at ``x``, with ``factor`` = L
    (n, n) and ``grad`` the gradient of the log density; None where they cannot be had."""

    def matvec(u):
        y = factor @ np.ravel(u)
        h = HESSIAN_STEP / max(float(np.abs(y).max()), 1e-300)
        hy = -(factor.T @ (grad(x + h * y) - grad(x - h * y))) / (2.0 * h)
        if not np.all(np.isfinite(hy)):
            raise FloatingPointError("gradient not finite next to the draw")
        return hy

    n = factor.shape[0]
    op = LinearOperator((n, n), matvec=matvec, dtype=float)
    start = np.random.default_rng(0).standard_normal(n)
    try:
        lam, vec = eigsh(op, k=1, which="LA", v0=start, tol=LANCZOS_TOL,
                         maxiter=LANCZOS_RESTARTS)  # fmt: skip
    except ArpackNoConvergence as err:
        if not len(err.eigenvalues):
            return None
        lam, vec = err.eigenvalues, err.eigenvectors
    except FloatingPointError:
        return None
    return float(lam[0]), vec[:, 0]


def locate_stiffness(
    pm_model: pm.Model,
    x_draws: np.ndarray,
    obs: pd.DataFrame,
    logp_dlogp: Callable[[np.ndarray], tuple[float, np.ndarray]],
    n_points: int = N_POINTS,
) -> pd.DataFrame:
    """One row per examined draw: ``chain, draw, curvature`` (:math:`\\lambda`), the
    observation with the largest share of the data's part of it (``subject, analyte, time, blq,
    share``), the data's part (``data_share``, :math:`\\sum_j c_j / \\lambda`; the rest is the
    priors' and the population model's) and the coordinate with the largest entry of its
    direction (``coordinate``). ``x_draws`` are the
    draws in the raveled unconstrained coordinates, shape (chain, draw, n)."""
    cols = ["chain", "draw", "curvature", "subject", "analyte", "time", "blq", "share",
            "data_share", "coordinate"]  # fmt: skip
    n_chains, n_draws, n = x_draws.shape
    flat = x_draws.reshape(-1, n)
    if flat.shape[0] < 2 or not np.all(np.isfinite(flat)):
        return pd.DataFrame(columns=cols)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    cov[np.diag_indices(n)] += 1e-10 * max(1.0, float(np.trace(cov)) / n)
    try:
        factor = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:  # draws that do not span a covariance (not finite)
        return pd.DataFrame(columns=cols)
    pointwise, labels = pointwise_terms(pm_model)
    rows = []
    for c, d in _draw_indices(n_chains, n_draws, n_points):
        x = x_draws[c, d]
        found = largest_curvature(lambda z: logp_dlogp(z)[1], x, factor)
        if found is None:
            continue
        lam, u = found
        v = factor @ u
        terms = [pointwise(x + s * OBS_STEP * v)[0] for s in (1.0, 0.0, -1.0)]
        curv = -(terms[0] - 2.0 * terms[1] + terms[2]) / OBS_STEP**2
        curv[~np.isfinite(curv)] = 0.0
        j = int(np.argmax(curv))
        total = float(curv[curv > 0].sum())
        row = obs.iloc[j]
        rows.append({
            "chain": c, "draw": d, "curvature": lam, "subject": str(row["subject"]),
            "analyte": str(row["analyte"]), "time": float(row["time"]), "blq": bool(row["blq"]),
            "share": float(curv[j]) / total if total > 0 else np.nan,
            "data_share": float(curv.sum()) / lam if lam > 0 else np.nan,
            "coordinate": labels[int(np.argmax(np.abs(v)))],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def stiffness_note(located: pd.DataFrame, n_capped: int, n_transitions: int) -> str | None:
    """One line for the fit's notes: how stiff the posterior is and which readings make it."""
    if located.empty:
        return None
    from_data = located["data_share"] >= 0.5
    one = from_data & (located["share"] >= 0.5)
    note = (
        f"{STIFFNESS_NOTE} ({n_capped} of {n_transitions} transitions at the cap): at "
        f"{len(located)} posterior draws the log density's stiffest direction curves "
        f"{located['curvature'].median():.3g} times (median; up to "
        f"{located['curvature'].max():.3g}) more sharply than the posterior's overall spread "
        "implies, so the leapfrog steps are short while its widest direction needs long "
        "trajectories"
    )
    if one.any():
        where = Counter(
            f"{r.subject} {r.analyte} day {r.time:g}{' (BLQ)' if r.blq else ''}"
            for r in located[one].itertuples()
        )
        note += (
            f"; at {int(one.sum())} of them one reading makes most of it (median share "
            f"{located.loc[one, 'share'].median():.0%} of the data's part): "
            + ", ".join(f"{k} ×{n}" for k, n in where.most_common(5))
        )
    for rows, what in (
        (from_data & ~one, "the data make most of it, spread over many readings"),
        (~from_data, "the priors and the population model make most of it (e.g. a funnel "
                     "where a between-subject SD is small)"),
    ):  # fmt: skip
        if rows.any():
            coords = Counter(located.loc[rows, "coordinate"])
            note += f"; at {int(rows.sum())} {what}, along " + ", ".join(
                f"{k} ×{n}" for k, n in coords.most_common(3)
            )
    return note


def unconstrained_draws(pm_model, posterior) -> np.ndarray:
    """A fit's draws (``posterior``: the free variables by name) as the model's raveled
    unconstrained vector, (chain, draw, n): the coordinates :func:`locate_stiffness` takes,
    for a fit read back from its file. The model must carry the weights the fit's subject
    effects were sampled under (``constant_data`` ``centring``)."""
    ip = pm_model.initial_point()
    info = DictToArrayBijection.map({v.name: ip[v.name] for v in pm_model.value_vars})
    values = {v.name: v for v in pm_model.value_vars}
    parts = []
    for name, _, _, _ in info.point_map_info:
        rv = pm_model.values_to_rvs[values[name]]
        draws = np.asarray(posterior[rv.name].values, float)
        transform = pm_model.rvs_to_transforms.get(rv)
        if isinstance(transform, LogTransform):
            draws = np.log(draws)
        elif transform is not None:
            raise ValueError(f"{rv.name}: no inverse here for transform {transform}")
        parts.append(draws.reshape(draws.shape[0], draws.shape[1], -1))
    return np.concatenate(parts, axis=-1)

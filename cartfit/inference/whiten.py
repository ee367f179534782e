r"""Laplace whitening of the coordinates the sampler moves in.

The posterior of a CAR T/tumour fit has a few very narrow directions that are not along any one
parameter. On a simulated 20-subject predator–prey/Gompertz cohort the negative Hessian of the
log density at the optimum had eigenvalues from 0.95 to 78,000 (condition number 8e4); each of
the stiffest eigenvectors belongs to one subject and combines its tumour growth rate, CAR T
proliferation and death rates and initial tumour burden: the timing of relapse, which many log
units of regrowth pin down. nutpie's low-rank mass matrix finds these directions, but only after
300–450 warm-up draws of 100–300 leapfrog steps each: 78 % of all gradient evaluations of a
4 × 1000/1000 fit went to warm-up.

The sampler therefore moves in :math:`w` with :math:`x = \hat x + L w`, where :math:`x` are
the model's unconstrained parameters and :math:`\hat x` the start (the multi-start optimum).
:math:`L` is the exact inverse Cholesky-type factor of the Laplace precision
:math:`H = -\nabla^2 \log p(\hat x)` for its arrow structure: population coordinates
(:math:`\mu`, :math:`\omega`, covariate effects, residual SDs; block :math:`A`) coupled
(:math:`B_s`) to each subject's coordinates (those with a leading ``subject`` dimension; block
:math:`D_s`), and no subject–subject blocks, since subjects are conditionally independent given
the population. With :math:`L_s L_s^\top = D_s^{-1}`, the Schur complement
:math:`S = A - \sum_s B_s^\top D_s^{-1} B_s`, :math:`L_S L_S^\top = S^{-1}` and
:math:`G_s = -D_s^{-1} B_s L_S`:

.. math::

    x_{pop} = \hat x_{pop} + L_S w_{pop}, \qquad
    x_s = \hat x_s + L_s w_s + G_s w_{pop},

so that :math:`L L^\top = H^{-1}`. Each inverse square root is :math:`V |\Lambda|^{-1/2}` from
an eigendecomposition, eigenvalues taken in absolute value and floored at ``EIGENVALUE_FLOOR``
(directions the data do not inform get a scale of at most ``EIGENVALUE_FLOOR``:sup:`-1/2`).
The blocks cost ``2 (n_pop + k)`` gradients (``k`` coordinates per subject, all subjects
perturbed at once) instead of ``2 n``, and applying :math:`L` costs :math:`O(n (k + n_{pop}))`
rather than the :math:`O(n^2)` of a dense factor (at 200 subjects, 1,214 coordinates, a dense
matrix–vector pair took 3.6 ms on a loaded core, about as long as the ODE solve).
The map is linear with a constant Jacobian,
so the posterior of :math:`x` is unchanged.

:math:`\hat x` and the blocks are shared variables, so the model is compiled once: with
:math:`\hat x = 0, L = I` its log density is the original one, which the multi-start
optimisation and the Hessian use before the whitening is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.blocking import DictToArrayBijection
from pytensor.graph.replace import graph_replace

from cartfit.inference.arrow import ArrowMapOp

#: floor on the Hessian eigenvalues: at most this**-0.5 = 3.2 units of x per unit of w
EIGENVALUE_FLOOR = 0.1
#: central-difference step (unconstrained units) for the Hessian from gradients; large enough
#: that the ODE solver's error in the gradient (tolerance 1e-5) stays small against it
HESSIAN_STEP = 1e-3

#: damped Newton polish of the start (see :meth:`Whitened.newton`): at most this many steps,
#: each halved at most this many times, until a step gains less than this in log density
NEWTON_ITERATIONS, NEWTON_HALVINGS, NEWTON_TOL = 30, 12, 1e-3

LOC, POP, SUBJECT, COUPLING = "whiten_loc", "whiten_population", "whiten_subject", "whiten_coupling"


@dataclass(frozen=True)
class Factors:
    """The whitening: start ``loc`` (n,), :math:`L_S` (n_pop, n_pop), :math:`L_s`
    (n_subjects, k, k) and :math:`G_s` (n_subjects, k, n_pop)."""

    loc: np.ndarray
    population: np.ndarray
    subject: np.ndarray
    coupling: np.ndarray

    def data(self) -> dict[str, np.ndarray]:
        """Values of the shared variables, by name (for nutpie's ``with_data``)."""
        values = {
            LOC: self.loc,
            POP: self.population,
            SUBJECT: self.subject,
            COUPLING: self.coupling,
        }
        return {k: np.ascontiguousarray(v, float) for k, v in values.items()}


@dataclass
class Whitened:
    """The sampled model (one free variable ``w``) of an original model, the raveling of the
    original's unconstrained parameters (value variables in ``pm_model.value_vars`` order) and
    which of them are population and which subject coordinates."""

    model: pm.Model
    point_map_info: tuple
    x_init: np.ndarray  # the original model's initial point, raveled
    pop_idx: np.ndarray  # (n_pop,) population coordinates
    subj_idx: np.ndarray  # (n_subjects, k) each subject's coordinates
    shared: dict[str, Any]  # name -> shared variable

    @property
    def n_dim(self) -> int:
        return self.x_init.size

    def identity(self, loc: np.ndarray | None = None) -> Factors:
        return _identity(self.n_dim, self.pop_idx, self.subj_idx, loc)

    def laplace(self, logp_dlogp: Callable, loc: np.ndarray, step: float = HESSIAN_STEP):
        """The block factors from the negative Hessian at ``loc`` (central differences of the
        gradient: each population coordinate alone, each subject coordinate of every subject
        at once)."""
        pop, subj = self.pop_idx, self.subj_idx
        n_s, k = subj.shape

        def column(idx):
            e = np.zeros(self.n_dim)
            e[idx] = step
            return -(logp_dlogp(loc + e)[1] - logp_dlogp(loc - e)[1]) / (2 * step)

        a = np.empty((pop.size, pop.size))
        b = np.empty((n_s, k, pop.size))
        for j, i in enumerate(pop):
            col = column(i)
            a[:, j], b[:, :, j] = col[pop], col[subj]
        d = np.empty((n_s, k, k))
        for c in range(k):
            d[:, :, c] = column(subj[:, c])[subj]
        return Factors(np.asarray(loc, float), *arrow_factors(a, b, d))

    def w_of_gradient(self, g: np.ndarray, f: Factors) -> np.ndarray:
        r""":math:`L^\top g` for a gradient ``g`` in x (so that :math:`L L^\top g` is the
        Newton step when :math:`L L^\top = H^{-1}`)."""
        gp, gs = g[self.pop_idx], g[self.subj_idx]
        w = np.empty_like(g)
        w[self.pop_idx] = f.population.T @ gp + np.einsum("sip,si->p", f.coupling, gs)
        w[self.subj_idx] = np.einsum("sij,si->sj", f.subject, gs)
        return w

    def newton(
        self, logp_dlogp: Callable, x: np.ndarray, max_iter: int = NEWTON_ITERATIONS
    ) -> tuple[np.ndarray, Factors]:
        r"""Damped Newton ascent from ``x`` with the arrow-structured Hessian: step
        :math:`L L^\top \nabla \log p` (the factor of :meth:`laplace`, eigenvalues in absolute
        value, so an ascent direction even where the Hessian is indefinite), halved until the
        log density rises; stops when the step no longer raises it by ``NEWTON_TOL``. Returns
        the point and the factors there. L-BFGS stops short of the optimum on large cohorts (at
        200 subjects none of six starts converged in 400 iterations; log density -1,891, where
        these steps reach -1,579 and a largest gradient entry of 3.8 in 2.4 s)."""
        x = np.asarray(x, float)
        logp, grad = logp_dlogp(x)
        factors = self.laplace(logp_dlogp, x)
        for _ in range(max_iter):
            w = self.w_of_gradient(grad, factors)
            for _ in range(NEWTON_HALVINGS):
                trial = self.x_of(w, factors)
                new_logp, new_grad = logp_dlogp(trial)
                if np.isfinite(new_logp) and new_logp > logp:
                    break
                w = 0.5 * w
            else:
                break
            gain = new_logp - logp
            x, logp, grad = trial, new_logp, new_grad
            factors = self.laplace(logp_dlogp, x)
            if gain < NEWTON_TOL:
                break
        return x, factors

    def x_of(self, w: np.ndarray, f: Factors) -> np.ndarray:
        """x = x̂ + L w for ``w`` of shape (..., n) (NumPy; NaN rows stay NaN). The sums are
        ``einsum``'s own loops, not BLAS, whose rounding can depend on its thread count: the
        quantities a fit stores are computed from these x (:mod:`cartfit.inference.stored`)."""
        x = np.array(np.broadcast_to(f.loc, w.shape), dtype=float)
        wp, ws = w[..., self.pop_idx], w[..., self.subj_idx]
        x[..., self.pop_idx] += np.einsum("ij,...j->...i", f.population, wp)
        x[..., self.subj_idx] += np.einsum("sij,...sj->...si", f.subject, ws)
        x[..., self.subj_idx] += np.einsum("sip,...p->...si", f.coupling, wp)
        return x


def _identity(n: int, pop_idx: np.ndarray, subj_idx: np.ndarray, loc=None) -> Factors:
    """Factors of the identity map x = x̂ + w (x̂ = 0 unless ``loc`` is given)."""
    (n_s, k), n_p = subj_idx.shape, pop_idx.size
    loc = np.zeros(n) if loc is None else np.asarray(loc, float)
    eye_k = np.broadcast_to(np.eye(k), (n_s, k, k))
    return Factors(loc, np.eye(n_p), eye_k, np.zeros((n_s, k, n_p)))


def _layout(pm_model: pm.Model, info) -> tuple[np.ndarray, np.ndarray]:
    """Population coordinates, and each subject's (variables whose first dim is ``subject``)."""
    value_to_rv = {pm_model.rvs_to_values[rv].name: rv.name for rv in pm_model.free_RVs}
    pop, per_subject, offset = [], [], 0
    for name, shape, size, _ in info:
        idx = np.arange(offset, offset + size).reshape(shape)
        offset += size
        dims = pm_model.named_vars_to_dims.get(value_to_rv[name], ())
        if dims and dims[0] == "subject":
            per_subject.append(idx.reshape(shape[0], -1))
        else:
            pop.extend(idx.ravel())
    n_s = len(pm_model.coords.get("subject", ()))
    subj = np.concatenate(per_subject, axis=1) if per_subject else np.empty((n_s, 0), int)
    return np.asarray(pop, dtype=int), subj


def whitened_model(pm_model: pm.Model) -> Whitened:
    """A model in ``w`` whose log density is ``pm_model``'s at :math:`x = \\hat x + L w`;
    :math:`\\hat x` and :math:`L` start as 0 and the identity. Only its log density is
    compiled: what a fit stores is evaluated from x after sampling
    (:mod:`cartfit.inference.stored`)."""
    ip = pm_model.initial_point()
    value_vars = list(pm_model.value_vars)
    raveled = DictToArrayBijection.map({v.name: ip[v.name] for v in value_vars})
    n = raveled.data.size
    pop_idx, subj_idx = _layout(pm_model, raveled.point_map_info)
    shared = {
        name: pytensor.shared(value, name=name)
        for name, value in _identity(n, pop_idx, subj_idx).data().items()
    }
    with pm.Model(coords=dict(pm_model.coords)) as model:
        w = pm.Flat("w", shape=n)
        # w is laid out like x (so that with x̂ = 0, L = I, x = w); one compiled Op
        x = ArrowMapOp()(w, shared[LOC], shared[POP], shared[SUBJECT], shared[COUPLING],
                         pop_idx, subj_idx)  # fmt: skip
        replace, offset = {}, 0
        for value, (_, shape, size, _) in zip(value_vars, raveled.point_map_info, strict=True):
            replace[value] = x[offset : offset + size].reshape(shape)
            offset += size
        pm.Potential("log_density", graph_replace(pm_model.logp(), replace, strict=False))
    return Whitened(model, raveled.point_map_info, raveled.data, pop_idx, subj_idx, shared)


def arrow_factors(
    a: np.ndarray, b: np.ndarray, d: np.ndarray, floor: float = EIGENVALUE_FLOOR
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:math:`L_S, L_s, G_s` of an arrow-structured precision with population block ``a``
    (n_pop, n_pop), couplings ``b`` (n_subjects, k, n_pop) and subject blocks ``d``
    (n_subjects, k, k) (see the module docstring)."""
    n_s, k, n_p = b.shape
    l_subj = np.empty((n_s, k, k))
    d_inv_b = np.empty((n_s, k, n_p))
    schur = a  # symmetrised by laplace_factor
    for s in range(n_s):
        l_subj[s] = laplace_factor(d[s], floor)
        d_inv_b[s] = l_subj[s] @ (l_subj[s].T @ b[s])
        schur = schur - b[s].T @ d_inv_b[s]
    l_pop = laplace_factor(schur, floor)
    return l_pop, l_subj, -d_inv_b @ l_pop


def laplace_factor(neg_hessian: np.ndarray, floor: float = EIGENVALUE_FLOOR) -> np.ndarray:
    """:math:`L = V \\Lambda^{-1/2}` of a symmetrised block with :math:`|\\lambda|` floored at
    ``floor``; identity if the block is not finite."""
    if neg_hessian.size == 0 or not np.all(np.isfinite(neg_hessian)):
        return np.eye(len(neg_hessian))
    lam, vecs = np.linalg.eigh(0.5 * (neg_hessian + neg_hessian.T))
    return vecs / np.sqrt(np.maximum(np.abs(lam), floor))

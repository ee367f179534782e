r"""The log-normal observation model with M3 censoring, compiled with the ODE solve into one Op.

``ODELikelihoodOp(model)(log_params, log_y0, sigma, observed, *layout) -> (logp, mu, jac,
d_sigma, status)``, per observation row :math:`j` of subject :math:`s_j`, analyte :math:`a_j`:

.. math::

    \mu_j = \begin{cases}
        h_{a_j}(x_{s_j}(t_j)) & t_j \ge 0 \text{ (the ODE solve)} \\
        \ln B_{s_j}(t_j) \text{ from } \ln B_0 = h_{\mathrm{tumor}}(x_{s_j}(0))
            & t_j < 0 \text{ (untreated growth, the law's closed form)}
    \end{cases}

    \ell_j = \begin{cases}
        -\tfrac12 z_j^2 - \ln\sigma_{a_j} - \tfrac12\ln 2\pi & \text{measured} \\
        \ln\Phi(z_j) & \text{below the LLOQ } (x_j = \ln \mathrm{LLOQ}_j)
    \end{cases}, \qquad z_j = (y_j - \mu_j)/\sigma_{a_j}

with the observables :math:`h_a` of :class:`~cartfit.models.logsum.LogSumRatio`. The Op
returns :math:`\ell_j` (``logp``), :math:`\mu_j` (``mu``), the row Jacobian
``jac[j] =`` :math:`\partial\ell_j/\partial(\ln p_{s_j}, x_{s_j}(0))` (chained through the
forward sensitivities of the solve) and ``d_sigma[j] =`` :math:`\partial\ell_j/\partial
\sigma_{a_j}`; the pullback scatters them onto the subjects and analytes in one compiled
:class:`RowScatterOp`. Measured rows: :math:`\partial\ell/\partial\mu = z/\sigma`,
:math:`\partial\ell/\partial\sigma = (z^2-1)/\sigma`; censored rows, with the inverse Mills
ratio :math:`r = \varphi(z)/\Phi(z)`: :math:`\partial\ell/\partial\mu = -r/\sigma`,
:math:`\partial\ell/\partial\sigma = -r z/\sigma`.

It is the same density as the PyTensor graph of :func:`cartfit.inference.builder.build_model`
with ``fused=False`` (gathers, observables, closed form and ``pm.Censored``), which the tests
compare it with. That graph put ~37 more nodes around the solve, each with an allocation and
atomic reference counts, and PyMC's censored term evaluates both branches of ``log_ndtr`` for
every row: on the one-subject benchmark (24 rows, 2 before infusion, 10 censored) the graph
around the solve cost ~6 µs, the compiled pass ~1.5 µs plus ~2.5 µs for the 25 nodes left.
:math:`\ln\Phi` is computed from ``erfc`` for :math:`z > -20` (``log1p`` for :math:`z > 0`)
and from the asymptotic series
:math:`\ln\Phi(z) = -z^2/2 - \ln(-z) - \tfrac12\ln 2\pi + \ln(1 - w + 3w^2 - 15w^3 + 105w^4)`,
:math:`w = z^{-2}`, below (relative error < 1e-10 there). A failed solve gives ``status`` 1
for its subject and :math:`-\infty` for its rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

from cartfit.inference.op import SolveOp
from cartfit.inference.solver import (
    JIT,
    STATUS_OK,
    cache_key,
    compiled_for,
    get_batch_solver,
)
from cartfit.models.base import ODEModel

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
#: below this ``z`` the log-CDF comes from the asymptotic series
ASYMPTOTIC_Z = -20.0


@numba.njit(cache=True, error_model="numpy")
def log_ndtr_mills(z: float) -> tuple[float, float]:
    r""":math:`(\ln\Phi(z),\ \varphi(z)/\Phi(z))`."""
    if z < ASYMPTOTIC_Z:
        w = 1.0 / (z * z)
        series = 1.0 - w * (1.0 - w * (3.0 - w * (15.0 - 105.0 * w)))
        return -0.5 * z * z - math.log(-z) - HALF_LOG_2PI + math.log(series), -z / series
    if z > 0.0:
        log_phi = math.log1p(-0.5 * math.erfc(z / math.sqrt(2.0)))
    else:
        log_phi = math.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    return log_phi, math.exp(-0.5 * z * z - HALF_LOG_2PI - log_phi)


@numba.njit(inline="always", **JIT)
def _log_sum(x, member, row, dh, sign):
    r""":math:`\ln\sum_{i:\,member_{row,i}} e^{x_i}`, adding ``sign`` times its gradient (the
    softmax weights) to ``dh``; 0 for an empty set. One member needs no exponential. (The
    membership is indexed by ``row`` rather than passed as a row view: a view costs two atomic
    reference-count updates.)"""
    m, count, last = -np.inf, 0, 0
    for i in range(x.shape[0]):
        if member[row, i] > 0.0:
            m = max(m, x[i])
            count += 1
            last = i
    if count == 0:
        return 0.0
    if count == 1:
        dh[last] += sign
        return x[last]
    total = 0.0
    for i in range(x.shape[0]):
        if member[row, i] > 0.0:
            total += np.exp(x[i] - m)
    for i in range(x.shape[0]):
        if member[row, i] > 0.0:
            dh[i] += sign * np.exp(x[i] - m) / total
    return m + np.log(total)


def _make_kernel(model: ODEModel, with_sens: bool) -> Callable:
    solve = get_batch_solver(model, with_sens)
    n_s, n_p = model.n_states, model.n_params
    n_q = n_p + n_s
    growth = model.extras["growth_law"]
    n_g = growth.n_params
    pre_growth = growth.log_solution_grad

    @numba.njit(**JIT)
    def kernel(
        log_params,
        log_y0,
        sigma,
        observed,
        times,
        n_times,
        weights,
        tumor_weights,
        subject_idx,
        time_idx,
        analyte_idx,
        t_obs,
        blq,
        pre,
        rtol,
        atol,
        max_steps,
    ):
        n_obs = observed.shape[0]
        logp = np.empty(n_obs)
        mu = np.empty(n_obs)
        jac = np.empty((n_obs, n_q))
        d_sigma = np.empty(n_obs)
        ys, sens, status = solve(log_params, log_y0, times, n_times, rtol, atol, max_steps)
        log_sigma = np.log(sigma)
        x = np.empty(n_s)
        dh = np.empty(n_s)
        p_g = np.empty(n_g)
        d_log_p = np.empty(n_g)
        for j in range(n_obs):
            s, a = subject_idx[j], analyte_idx[j]
            for q in range(n_q):
                jac[j, q] = 0.0
            if status[s] != STATUS_OK:
                logp[j], mu[j], d_sigma[j] = -np.inf, np.nan, 0.0
                continue
            for i in range(n_s):
                dh[i] = 0.0
            if pre[j]:  # untreated growth from ln B0 = h_tumor(x(0)) back to t_j < 0
                for i in range(n_s):
                    x[i] = log_y0[s, i]
                log_b0 = _log_sum(x, tumor_weights, 0, dh, 1.0)
                log_b0 -= _log_sum(x, tumor_weights, 1, dh, -1.0)
                for k in range(n_g):
                    p_g[k] = np.exp(log_params[s, k])
                m, d_b0 = pre_growth(t_obs[j], log_b0, p_g, d_log_p)
            else:
                for i in range(n_s):
                    x[i] = ys[s, time_idx[j], i]
                m = _log_sum(x, weights, 2 * a, dh, 1.0)
                m -= _log_sum(x, weights, 2 * a + 1, dh, -1.0)
            sd = sigma[a]
            z = (observed[j] - m) / sd
            if blq[j]:
                lp, r = log_ndtr_mills(z)
                d_mu, d_sigma[j] = -r / sd, -r * z / sd
            else:
                lp = -0.5 * z * z - log_sigma[a] - HALF_LOG_2PI
                d_mu, d_sigma[j] = z / sd, (z * z - 1.0) / sd
            logp[j], mu[j] = lp, m
            if pre[j]:
                for k in range(n_g):
                    jac[j, k] = d_mu * d_log_p[k]
                for i in range(n_s):
                    jac[j, n_p + i] = d_mu * d_b0 * dh[i]
            elif with_sens:
                t = time_idx[j]
                for i in range(n_s):
                    if dh[i] != 0.0:
                        c = d_mu * dh[i]
                        for q in range(n_q):
                            jac[j, q] += c * sens[s, t, i, q]
        return logp, mu, jac, d_sigma, status

    return kernel


def get_likelihood_kernel(model: ODEModel, with_sens: bool = True) -> Callable:
    """The compiled kernel of :class:`ODELikelihoodOp` for ``model`` (cached)."""
    return compiled_for(model, with_sens, "likelihood", _make_kernel)


#: the data inputs after (log_params, log_y0, sigma, observed), in order
LAYOUT = (
    "times",
    "n_times",
    "weights",
    "tumor_weights",
    "subject_idx",
    "time_idx",
    "analyte_idx",
    "t_obs",
    "blq",
    "pre",
)
_INT_INPUTS = {"n_times", "subject_idx", "time_idx", "analyte_idx"}
_BOOL_INPUTS = {"blq", "pre"}


def layout_arrays(model: ODEModel, data) -> list[np.ndarray]:
    """The :data:`LAYOUT` inputs of :class:`ODELikelihoodOp` for the prepared cohort ``data``
    (:class:`cartfit.inference.data.FitData`), in order and in the Op's dtypes."""
    obs = data.obs
    n_s = model.n_states
    tumor = model.observables.get("tumor")
    values = {
        "times": data.times,
        "n_times": data.n_times,
        # rows 2a and 2a + 1: the numerator and denominator states of analyte a
        "weights": np.concatenate([model.observables[a].weights(n_s) for a in data.analytes]),
        "tumor_weights": tumor.weights(n_s) if tumor is not None else np.zeros((2, n_s)),
        "subject_idx": obs["subject_idx"].to_numpy(),
        "time_idx": obs["time_idx"].to_numpy(),
        "analyte_idx": obs["analyte_idx"].to_numpy(),
        "t_obs": obs["time"].to_numpy(),
        "blq": obs["blq"].to_numpy(),
        "pre": obs["pre"].to_numpy(),
    }
    return [
        np.array(values[name], order="C", dtype="int64" if name in _INT_INPUTS
                 else bool if name in _BOOL_INPUTS else float)
        for name in LAYOUT
    ]  # fmt: skip


def predicted_means(model: ODEModel, data, theta, log_y0, rtol: float, atol: float) -> np.ndarray:
    r"""Every observation's predicted mean :math:`\mu_j` (log, scaled units), shape (n_draws,
    n_obs), at posterior draws ``theta`` (n_draws, n_subjects, n_params) and ``log_y0``
    (n_draws, n_subjects, n_states): the ``mu`` output of :class:`ODELikelihoodOp`, evaluated
    by the same compiled kernel (solve with sensitivities, ``rtol``, ``atol``) as the log
    density the sampler moved on, so the pointwise log-likelihood is the sampled one.

    Computed after sampling rather than stored by nutpie: a deterministic in nutpie's trace
    is compiled into its second callback, and with ``mu`` that was a second full link of the
    solver (16 of the 70 s of a one-subject fit's first compile on this machine)."""
    op = ODELikelihoodOp(model.name, model.growth, rtol=rtol, atol=atol)
    layout = layout_arrays(model, data)
    sigma, observed = np.ones(len(data.analytes)), np.zeros(len(data.obs))
    theta, log_y0 = np.asarray(theta, float), np.asarray(log_y0, float)
    mu = np.empty((theta.shape[0], len(observed)))
    with np.errstate(divide="ignore"):
        log_theta = np.log(theta)
    for i in range(theta.shape[0]):
        mu[i] = op.evaluate([log_theta[i], log_y0[i], sigma, observed, *layout])[1]
    return mu


class ODELikelihoodOp(SolveOp):
    """Rows' log-likelihood, predictions and row Jacobians from one compiled pass (see the
    module). ``sensitivities=False``: values only (zero Jacobians), from the solve without
    sensitivities that the analyses use."""

    def make_node(self, log_params, log_y0, sigma, observed, *layout):
        if len(layout) != len(LAYOUT):
            raise TypeError(f"ODELikelihoodOp takes {4 + len(LAYOUT)} inputs")
        inputs = [
            pt.as_tensor_variable(v, dtype="float64") for v in (log_params, log_y0, sigma, observed)
        ]
        for name, value in zip(LAYOUT, layout, strict=True):
            dtype = (
                "int64" if name in _INT_INPUTS else "bool" if name in _BOOL_INPUTS else "float64"
            )
            inputs.append(pt.as_tensor_variable(value, dtype=dtype))
        outputs = [pt.dvector(), pt.dvector(), pt.dmatrix(), pt.dvector(), pt.lvector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        for k, value in enumerate(self.evaluate(inputs)):
            output_storage[k][0] = value

    def evaluate(self, inputs) -> tuple:
        """``(logp, mu, jac, d_sigma, status)`` at NumPy ``inputs`` (the Op's, in order)."""
        kernel = get_likelihood_kernel(self.model, self.sensitivities)
        return kernel(*(np.ascontiguousarray(v) for v in inputs), self.rtol, self.atol,
                      self.max_steps)  # fmt: skip

    def infer_shape(self, node, shapes):
        n_obs = shapes[3][0]
        n_q = self.model.n_params + self.model.n_states
        return [(n_obs,), (n_obs,), (n_obs, n_q), (n_obs,), (shapes[0][0],)]

    def connection_pattern(self, node):
        row = [True, True, True, True, False]
        return [row, row, row] + [[False] * 5 for _ in range(1 + len(LAYOUT))]

    def pullback(self, inputs, outputs, cotangents):
        log_params, log_y0, sigma = inputs[:3]
        g = cotangents[0]
        for k in range(1, 4):
            if not isinstance(cotangents[k].type, DisconnectedType):
                return [
                    grad_undefined(self, i, inputs[i], "only the log-likelihood has a gradient")
                    for i in range(3)
                ] + [DisconnectedType()() for _ in range(1 + len(LAYOUT))]
        if isinstance(g.type, DisconnectedType):
            grads = [pt.zeros_like(log_params), pt.zeros_like(log_y0), pt.zeros_like(sigma)]
        else:
            subject_idx, analyte_idx = (
                inputs[4 + LAYOUT.index("subject_idx")],
                inputs[4 + LAYOUT.index("analyte_idx")],
            )
            grads = RowScatterOp(self.model.n_params)(
                g, outputs[2], outputs[3], subject_idx, analyte_idx, log_params, sigma
            )
        return list(grads) + [DisconnectedType()() for _ in range(1 + len(LAYOUT))]


@numba.njit(**JIT)
def row_scatter(g, jac, d_sigma, subject_idx, analyte_idx, n_sub, n_p, n_a):
    """Per subject and analyte sums of the cotangent-weighted row derivatives."""
    n_q = jac.shape[1]
    g_params = np.zeros((n_sub, n_p))
    g_y0 = np.zeros((n_sub, n_q - n_p))
    g_sigma = np.zeros(n_a)
    for j in range(g.shape[0]):
        if g[j] == 0.0:
            continue
        s = subject_idx[j]
        for q in range(n_p):
            g_params[s, q] += g[j] * jac[j, q]
        for q in range(n_p, n_q):
            g_y0[s, q - n_p] += g[j] * jac[j, q]
        g_sigma[analyte_idx[j]] += g[j] * d_sigma[j]
    return g_params, g_y0, g_sigma


class RowScatterOp(Op):
    r"""``(g, jac, d_sigma, subject_idx, analyte_idx, log_params, sigma) -> (ḡ_params, ḡ_y0,
    ḡ_sigma)``: :math:`\bar g_{s q} = \sum_{j: s_j = s} g_j J_{j q}` split into parameters and
    initial states, and :math:`\bar g_a = \sum_{j: a_j = a} g_j\, \partial\ell_j/\partial
    \sigma_a` (``log_params`` and ``sigma`` give the shapes)."""

    __props__ = ("n_params",)

    def __init__(self, n_params: int):
        self.n_params = int(n_params)

    def make_node(self, g, jac, d_sigma, subject_idx, analyte_idx, log_params, sigma):
        inputs = [
            pt.as_tensor_variable(v)
            for v in (g, jac, d_sigma, subject_idx, analyte_idx, log_params, sigma)
        ]
        return Apply(self, inputs, [pt.dmatrix(), pt.dmatrix(), pt.dvector()])

    def perform(self, node, inputs, output_storage):
        g, jac, d_sigma, subject_idx, analyte_idx, log_params, sigma = inputs
        outs = row_scatter(
            np.asarray(g, float),
            jac,
            d_sigma,
            subject_idx,
            analyte_idx,
            log_params.shape[0],
            self.n_params,
            sigma.shape[0],
        )
        for k, value in enumerate(outs):
            output_storage[k][0] = value

    def infer_shape(self, node, shapes):
        n_sub = shapes[5][0]
        return [(n_sub, self.n_params), (n_sub, shapes[1][1] - self.n_params), shapes[6]]


@register_funcify_and_cache_key(ODELikelihoodOp)
def _numba_funcify_likelihood(op, node=None, **kwargs):
    kernel = get_likelihood_kernel(op.model, op.sensitivities)
    rtol, atol, max_steps = op.rtol, op.atol, op.max_steps

    @numba.njit(error_model="numpy")
    def ode_likelihood(log_params, log_y0, sigma, *data):
        # ``data``: observed and the LAYOUT arrays, in the Op's input order
        return kernel(
            np.ascontiguousarray(log_params),
            np.ascontiguousarray(log_y0),
            np.ascontiguousarray(sigma),
            *data,
            rtol,
            atol,
            max_steps,
        )

    key = cache_key(
        op.model, f"likelihood-op-{op.rtol}-{op.atol}-{op.max_steps}-{op.sensitivities}"
    )
    return ode_likelihood, key


@register_funcify_and_cache_key(RowScatterOp)
def _numba_funcify_row_scatter(op, node=None, **kwargs):
    n_p = op.n_params

    @numba.njit(error_model="numpy")
    def row_scatter_op(g, jac, d_sigma, subject_idx, analyte_idx, log_params, sigma):
        return row_scatter(
            g, jac, d_sigma, subject_idx, analyte_idx, log_params.shape[0], n_p, sigma.shape[0]
        )

    from cartfit.inference.solver import source_digest

    return row_scatter_op, f"cartfit-row-scatter-{n_p}-{source_digest()}"

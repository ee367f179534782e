r"""Compiled adaptive Dormand–Prince 5(4) solver with forward sensitivities.

For a model :math:`\dot y = f(t, y, p)` in log-state coordinates the solver integrates, for every
subject of a batch, the augmented system

.. math::

    \dot y = f(t, y, p), \qquad
    \dot S = J_y\, S + [\, J_p \operatorname{diag}(p) \;\; 0 \,], \qquad
    S(0) = [\, 0 \;\; I \,]

where :math:`S = \partial y / \partial \theta` is the sensitivity with respect to
:math:`\theta = (\ln p, \; y_0)` — the log parameters and the log initial states. Integrating
:math:`S` with the same Runge–Kutta steps as :math:`y` makes it the exact derivative of the discrete
solution for the accepted step sequence, so value and gradient agree.

Steps are chosen by the embedded error estimate of the states (mixed absolute/relative norm,
``atol + rtol |y|`` on log states, i.e. a relative error on the natural scale) and, separately,
of the sensitivities (same norm on :math:`S` with tolerances ``SENS_TOL_FACTOR`` times wider;
the larger of the two must be at most 1, as CVODES does with ``errconS``) with Hairer and
Wanner's PI controller. Controlling the states alone is not enough: where a state relaxes much
faster than the others (multi-fate memory cells at e^-10 fed by effectors), the states sit on
their slow manifold while the sensitivities' fast mode is integrated outside the method's
stability region and grows without bound (d ln M / d ln(memory death) 2.2e6 against ~1 from
finite differences, at a point where a chain of a data/example fit stopped). The sensitivities
need that stability and a modest accuracy, not the states' tolerance: the log density (what
the sampler's accept step and every reported number use) comes from the states alone, and
HMC/NUTS stays exact with an approximate gradient (the leapfrog map with any
position-dependent force is volume-preserving and reversible), which only has to be good
enough not to shrink the step size. With tolerances 10 times wider than the states' they
agree with central differences to 9e-5 (the multi-fate point above), 6e-4 (predator-prey,
Gompertz), 4e-3 (logistic) and 1.3e-2 (exponential) of the largest one, at 20 posterior
draws of data/example's fits; with the states' own tolerances to 4e-6-6e-4, at 20-27 % more
steps. Steps are not shortened for observation times: the states and
sensitivities at an observation time inside a step come from the method's continuous extension
of order 4 (linear in the stages, so it is differentiated exactly too). Only the last step is
clipped to end at the last observation time. A subject whose solve fails (non-finite values,
step size underflow, too many steps) gets ``status = 1`` and zeros in its outputs; the caller
turns that into a ``-inf`` log density for the draw.

Reference: Dormand & Prince, J Comput Appl Math 6:19 (1980); Hairer, Nørsett & Wanner, *Solving
ODEs I* (1993), II.4 (step control), II.6 (continuous
extension) and I.14 (internal differentiation); Hairer & Wanner's DOPRI5 code (PI control).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from cartfit.models.base import ODEModel, fused_kernel

# Dormand–Prince 5(4) tableau (Hairer, Nørsett & Wanner, Table II.5.2)
C2, C3, C4, C5 = 1 / 5, 3 / 10, 4 / 5, 8 / 9
A21 = 1 / 5
A31, A32 = 3 / 40, 9 / 40
A41, A42, A43 = 44 / 45, -56 / 15, 32 / 9
A51, A52, A53, A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
A61, A62, A63, A64, A65 = 9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656
B1, B3, B4, B5, B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
E1, E3, E4, E5, E6, E7 = (
    71 / 57600,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)

# continuous extension of order 4 (Hairer, Nørsett & Wanner, II.6; DOPRI5's CONTD5)
D1, D3, D4 = -12715105075 / 11282082432, 87487479700 / 32700410799, -10690763975 / 1880347072
D5, D6, D7 = 701980252875 / 199316789632, -1453857185 / 822651844, 69997945 / 29380423
# PI step-size control (Hairer & Wanner's DOPRI5 defaults): h_new = h * safety *
# err^-(1/5 - 0.75 beta) * err_old^beta, the factor kept within [1/5, 10]
BETA = 0.04
EXPO1 = 0.2 - 0.75 * BETA
SAFETY = 0.9
FAC_MIN_INV, FAC_MAX_INV = 5.0, 0.1  # 1/fac1, 1/fac2
LOG_ERR_FLOOR = math.log(1e-4)  # err_old is at least 1e-4

#: numba options of every compiled function here: IEEE semantics for NaN and infinity (the
#: failure checks need them) and no fast-math flags. With reassociation and reciprocals allowed,
#: a kernel compiled afresh (numba inlines the stages at IR level) and the same kernel loaded
#: from numba's disk cache differed in the last digit, and with them the draws of the same seed
#: on a machine's first run and on later ones; without them both are bit-identical
#: (tests/unit/test_compiled.py) and one gradient costs the same, 13.0-13.1 µs on the
#: one-subject benchmark cohort.
JIT = {"error_model": "numpy", "fastmath": False}

#: the sensitivities' error is held to tolerances this many times the states' (see above)
SENS_TOL_FACTOR = 10.0

STATUS_OK = 0
STATUS_FAILED = 1


def _in_place_kernels(model: ODEModel):
    """``(rhs_into, rhs_jac_into)`` of a model: its own, fused from its ``rhs_into`` and
    ``jac_into``, or wrappers of its pure rhs/jac."""
    if model.rhs_into is not None and model.rhs_jac_into is not None:
        return model.rhs_into, model.rhs_jac_into
    if model.rhs_into is not None and model.jac_into is not None:
        return model.rhs_into, fused_kernel(model.rhs_into, model.jac_into)
    rhs, jac = model.rhs, model.jac

    n_s = model.n_states

    @numba.njit(**JIT)
    def rhs_into(t, y, p, out):
        out[:n_s] = rhs(t, y[:n_s], p)

    @numba.njit(**JIT)
    def jac_into(t, y, p, jy, jp):
        a, b = jac(t, y[:n_s], p)
        jy[:, :] = a
        jp[:, :] = b

    return rhs_into, fused_kernel(rhs_into, jac_into)


def _make_augmented_rhs(model: ODEModel, n_s: int, n_p: int, with_sens: bool):
    # the stage function, error norm, continuous extension and output copy are inlined into
    # the solver (``inline="always"``): a call that passes arrays costs two atomic
    # reference-count updates per array, which were a quarter of a one-subject solve
    # (11 -> 8 us with them inlined)
    n_q = n_p + n_s
    rhs_into, rhs_jac_into = _in_place_kernels(model)

    if with_sens:

        @numba.njit(inline="always", **JIT)
        def aug(t, z, p, out, jy, jp):
            jy[:, :] = 0.0
            jp[:, :] = 0.0
            rhs_jac_into(t, z, p, out, jy, jp)
            for i in range(n_s):
                base = n_s + i * n_q
                for j in range(n_q):
                    acc = 0.0
                    for m in range(n_s):
                        acc += jy[i, m] * z[n_s + m * n_q + j]
                    if j < n_p:
                        acc += jp[i, j] * p[j]  # d/d ln p_j = p_j d/dp_j
                    out[base + j] = acc

    else:

        @numba.njit(inline="always", **JIT)
        def aug(t, z, p, out, jy, jp):
            rhs_into(t, z, p, out)

    return aug


@numba.njit(inline="always", **JIT)
def error_norm(lo, hi, h, z, znew, k1, k3, k4, k5, k6, k7, rtol, atol):
    r"""RMS over components ``lo:hi`` of the embedded error estimate
    :math:`h \sum_i e_i k_i` scaled by ``atol + rtol max(|z|, |z_new|)``."""
    err = 0.0
    for i in range(lo, hi):
        e = h * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i] + E7 * k7[i])
        sc = atol + rtol * max(abs(z[i]), abs(znew[i]))
        err += (e / sc) ** 2
    return np.sqrt(err / (hi - lo))


@numba.njit(inline="always", **JIT)
def dense(theta, h, z, znew, k1, k3, k4, k5, k6, k7, out):
    r"""The continuous extension at :math:`t + \theta h` of the accepted step from ``z`` to
    ``znew``: :math:`y = z + \theta(\Delta + (1-\theta)(b + \theta(\Delta - h k_7 - b +
    (1-\theta) r_5)))` with :math:`\Delta = z_{new} - z`, :math:`b = h k_1 - \Delta` and
    :math:`r_5 = h \sum_i d_i k_i`. It is linear in the stages, so the sensitivities it gives
    are the exact derivatives of the interpolated discrete solution."""
    t1 = 1.0 - theta
    for i in range(z.shape[0]):
        diff = znew[i] - z[i]
        bspl = h * k1[i] - diff
        r5 = h * (D1 * k1[i] + D3 * k3[i] + D4 * k4[i] + D5 * k5[i] + D6 * k6[i] + D7 * k7[i])
        out[i] = z[i] + theta * (diff + t1 * (bspl + theta * (diff - h * k7[i] - bspl + t1 * r5)))


def _make_batch_solver(model: ODEModel, with_sens: bool):
    n_s, n_p = model.n_states, model.n_params
    n_q = n_p + n_s
    n_z = n_s + (n_s * n_q if with_sens else 0)
    aug = _make_augmented_rhs(model, n_s, n_p, with_sens)

    @numba.njit(inline="always", **JIT)
    def emit(z, ys, sens, s, it):
        """Copy the log states (and sensitivities) ``z`` into output row ``[s, it]``; False if
        any is not finite. (Indices rather than row views: a view costs two atomic reference
        count updates, which were 8 % of a solve.)"""
        for i in range(n_s):
            if not np.isfinite(z[i]):
                return False
            ys[s, it, i] = z[i]
        if with_sens:
            for i in range(n_s):
                for j in range(n_q):
                    v = z[n_s + i * n_q + j]
                    if not np.isfinite(v):
                        return False
                    sens[s, it, i, j] = v
        return True

    @numba.njit(**JIT)
    def solve_one(p, y0, times, n_t, rtol, atol, max_steps, ys, sens, s):
        z = np.zeros(n_z)
        z[:n_s] = y0
        if with_sens:
            for i in range(n_s):
                z[n_s + i * n_q + n_p + i] = 1.0
        k1, k2, k3, k4 = np.empty(n_z), np.empty(n_z), np.empty(n_z), np.empty(n_z)
        k5, k6, k7 = np.empty(n_z), np.empty(n_z), np.empty(n_z)
        zt, znew = np.empty(n_z), np.empty(n_z)
        jy, jp = np.zeros((n_s, n_s)), np.zeros((n_s, n_p))
        t = 0.0
        it = 0
        while it < n_t and times[it] <= t:  # outputs at t = 0
            if not emit(z, ys, sens, s, it):
                return STATUS_FAILED
            it += 1
        if it == n_t:
            return STATUS_OK
        t_end = times[n_t - 1]
        aug(t, z, p, k1, jy, jp)
        # initial step: a small fraction of the first interval (Hairer's h0 heuristic, simplified)
        d0 = 0.0
        d1 = 0.0
        for i in range(n_s):
            sc = atol + rtol * abs(z[i])
            d0 += (z[i] / sc) ** 2
            d1 += (k1[i] / sc) ** 2
        d0 = np.sqrt(d0 / n_s)
        d1 = np.sqrt(d1 / n_s)
        h = 1e-3 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h = min(max(h, 1e-6), 1.0)
        # PI step-size control (Hairer & Wanner's DOPRI5: beta 0.04) on log errors:
        # err^EXPO1 / err_old^BETA as one exp, where two pows were 8 % of a solve
        log_err_old = LOG_ERR_FLOOR
        steps = 0
        while it < n_t:
            if steps >= max_steps or h < 1e-12:
                return STATUS_FAILED
            last = t + h >= t_end
            h_try = t_end - t if last else h
            for i in range(n_z):
                zt[i] = z[i] + h_try * A21 * k1[i]
            aug(t + C2 * h_try, zt, p, k2, jy, jp)
            for i in range(n_z):
                zt[i] = z[i] + h_try * (A31 * k1[i] + A32 * k2[i])
            aug(t + C3 * h_try, zt, p, k3, jy, jp)
            for i in range(n_z):
                zt[i] = z[i] + h_try * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i])
            aug(t + C4 * h_try, zt, p, k4, jy, jp)
            for i in range(n_z):
                zt[i] = z[i] + h_try * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i])
            aug(t + C5 * h_try, zt, p, k5, jy, jp)
            for i in range(n_z):
                zt[i] = z[i] + h_try * (
                    A61 * k1[i] + A62 * k2[i] + A63 * k3[i] + A64 * k4[i] + A65 * k5[i]
                )
            aug(t + h_try, zt, p, k6, jy, jp)
            for i in range(n_z):
                znew[i] = z[i] + h_try * (
                    B1 * k1[i] + B3 * k3[i] + B4 * k4[i] + B5 * k5[i] + B6 * k6[i]
                )
            aug(t + h_try, znew, p, k7, jy, jp)
            err = error_norm(0, n_s, h_try, z, znew, k1, k3, k4, k5, k6, k7, rtol, atol)
            if with_sens:  # the sensitivities' own error, as CVODES does with errconS
                err_s = error_norm(n_s, n_z, h_try, z, znew, k1, k3, k4, k5, k6, k7, rtol, atol)
                err = max(err, err_s / SENS_TOL_FACTOR)
            steps += 1
            if not np.isfinite(err):
                h = 0.25 * h_try
                continue
            log_err = np.log(err)
            if err > 1.0:  # rejected
                fac = np.exp(EXPO1 * log_err)
                h = h_try / min(FAC_MIN_INV, fac / SAFETY)
                continue
            # accepted: outputs inside (t, t + h_try] from the continuous extension
            t_new = t_end if last else t + h_try
            while it < n_t and times[it] <= t_new:
                if times[it] >= t_new:
                    ok = emit(znew, ys, sens, s, it)
                else:
                    theta = (times[it] - t) / h_try
                    dense(theta, h_try, z, znew, k1, k3, k4, k5, k6, k7, zt)
                    ok = emit(zt, ys, sens, s, it)
                if not ok:
                    return STATUS_FAILED
                it += 1
            t = t_new
            for i in range(n_z):
                z[i] = znew[i]
                k1[i] = k7[i]  # first same as last
            fac = np.exp(EXPO1 * log_err - BETA * log_err_old)
            fac = min(FAC_MIN_INV, max(FAC_MAX_INV, fac / SAFETY))
            log_err_old = max(log_err, LOG_ERR_FLOOR)
            h = h_try / fac
        return STATUS_OK

    @numba.njit(**JIT)
    def solve_batch(log_params, log_y0, times, n_times, rtol, atol, max_steps):
        n_sub, n_t = times.shape
        ys = np.zeros((n_sub, n_t, n_s))
        sens = np.zeros((n_sub, n_t, n_s, n_q if with_sens else 0))
        status = np.zeros(n_sub, dtype=np.int64)
        for s in range(n_sub):
            p = np.exp(log_params[s])
            st = solve_one(p, log_y0[s], times[s], n_times[s], rtol, atol, max_steps, ys, sens, s)
            if st != STATUS_OK:
                status[s] = st
                ys[s] = 0.0
                sens[s] = 0.0
            else:
                # padded entries repeat the last solved time
                for it in range(n_times[s], n_t):
                    ys[s, it] = ys[s, n_times[s] - 1] if n_times[s] > 0 else log_y0[s]
                    if with_sens and n_times[s] > 0:
                        sens[s, it] = sens[s, n_times[s] - 1]
        return ys, sens, status

    return solve_batch


#: compiled functions by (what, id of the model, with_sens), each kept with its model so that
#: the id cannot pass to another model object while the entry exists
_COMPILED: dict[tuple[str, int, bool], tuple[ODEModel, Callable]] = {}


def compiled_for(model: ODEModel, with_sens: bool, what: str, make: Callable) -> Callable:
    """``make(model, with_sens)``, built once per process and model and cached on disk under
    :func:`cache_key` (``what`` names the function: the solver, the likelihood kernel)."""
    key = (what, id(model), with_sens)
    if key not in _COMPILED:
        fn = make(model, with_sens)
        disk_key = cache_key(model, f"{what}-{with_sens}")
        if disk_key is not None:
            _cache_on_disk(fn, disk_key)
        _COMPILED[key] = (model, fn)
    return _COMPILED[key][1]


def get_batch_solver(model: ODEModel, with_sens: bool = True) -> Callable:
    """Compiled ``solve_batch(log_params, log_y0, times, n_times, rtol, atol, max_steps)``.

    Parameters of the returned function
    -----------------------------------
    log_params : (n_subjects, n_params) log of the model parameters.
    log_y0 : (n_subjects, n_states) log initial states at ``t = 0``.
    times : (n_subjects, n_times) sorted output times ``>= 0`` (days); rows are padded by
        repeating their last time.
    n_times : (n_subjects,) int, number of valid times per row.

    Returns
    -------
    ys : (n_subjects, n_times, n_states) log states at ``times``.
    sens : (n_subjects, n_times, n_states, n_params + n_states) ``d ys / d (log_params, log_y0)``
        (last axis empty when ``with_sens`` is false).
    status : (n_subjects,) 0 = solved, 1 = failed.
    """
    return compiled_for(model, with_sens, "solver", _make_batch_solver)


def _cache_on_disk(dispatcher, key: str) -> None:
    """Cache a compiled closure in PyTensor's numba cache directory under ``key``.

    numba keys a closure's cache entry by its pickled cell contents, which for these closures
    (other compiled closures) differ in every process: each process would add an entry and
    never load one. ``key`` already fixes what the closure computes (:func:`cache_key`), so the
    entry is keyed by it alone. Uses numba's ``FunctionCache`` internals; without them the
    function is simply not cached."""
    try:
        from numba.core.caching import FunctionCache
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

        class _KeyedCache(FunctionCache):
            def _index_key(self, sig, codegen):
                return (sig, codegen.magic_tuple(), (key,))

        CACHED_SRC_FUNCTIONS[dispatcher.py_func] = key  # PyTensor's locator finds it there
        dispatcher._cache = _KeyedCache(dispatcher.py_func)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - other numba internals
        pass


@functools.cache
def source_digest() -> str:
    """SHA-256 of the source of everything a solver compiles: this module, the compiled
    likelihood and every model and growth-law module (kernels import helpers from their
    neighbours)."""
    root = Path(__file__).resolve().parent.parent
    files = [Path(__file__).resolve(), Path(__file__).resolve().parent / "likelihood.py",
             *sorted((root / "models").glob("*.py")),
             *sorted((root / "growth").glob("*.py"))]  # fmt: skip
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def cache_key(model: ODEModel, what: str) -> str | None:
    """Key of a compiled function of ``model`` in PyTensor's numba cache, or None (not cached)
    for a model that is not the registry's (``cartfit.models.get_model``): only a registered
    model is fixed by its name and growth law."""
    from cartfit.models import MODEL_NAMES, get_model

    growth = model.extras.get("growth_law")
    if growth is None or model.name not in MODEL_NAMES:
        return None
    if get_model(model.name, growth.name) is not model:
        return None
    return f"cartfit-{what}-{model.name}-{growth.name}-{source_digest()}"

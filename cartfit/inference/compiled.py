"""nutpie's compiled model with its two C callbacks cached on disk.

nutpie calls the log density (with gradient) and the deterministics of a PyMC model through two
numba ``cfunc`` callbacks. PyTensor caches the numba functions of the two graphs, but nutpie's
callbacks close over per-process values (random keys of the shared variables, their initial
arrays), so numba compiles them again in every process: linking the whole graph, ODE solver
included, optimising and emitting machine code. On a 20-subject predator–prey population that
took 16 of the 17 s of ``nutpie.compile_pymc_model``, and most of a one-subject fit's wall time.

Here the callbacks are generated as source whose only inputs are the graph functions, the
dimensions and the layout of the shared variables, registered with PyTensor's numba cache under
a key made of that source and PyTensor's keys of the two graphs, and compiled with
``cache=True``: a second process with the same model structure loads them from disk. They do
what nutpie's do: read each shared variable's pointer and shape from nutpie's ``user_data``
record (so :meth:`with_data` keeps working), call the graph function, copy the results out, and
return nutpie's status codes (3: non-finite gradient, 4: non-finite log density). The sizes of
the data are read at run time, so one compiled pair serves every data set of the same model
structure and number of parameters.

This relies on helpers private to nutpie (``nutpie.compile_pymc``); if they are missing the
model is compiled by ``nutpie.compile_pymc_model`` as before.

The expand callback returns the sampler's coordinates only; what a fit stores per draw is
evaluated after sampling (:mod:`cartfit.inference.stored`), which compiles nothing: stored by
nutpie, the deterministics were compiled into this callback at each model structure's first
fit, and the observations' predicted means with them linked the solver a second time (a
one-subject predator–prey fit: 10.6 s for this callback, 4.2 s without the predicted means).

Both are compiled without PyTensor's fast-math flags (``numba__fastmath``): with them, a graph
compiled afresh and the same graph loaded from numba's disk cache could differ in the last
digit of the log density, so the first run on a machine and later runs of the same seed gave
different draws (data/example's 16-subject population: the L-BFGS starts already parted). On
that population the gradient costs 305-306 µs either way.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from cartfit.errors import CartfitError

#: bump when the generated source or the user-data layout it assumes changes
WRAPPER_VERSION = 1

_LOGP = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        ud = numba.carray(user_data_, ({n_words},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, ({n_dim},))
        logp = numba.carray(logp_, ())
{extract}
        logp_val, grad = inner(x{args})
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
        ud = numba.carray(user_data_, ({n_words},), np.uint64)
        x = numba.carray(x_, ({n_dim},))
        out = numba.carray(out_, (expanded,))
{extract}
        (values,) = inner(x{args})
        if values.shape[0] != expanded:
            return -1
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _extract_lines(order: list[int], ndims: list[int], dtypes: list[np.dtype]) -> str:
    """Source lines reading shared variables ``order`` (indices into the record) from ``ud``.

    nutpie's record (``make_user_data``) is packed: the K data pointers, the K sizes, then each
    variable's shape (ndim words)."""
    k = len(ndims)
    offsets = np.concatenate([[2 * k], 2 * k + np.cumsum(ndims)]).astype(int)
    lines = []
    for j, i in enumerate(order):
        shape = ", ".join(f"int(ud[{offsets[i] + a}])" for a in range(ndims[i]))
        shape = f"({shape},)" if ndims[i] == 1 else f"({shape})"
        lines.append(
            f"        s{j} = numba.carray(address_as_void_pointer(ud[{i}]), {shape}, "
            f"np.{np.dtype(dtypes[i]).name})"
        )
    return "\n".join(lines)


def _callback(template, name, inner, order, ndims, dtypes, sizes, signature):
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.configdefaults import config
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    src = template.format(
        extract=_extract_lines(order, ndims, dtypes),
        args="".join(f", s{j}" for j in range(len(order))),
        n_words=2 * len(ndims) + sum(ndims),
        **sizes,
    )
    graph_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    key = None
    if graph_key is not None and config.numba__cache:
        text = f"cartfit callback {WRAPPER_VERSION}\n{graph_key}\n{numba.__version__}\n{src}"
        key = hashlib.sha256(text.encode()).hexdigest()
    env = {
        "__name__": __name__,  # numba rebuilds a cached function's environment from this module
        "numba": numba,
        "np": np,
        "inner": inner,
        "address_as_void_pointer": address_as_void_pointer,
    }
    fn = compile_numba_function_src(src, name, env, cache_key=key)
    return numba.cfunc(signature, cache=key is not None)(fn)


def compile_model(model, jitter_rvs=None):
    """``nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=jitter_rvs)`` with the two
    callbacks cached on disk and IEEE arithmetic (see the module docstring)."""
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        return _compile_model(model, jitter_rvs)


def _compile_model(model, jitter_rvs):
    import nutpie

    stored: list[str] = []  # the sampler's coordinates only: see cartfit.inference.stored
    try:
        from nutpie.compile_pymc import (  # noqa: F401 (address_as_void_pointer: _callback)
            CompiledPyMCModel,
            _make_functions,
            _prepare_dims_and_coords,
            _wrap_with_lock,
            address_as_void_pointer,
            make_user_data,
        )
    except ImportError:  # pragma: no cover - a nutpie without these helpers
        return nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=jitter_rvs,
                                         var_names=stored)  # fmt: skip
    import numba
    from pymc.initial_point import make_initial_point_fn

    if jitter_rvs is None:
        jitter_rvs = set(model.free_RVs)
    point_fn = make_initial_point_fn(
        model=model, jitter_rvs=jitter_rvs, default_strategy="support_point",
        return_transformed=True,
    )  # fmt: skip
    n_dim, n_expanded, logp_pt, expand_pt, initial_point_fn, shape_info, reparam = (
        _make_functions(
            model, mode="NUMBA", compute_grad=True, join_expanded=True,
            pymc_initial_point_fn=_wrap_with_lock(point_fn), var_names=stored,
        )
    )  # fmt: skip
    shared = list(dict.fromkeys([*logp_pt.get_shared(), *expand_pt.get_shared()]))
    keys = {var: f"shared{i}" for i, var in enumerate(shared)}
    data = {}
    for var in shared:
        data[keys[var]] = np.array(var.get_value(), order="C", copy=True)
        data[keys[var]].flags.writeable = False
    user_data = make_user_data(keys, data)
    ndims = [data[keys[v]].ndim for v in shared]
    dtypes = [data[keys[v]].dtype for v in shared]
    if user_data.dtype.itemsize != 8 * (2 * len(shared) + sum(ndims)):
        raise RuntimeError("nutpie's user-data record is not the layout the callbacks read")
    sizes = {"n_dim": n_dim}  # not the number of deterministics: it varies with the data
    c = numba.types
    logp_sig = c.int64(c.uint64, c.CPointer(c.double), c.CPointer(c.double),
                       c.CPointer(c.double), c.voidptr)  # fmt: skip
    expand_sig = c.int64(c.uint64, c.uint64, c.CPointer(c.double), c.CPointer(c.double),
                         c.voidptr)  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=numba.NumbaWarning)
        logp_c = _callback(_LOGP, "logp_callback", logp_pt.vm.jit_fn,
                           [shared.index(v) for v in logp_pt.get_shared()], ndims, dtypes,
                           sizes, logp_sig)  # fmt: skip
        expand_c = _callback(_EXPAND, "expand_callback", expand_pt.vm.jit_fn,
                             [shared.index(v) for v in expand_pt.get_shared()], ndims, dtypes,
                             sizes, expand_sig)  # fmt: skip
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparam)
    return CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_c,
        compiled_expand_func=expand_c,
        initial_point_func=initial_point_fn,
        shared_data=data,
        shared_var_keys=keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_pt,
        expand_func=expand_pt,
        reparameterized_names=reparam,
    )


#: largest relative difference of the log density from the reference evaluation (the two
#: solve the same ODE with the same compiled solver; they differ only in the order of sums,
#: 1e-13 on the models and cohorts of tests/unit/test_backend.py)
REFERENCE_RTOL = 1e-8


def check_against_reference(pm_model, logp_dlogp, stored, x: np.ndarray, point_map_info) -> None:
    """Raise if the compiled log density, gradient or stored quantities at ``x`` (the model's
    raveled free variables, laid out as ``point_map_info``) or at a fixed point near it differ
    from PyTensor's reference evaluation of the same model (``FAST_COMPILE``: the Python
    linker, without the graph rewrites that fuse and reorder operations).

    ``logp_dlogp`` (the numba function nutpie samples with), ``stored`` (the quantities written
    to the fit file, all draws at once: :func:`cartfit.inference.stored.stored_function`) and
    the model's ``cartfit_predict`` (``mu_obs`` from the stored theta and initial states, from
    which the pointwise log-likelihood is computed) are what the fit reports. A graph rewrite
    that gets them wrong changes the posterior without any error: PyTensor 3.3.8 fused one form
    of the pre-infusion rows into a log density of -794.0 where the model's is -513.5
    (tests/unit/test_backend.py). The check costs 1.1 s in a one-subject predator–prey fit,
    3-9 s in 16-subject escape and multi-fate populations. Points where the log density is
    non-finite in both (a failed solve) are skipped."""
    from pymc.blocking import DictToArrayBijection, RaveledVars

    from cartfit.inference.stored import stored_names

    reference = pm_model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    reference.set_extra_values({})
    names = stored_names(pm_model)
    predict = getattr(pm_model, "cartfit_predict", None)
    if predict is not None:
        names.append("mu_obs")
    stored_values = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model[n] for n in names]),
        inputs=pm_model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore",
        point_fn=False,
    )  # fmt: skip
    # the initial point, where every subject effect is often exactly 0 (a fault that mixes up
    # two forms of the effects would not show there), and a fixed point next to it
    x = np.asarray(x, float)
    nearby = x + 0.1 * np.random.default_rng(0).standard_normal(x.size)
    for point in (x, nearby):
        ref_logp, ref_grad = (np.asarray(v, float) for v in reference(point))
        logp, grad = logp_dlogp(point)
        if not (np.isfinite(ref_logp) or np.isfinite(logp)):
            continue
        scale = max(1.0, float(np.abs(ref_grad).max()))
        worst_grad = float(np.abs(np.asarray(grad) - ref_grad).max()) / scale
        if abs(logp - ref_logp) > REFERENCE_RTOL * max(1.0, abs(ref_logp)) or worst_grad > 1e-6:
            _disagree(
                f"log density {float(logp):.10g} against {float(ref_logp):.10g}, gradient off "
                f"by {worst_grad:.2g} of its largest entry"
            )
        values = stored_values(**DictToArrayBijection.rmap(RaveledVars(point, point_map_info)))
        ours = stored(point[None])
        if predict is not None:
            ours["mu_obs"] = predict(ours["theta"], ours["log_y0"])
        for name, value in zip(names, values, strict=True):
            got = np.ravel(ours[name])
            if not np.allclose(got, np.ravel(value), rtol=REFERENCE_RTOL, atol=1e-12):
                worst = float(np.abs(got - np.ravel(value)).max())
                _disagree(f"{name} off by up to {worst:.3g}")


def _disagree(what: str):
    import pytensor

    raise CartfitError(
        "the compiled model disagrees with PyTensor's reference evaluation of the same model "
        f"at the start point or next to it ({what}): the sampler would sample, or the fit file "
        f"would store, something else than the model. This is a compilation error (PyTensor "
        f"{pytensor.__version__}), not a problem of the data; nothing was sampled or written"
    )

"""The disk-cached nutpie callbacks (cartfit.inference.compiled): same numbers as PyMC's own log
density, the shared data read through nutpie's user-data record, and one compilation per model
structure rather than per data set."""

import ctypes

import numpy as np
import pytest

pytest.importorskip("nutpie")

LOGP_SIG = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.c_void_p)  # fmt: skip
EXPAND_SIG = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p)  # fmt: skip


def _one_subject(subject: str):
    from cartfit.data import load_cohort
    from cartfit.inference import FitSettings, build_model, prepare
    from cartfit.models import get_model

    ode = get_model("predator_prey", "gompertz")
    s = FitSettings()
    data = prepare(load_cohort("data/example"), ode, [subject])
    return build_model(ode, data, rtol=s.rtol, atol=s.atol)


def _callback_logp(compiled, x):
    f = LOGP_SIG(compiled.compiled_logp_func.address)
    x = np.ascontiguousarray(x, float)
    grad, logp = np.zeros_like(x), np.zeros(())
    code = f(x.size, x.ctypes.data, grad.ctypes.data, logp.ctypes.data,
             compiled.user_data.ctypes.data)  # fmt: skip
    return code, float(logp), grad


def _reference(pm_model, compiled, x):
    """PyMC's log density and gradient at the raveled unconstrained point ``x``."""
    point, offset = {}, 0
    for name, _, shape in zip(*compiled.shape_info, strict=False):
        size = int(np.prod(shape))
        point[name] = x[offset : offset + size].reshape(shape)
        offset += size
        if offset == x.size:
            break
    logp = pm_model.compile_logp()(point)
    grads = pm_model.compile_dlogp()(point)
    return float(logp), np.asarray(grads)


def test_callbacks_match_pymc_and_follow_with_data():
    from cartfit.inference.compiled import compile_model

    pm_model = _one_subject("S01")
    compiled = compile_model(pm_model)
    x = np.linspace(-0.3, 0.3, compiled.n_dim)
    code, logp, grad = _callback_logp(compiled, x)
    ref_logp, ref_grad = _reference(pm_model, compiled, x)
    assert code == 0
    assert logp == pytest.approx(ref_logp, rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9)

    # the deterministics callback writes the free variables first, then the deterministics
    f = EXPAND_SIG(compiled.compiled_expand_func.address)
    out = np.zeros(compiled.n_expanded)
    assert f(x.size, out.size, x.ctypes.data, out.ctypes.data, compiled.user_data.ctypes.data) == 0
    np.testing.assert_allclose(out[: x.size], x)

    # new data through nutpie's with_data reach the compiled callback (no recompilation)
    name = "data_observed"
    observed = next(v for v in compiled.shared_var_keys if v.name == name).get_value()
    moved = compiled.with_data(**{name: observed + 0.5})
    _, logp_moved, _ = _callback_logp(moved, x)
    shared = next(v for v in _shared(pm_model) if v.name == name)
    shared.set_value(observed + 0.5)
    assert logp_moved == pytest.approx(_reference(pm_model, compiled, x)[0], rel=1e-12)
    assert abs(logp_moved - logp) > 1.0


def _shared(pm_model):
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.sharedvar import TensorSharedVariable

    return [v for v in ancestors([pm_model.logp()]) if isinstance(v, TensorSharedVariable)]


def test_second_subject_loads_the_compiled_callbacks_from_the_cache():
    """S01 and S02 differ only in their data: the callbacks compiled (or loaded) for one are
    loaded from disk for the other, with the other's numbers."""
    from cartfit.inference.compiled import compile_model

    compile_model(_one_subject("S01"))
    pm_model = _one_subject("S02")
    compiled = compile_model(pm_model)
    assert compiled.compiled_logp_func.cache_hits == 1
    assert compiled.compiled_expand_func.cache_hits == 1
    x = np.linspace(-0.2, 0.4, compiled.n_dim)
    code, logp, grad = _callback_logp(compiled, x)
    assert code == 0
    assert logp == pytest.approx(_reference(pm_model, compiled, x)[0], rel=1e-12, abs=1e-9)


SOLVE_ONCE = """
import numpy as np
from cartfit.inference.solver import get_batch_solver
from cartfit.models import get_model
ode = get_model("predator_prey", "logistic")
solve = get_batch_solver(ode, False)
ys, _, status = solve(np.zeros((1, ode.n_params)), np.zeros((1, ode.n_states)),
                      np.array([[1.0, 2.0]]), np.array([2]), 1e-5, 1e-5, 1000)
print(sum(solve.stats.cache_hits.values()), repr(float(ys.sum())), int(status[0]))
"""


def test_solver_is_compiled_once_per_machine_not_per_process():
    """The solver closure is loaded from disk by a second process (numba alone would key it by
    its closure cells, which differ in every process, and never find it)."""
    import subprocess
    import sys

    runs = [
        subprocess.run(
            [sys.executable, "-c", SOLVE_ONCE], capture_output=True, text=True, check=True
        ).stdout.split()  # fmt: skip
        for _ in range(2)
    ]
    assert runs[1][0] == "1"
    assert runs[0][1:] == runs[1][1:] and runs[1][2] == "0"


LIKELIHOOD_ONCE = """
import numpy as np
from cartfit.inference.likelihood import get_likelihood_kernel
from cartfit.models import get_model
ode = get_model("predator_prey", "gompertz")
kernel = get_likelihood_kernel(ode, True)
w = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
out = kernel(np.full((1, ode.n_params), -1.0), np.zeros((1, 2)), np.array([0.3, 0.4]),
             np.array([0.1, -0.2, 0.5]), np.array([[1.0, 2.0]]), np.array([2]), w, w[:2],
             np.zeros(3, np.int64), np.array([0, 1, 0]), np.array([0, 1, 1]),
             np.array([1.0, 2.0, -5.0]), np.array([False, True, False]),
             np.array([False, False, True]), 1e-5, 1e-5, 1000)
print(sum(kernel.stats.cache_hits.values()), repr(float(out[0].sum())), repr(float(out[2].sum())))
"""


def test_likelihood_kernel_is_compiled_once_per_machine_with_the_same_numbers(tmp_path):
    """In an empty compile cache, the first process compiles the likelihood (solver included),
    the second loads it from disk, and both give the same numbers to the last digit (the same
    seed, the same draws; the solver test above is the one that caught fused multiply-adds
    making them differ)."""
    import os
    import subprocess
    import sys

    env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", LIKELIHOOD_ONCE],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.split()  # fmt: skip
        for _ in range(2)
    ]
    assert [runs[0][0], runs[1][0]] == ["0", "1"]
    assert runs[0][1:] == runs[1][1:]


def test_only_registered_models_get_a_cache_key():
    from cartfit.growth import get_growth_law
    from cartfit.inference.solver import cache_key
    from cartfit.models import get_model, make_predator_prey

    assert cache_key(get_model("predator_prey", "gompertz"), "x").startswith("cartfit-x-")
    # same name and growth law, but not the registry's object: its kernels could differ
    assert cache_key(make_predator_prey(get_growth_law("gompertz")), "x") is None

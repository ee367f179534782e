"""The compiled (numba) log density and gradient that nutpie samples equal PyTensor's reference
evaluation of the same graph.

nutpie runs PyTensor's numba build of the model. A wrong rewrite or kernel there changes the
posterior without any error: with PyTensor 3.3.8, a population graph that read the growth-law
parameters of the pre-infusion rows as ``pt.exp(log_theta[:, :n])[s_idx]`` gave a log density
of -794.0 against -513.5 from the Python evaluation when the cohort had no covariate (the form
used now gives -513.5 in both). These tests compare the two backends on population models with
every kind of row (pre-infusion, censored (BLQ) and quantified readings of three analytes), with
and without a co-stimulation covariate.
"""

import numpy as np
import pandas as pd
import pytest

from cartfit.data import load_cohort
from cartfit.errors import CartfitError
from cartfit.inference import build_model, prepare
from cartfit.inference.compiled import check_against_reference, compile_model
from cartfit.inference.stored import stored_function
from cartfit.inference.whiten import whitened_model
from cartfit.io import write_cohort
from cartfit.models import get_model


def _cohort(out, costim: bool):
    """Two subjects (CD28 and 4-1BB with ``costim``) with pre-infusion, quantified and BLQ rows
    of CAR T, tumour and antigen-negative tumour."""
    rows = []
    for s, scale in (("P1", 1.0), ("P2", 2.0)):
        rows += [
            (s, -14.0, "tumor", 30.0 * scale, "mm2", 1.0, 0),
            (s, -7.0, "tumor", 40.0 * scale, "mm2", 1.0, 0),
            (s, 7.0, "tumor", 20.0, "mm2", 1.0, 0),
            (s, 28.0, "tumor", np.nan, "mm2", 1.0, 1),
            (s, 7.0, "tumor_antigen_neg", np.nan, "mm2", 1.0, 1),
            (s, 90.0, "tumor_antigen_neg", 3.0 * scale, "mm2", 1.0, 0),
            (s, 7.0, "car_t", 3000.0 * scale, "copies/ug", 5.0, 0),
            (s, 28.0, "car_t", 300.0, "copies/ug", 5.0, 0),
            (s, 90.0, "car_t", np.nan, "copies/ug", 5.0, 1),
        ]
    cols = ["subject", "time", "analyte", "value", "unit", "lloq", "blq"]
    subjects = pd.DataFrame({"subject": ["P1", "P2"], "dose": [1e8, 2e8]})
    if costim:
        subjects["costim"] = ["CD28", "4-1BB"]
    write_cohort(out, pd.DataFrame(rows, columns=cols), subjects)
    return load_cohort(out)


@pytest.mark.parametrize(
    ("model_name", "growth", "costim"),
    [
        ("predator_prey", "gompertz", False),
        ("predator_prey", "logistic", True),
        ("escape", "gompertz", True),
    ],
)
def test_numba_log_density_and_gradient_equal_the_reference(tmp_path, model_name, growth, costim):
    """At three random points the numba log density agrees with PyTensor's Python evaluation
    to 1e-9 of its value and the gradient to 1e-7 of its largest entry (the graphs are the same;
    only the order of floating-point sums may differ)."""
    model = get_model(model_name, growth)
    cohort = _cohort(tmp_path / "cohort", costim)
    pm_model = build_model(model, prepare(cohort, model), population=True)
    fast = (pm_model.compile_logp(mode="NUMBA"), pm_model.compile_dlogp(mode="NUMBA"))
    reference = (
        pm_model.compile_logp(mode="FAST_COMPILE"),
        pm_model.compile_dlogp(mode="FAST_COMPILE"),
    )
    rng = np.random.default_rng(3)
    start = pm_model.initial_point()
    for _ in range(3):
        point = {k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in start.items()}
        logp, ref_logp = fast[0](point), reference[0](point)
        assert np.isfinite(ref_logp)
        assert logp == pytest.approx(ref_logp, rel=1e-9)
        grad, ref_grad = fast[1](point), reference[1](point)
        np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-7 * np.abs(ref_grad).max())


def test_fits_stop_when_the_compiled_model_is_not_the_model(tmp_path):
    """The check run before sampling passes the compiled functions nutpie and the fit file use,
    and stops, naming what differs, when the log density is off by 1e-6 of its value, the
    gradient by 1 %, a stored quantity (the subjects' parameters) by 1e-6, or the observations'
    predicted means computed from them after sampling by 1e-6."""
    model = get_model("predator_prey", "gompertz")
    pm_model = build_model(model, prepare(_cohort(tmp_path / "c", False), model), population=True)
    whitened = whitened_model(pm_model)
    compiled = compile_model(whitened.model)
    x, info = whitened.x_init, whitened.point_map_info
    stored = stored_function(pm_model, info)

    def right(v):
        logp, grad = compiled.logp_func(np.array(v, dtype=float))
        return float(logp), np.asarray(grad, float)

    check_against_reference(pm_model, right, stored, x, info)
    off = right(x)[0] * 1e-6
    with pytest.raises(CartfitError, match="log density .* against .* nothing was sampled"):
        check_against_reference(
            pm_model, lambda v: (right(v)[0] + off, right(v)[1]), stored, x, info
        )
    with pytest.raises(CartfitError, match="gradient off by"):
        check_against_reference(
            pm_model, lambda v: (right(v)[0], 1.01 * right(v)[1]), stored, x, info
        )

    def shifted(xs):  # the stored parameters off by 1e-6
        out = stored(xs)
        out["theta"] = out["theta"] * (1.0 + 1e-6)
        return out

    with pytest.raises(CartfitError, match="theta off by"):
        check_against_reference(pm_model, right, shifted, x, info)
    predict = pm_model.cartfit_predict
    pm_model.cartfit_predict = lambda theta, log_y0: predict(theta, log_y0) * (1.0 + 1e-6)
    with pytest.raises(CartfitError, match="mu_obs off by"):
        check_against_reference(pm_model, right, stored, x, info)


def test_stored_quantities_of_many_draws_equal_the_model_at_each(tmp_path):
    """The quantities a fit stores are evaluated after sampling for all draws at once (the
    model's graph vectorised over the draws); at every draw they equal the model's own
    deterministics there, and the predicted means equal the likelihood Op's."""
    from pymc.blocking import DictToArrayBijection, RaveledVars

    model = get_model("predator_prey", "gompertz")
    pm_model = build_model(model, prepare(_cohort(tmp_path / "c", True), model), population=True)
    whitened = whitened_model(pm_model)
    info = whitened.point_map_info
    stored = stored_function(pm_model, info)
    names = list(stored(whitened.x_init[None]))
    assert "theta" in names and "log_y0" in names and "mu_obs" not in names
    reference = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model[n] for n in [*names, "mu_obs"]]),
        inputs=pm_model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore",
        point_fn=False,
    )  # fmt: skip
    xs = whitened.x_init + 0.3 * np.random.default_rng(2).standard_normal((5, whitened.n_dim))
    batch = stored(xs)
    means = pm_model.cartfit_predict(batch["theta"], batch["log_y0"])
    for d, x in enumerate(xs):
        *values, mu = reference(**DictToArrayBijection.rmap(RaveledVars(x, info)))
        for name, value in zip(names, values, strict=True):
            np.testing.assert_allclose(batch[name][d], value, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(means[d], mu, rtol=1e-10, atol=1e-12)

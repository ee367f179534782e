"""Laplace whitening: the sampled model's density and outputs equal the original's under
x = x̂ + L w, the factor inverts a Gaussian's precision, and the sampler returns the original
variables with divergence positions in the original coordinates."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pymc.blocking import DictToArrayBijection, RaveledVars

from cartfit.data import load_cohort
from cartfit.inference import FitSettings, build_model, prepare
from cartfit.inference.whiten import hessian, laplace_factor, whitened_model
from cartfit.io import write_cohort
from cartfit.models import get_model


@pytest.fixture(scope="module")
def pm_model(tmp_path_factory):
    """Two subjects of a predator–prey/Gompertz population (every kind of free variable:
    non-centred and centred subject effects, log-transformed scales)."""
    out = tmp_path_factory.mktemp("whiten") / "cohort"
    rows = []
    for s in ("P1", "P2"):
        rows += [
            (s, -7.0, "tumor", 40.0, "mm2", 1.0, 0),
            (s, 7.0, "tumor", 20.0, "mm2", 1.0, 0),
            (s, 7.0, "car_t", 3000.0, "copies/ug", 5.0, 0),
            (s, 28.0, "car_t", 300.0, "copies/ug", 5.0, 0),
            (s, 90.0, "car_t", np.nan, "copies/ug", 5.0, 1),
        ]
    cols = ["subject", "time", "analyte", "value", "unit", "lloq", "blq"]
    subjects = pd.DataFrame({"subject": ["P1", "P2"], "dose": [1e8, 2e8]})
    write_cohort(out, pd.DataFrame(rows, columns=cols), subjects)
    model = get_model("predator_prey", "gompertz")
    return build_model(model, prepare(load_cohort(out), model), population=True)


def _original(pm_model):
    fn = pm_model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    return fn


def test_whitened_density_and_outputs_are_the_original_ones(pm_model):
    """At random x̂, L, w: the whitened log density is the original's at x = x̂ + L w (to 1e-10)
    and its deterministics (free variables on their own scale, theta) equal the original's."""
    w_model = whitened_model(pm_model)
    rng = np.random.default_rng(1)
    n = w_model.n_dim
    loc = w_model.x_init + 0.3 * rng.standard_normal(n)
    factor = np.eye(n) + 0.1 * rng.standard_normal((n, n))
    w = 0.5 * rng.standard_normal(n)
    x = loc + factor @ w
    m = w_model.model
    w_model.loc.set_value(loc)
    w_model.factor.set_value(factor)
    logp_w = m.compile_logp()({"w": w})
    assert logp_w == pytest.approx(float(_original(pm_model)(x)[0]), abs=1e-10)
    point = DictToArrayBijection.rmap(RaveledVars(x, w_model.point_map_info))
    constrained = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model[k] for k in ("mu", "omega_free", "theta")]),
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
    )(point)
    whitened = m.compile_fn([m["mu"], m["omega_free"], m["theta"]], inputs=[m["w"]])({"w": w})
    for a, b in zip(constrained, whitened, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_laplace_factor_inverts_a_gaussian_precision():
    """For log p = -x'Qx/2 the central-difference Hessian is Q (exact for a quadratic) and
    L L' = Q^-1; eigenvalues below the floor (a flat direction) are raised to it."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 5))
    q = a @ a.T + 0.5 * np.eye(5)

    def logp_dlogp(x):
        return -0.5 * x @ q @ x, -q @ x

    h = hessian(logp_dlogp, rng.standard_normal(5))
    np.testing.assert_allclose(h, q, rtol=1e-8, atol=1e-8)
    factor = laplace_factor(h)
    np.testing.assert_allclose(factor @ factor.T, np.linalg.inv(q), rtol=1e-8, atol=1e-10)
    flat = laplace_factor(np.diag([4.0, 1e-6]), floor=0.1)
    np.testing.assert_allclose(flat @ flat.T, np.diag([0.25, 10.0]), atol=1e-12)
    assert np.array_equal(laplace_factor(np.full((2, 2), np.nan)), np.eye(2))


def test_sampler_returns_original_variables_and_maps_divergences(pm_model):
    """A short run: the posterior holds the model's free variables and deterministics but not
    the sampler's w; divergence positions come back in the original coordinates x = x̂ + L w."""
    from cartfit.inference.sampling import _map_positions, sample_posterior

    settings = FitSettings(chains=1, tune=30, draws=20, n_starts=2, cores=1, progress=False)
    sampled = sample_posterior(pm_model, settings)
    post = sampled.idata["posterior"]
    assert "w" not in post.data_vars
    for name in ("mu", "omega_free", "eta", "z0", "sigma", "theta", "log_y0"):
        assert name in post.data_vars, name
    assert post["theta"].dims[2:] == ("subject", "parameter")
    assert len(sampled.start.log_densities) == 2

    w = np.full((1, 2, 3), np.nan)
    w[0, 1] = [1.0, 0.0, -1.0]
    stats = xr.Dataset({"divergence_start": (("chain", "draw", "p"), w)})
    loc, factor = np.array([1.0, 2.0, 3.0]), np.diag([2.0, 3.0, 4.0])
    mapped = _map_positions(stats, loc, factor)["divergence_start"].values
    assert np.all(np.isnan(mapped[0, 0]))
    np.testing.assert_allclose(mapped[0, 1], [3.0, 2.0, -1.0])

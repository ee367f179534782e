"""Laplace whitening: the sampled model's density and outputs equal the original's under
x = x̂ + L w, the block factors invert the Hessian's diagonal blocks (and the subject–subject
blocks they leave out are zero), and the sampler returns the original variables with
divergence positions in the original coordinates."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pymc.blocking import DictToArrayBijection, RaveledVars

from cartfit.data import load_cohort
from cartfit.inference import FitSettings, build_model, prepare
from cartfit.inference.stored import stored_function
from cartfit.inference.whiten import Factors, laplace_factor, whitened_model
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
    return lambda x: tuple(np.asarray(v, float) for v in fn(x))


def _random_factors(whitened, rng) -> Factors:
    n_p = whitened.pop_idx.size
    n_s, k = whitened.subj_idx.shape
    return Factors(
        whitened.x_init + 0.3 * rng.standard_normal(whitened.n_dim),
        np.eye(n_p) + 0.1 * rng.standard_normal((n_p, n_p)),
        np.eye(k) + 0.1 * rng.standard_normal((n_s, k, k)),
        0.1 * rng.standard_normal((n_s, k, n_p)),
    )


def test_whitened_density_and_outputs_are_the_original_ones(pm_model):
    """With the identity the whitened density at w = x is the original's at x (what the
    multi-start optimisation uses); at random x̂, blocks and w it is the original's at
    x = x̂ + L w (to 1e-10, or 1e-14 of the value: the two graphs sum in different orders)
    and what a fit stores at that w (free variables on their own scale, theta; evaluated from
    x = x̂ + L w after sampling) equals the original's;
    every coordinate is a population or one subject's coordinate."""
    whitened = whitened_model(pm_model)
    assert sorted(np.r_[whitened.pop_idx, whitened.subj_idx.ravel()]) == list(range(whitened.n_dim))
    assert whitened.subj_idx.shape == (2, 6)  # eta (1) + centred (3) + initial states (2)
    rng = np.random.default_rng(1)
    factors = _random_factors(whitened, rng)
    w = 0.5 * rng.standard_normal(whitened.n_dim)
    x = whitened.x_of(w, factors)
    m = whitened.model
    identity = whitened.identity()
    assert np.array_equal(whitened.x_of(w, identity), w)  # the optimisation relies on this
    for name, value in identity.data().items():
        whitened.shared[name].set_value(value)
    assert m.compile_logp()({"w": w}) == pytest.approx(_original(pm_model)(w)[0], 1e-14, 1e-10)
    for name, value in factors.data().items():
        whitened.shared[name].set_value(value)
    assert m.compile_logp()({"w": w}) == pytest.approx(_original(pm_model)(x)[0], 1e-14, 1e-10)
    point = DictToArrayBijection.rmap(RaveledVars(x, whitened.point_map_info))
    names = ("mu", "omega_free", "theta")
    constrained = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model[k] for k in names]),
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
    )(point)
    stored = stored_function(pm_model, whitened.point_map_info)(x[None])
    sampled = [stored[k][0] for k in names]
    for a, b in zip(constrained, sampled, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_subjects_are_conditionally_independent(pm_model):
    """The full central-difference Hessian of the model has no subject–subject block, which is
    what lets the whitening perturb every subject at once and factor the arrow structure."""
    whitened = whitened_model(pm_model)
    logp_dlogp = _original(pm_model)
    x = whitened.x_init + 0.2 * np.random.default_rng(3).standard_normal(whitened.n_dim)
    n, step = whitened.n_dim, 1e-4
    h = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = step
        h[:, i] = -(logp_dlogp(x + e)[1] - logp_dlogp(x - e)[1]) / (2 * step)
    s1, s2 = whitened.subj_idx
    assert np.abs(h[np.ix_(s1, s2)]).max() < 1e-6 * np.abs(h).max()
    assert np.abs(h[np.ix_(s1, whitened.pop_idx)]).max() > 1e-3  # coupled to the population


def test_factor_is_the_exact_inverse_of_an_arrow_precision(pm_model):
    """For log p = -x'Qx/2 with Q positive definite and arrow-structured on the model's
    layout, the assembled L (x = x̂ + L w) satisfies L L' = Q^-1, coupling included."""
    whitened = whitened_model(pm_model)
    n, pop, subj = whitened.n_dim, whitened.pop_idx, whitened.subj_idx
    rng = np.random.default_rng(5)
    a = rng.standard_normal((n, n))
    q = a @ a.T / n + np.eye(n)
    q[np.ix_(subj[0], subj[1])] = q[np.ix_(subj[1], subj[0])] = 0.0
    assert np.linalg.eigvalsh(q).min() > 0.1  # still positive definite, above the floor
    loc = rng.standard_normal(n)

    def logp_dlogp(x):
        return -0.5 * (x - loc) @ q @ (x - loc), -q @ (x - loc)

    factors = whitened.laplace(logp_dlogp, loc, step=1e-3)
    full = whitened.x_of(np.eye(n), factors) - loc  # row j: L e_j
    np.testing.assert_allclose(full.T @ full, np.linalg.inv(q), rtol=1e-6, atol=1e-9)
    assert np.abs(factors.coupling).max() > 1e-3 and pop.size == factors.population.shape[0]


def test_laplace_factor_floors_flat_directions():
    """L L' = Q^-1 for a positive definite Q; eigenvalues below the floor (a flat direction)
    are raised to it; a non-finite block gives the identity."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((5, 5))
    q = a @ a.T + 0.5 * np.eye(5)
    factor = laplace_factor(q)
    np.testing.assert_allclose(factor @ factor.T, np.linalg.inv(q), rtol=1e-8, atol=1e-10)
    flat = laplace_factor(np.diag([4.0, 1e-6]), floor=0.1)
    np.testing.assert_allclose(flat @ flat.T, np.diag([0.25, 10.0]), atol=1e-12)
    assert np.array_equal(laplace_factor(np.full((2, 2), np.nan)), np.eye(2))


def test_sampler_returns_original_variables_and_maps_divergences(pm_model):
    """A short run: the posterior holds the model's free variables and deterministics but not
    the sampler's w; divergence positions come back in the original coordinates x = x̂ + L w."""
    from cartfit.inference.sampling import _map_positions, sample_posterior

    settings = FitSettings(chains=1, tune=30, draws=20, n_starts=2, cores=1, progress=False)
    weights = pm_model.cartfit_centring.weights.get_value().copy()
    sampled = sample_posterior(pm_model, settings)
    post = sampled.idata["posterior"]
    assert "w" not in post.data_vars
    for name in ("mu", "omega_free", "eta", "z0", "sigma", "theta", "log_y0"):
        assert name in post.data_vars, name
    assert post["theta"].dims[2:] == ("subject", "parameter")
    # the draws in the model's unconstrained coordinates, as the posterior's free variables
    from cartfit.inference.stiffness import unconstrained_draws

    assert sampled.x_draws.shape == (1, 20, whitened_model(pm_model).n_dim)
    np.testing.assert_allclose(sampled.x_draws, unconstrained_draws(pm_model, post), atol=1e-10)
    # two starts in the model's form and two non-centred, ranked by the non-centred density;
    # the sampler ran with the model's own weights
    assert len(sampled.start.log_densities) == 4
    assert sampled.start.log_densities == sorted(sampled.start.log_densities, reverse=True)
    np.testing.assert_array_equal(pm_model.cartfit_centring.weights.get_value(), weights)
    whitened = whitened_model(pm_model)
    factors = _random_factors(whitened, np.random.default_rng(4))
    w = np.full((1, 2, whitened.n_dim), np.nan)
    w[0, 1] = np.linspace(-1, 1, whitened.n_dim)
    stats = xr.Dataset({"divergence_start": (("chain", "draw", "p"), w)})
    mapped = _map_positions(stats, whitened, factors)["divergence_start"].values
    assert np.all(np.isnan(mapped[0, 0]))
    # the NumPy map is the one the compiled model applies: compare through the log density
    for name, value in factors.data().items():
        whitened.shared[name].set_value(value)
    lp_w = whitened.model.compile_logp()({"w": w[0, 1]})
    assert lp_w == pytest.approx(_original(pm_model)(mapped[0, 1])[0], abs=1e-10)


def test_chains_start_at_distinct_corners_closer_in_where_the_density_is_implausible():
    """Each chain's start is w = ±1 (nutpie's first mass matrix 1/|grad| is then the identity
    for a standard normal), the same for the same seed and different between seeds; where the
    density at the corner has dropped far more than a standard normal's, the corner shrinks
    towards the optimum, down to the optimum itself."""
    from cartfit.inference.sampling import corner_start

    def normal(w):
        return -0.5 * float(w @ w)

    start = corner_start(normal, 500, 0.0)
    a, b = start(7), start(8)
    assert a.shape == (500,) and set(np.unique(a)) == {-1.0, 1.0}
    assert np.array_equal(a, start(7))
    assert 150 < np.sum(a != b) < 350  # independent signs: about half differ
    assert abs(a.mean()) < 0.2

    def walled(w):  # a wall at |w_0| > 0.3, astronomically low beyond (as a blown-up solution)
        return normal(w) - (1e23 if abs(w[0]) > 0.3 else 0.0)

    assert set(np.abs(corner_start(walled, 500, 0.0)(7))) == {0.25}

    def nowhere(w):  # only the optimum is finite
        return 0.0 if not np.any(w) else -np.inf

    assert not np.any(corner_start(nowhere, 500, 0.0)(7))


def test_multistart_counts_starts_stopped_by_the_iteration_limit():
    """A quadratic with condition number 100 over 50 coordinates is not solved by L-BFGS in 5
    iterations but is in 400: the report says how many starts were cut short."""
    from cartfit.inference.init import multistart

    scales = np.logspace(0, 1, 50)

    def logp_dlogp(x):
        return -0.5 * float(np.sum((scales * (x - 1.0)) ** 2)), -(scales**2) * (x - 1.0)

    short = multistart(logp_dlogp, np.zeros(50), n_starts=3, seed=1, max_iter=5)
    assert short.n_unconverged == 3
    full = multistart(logp_dlogp, np.zeros(50), n_starts=3, seed=1, max_iter=400)
    assert full.n_unconverged == 0
    np.testing.assert_allclose(full.x, 1.0, atol=1e-4)


def test_multistart_reports_a_start_that_ends_outside_the_support_as_minus_infinity():
    from cartfit.inference.init import multistart

    report = multistart(lambda x: (-np.inf, np.zeros_like(x)), np.zeros(3), n_starts=2)
    assert report.log_densities == [-np.inf, -np.inf] and report.n_distinct == 0


def test_multistart_groups_optima_within_one_log_density_unit():
    from cartfit.inference.init import StartReport

    report = StartReport([-13.3, -13.1, -28.6, -28.0, -28.9, -np.inf, -51.6], np.zeros(1))
    assert report.distinct() == [(-13.1, 2), (-28.0, 3), (-51.6, 1)]
    assert report.n_distinct == 3


def test_one_subject_fits_take_more_starts_than_populations():
    import pymc as pm

    from cartfit.inference.sampling import POPULATION_STARTS, SUBJECT_STARTS, default_starts

    one, many = pm.Model(coords={"subject": ["S1"]}), pm.Model(coords={"subject": ["S1", "S2"]})
    assert default_starts(one, FitSettings()) == SUBJECT_STARTS == 24
    assert default_starts(many, FitSettings()) == POPULATION_STARTS == 6
    assert default_starts(one, FitSettings(n_starts=3)) == 3
    assert default_starts(many, FitSettings(n_starts=0)) == 0


def test_newton_reaches_the_optimum_of_a_quadratic(pm_model):
    """On an arrow-structured quadratic log density the damped Newton steps land on the
    optimum (the first full step is exact), and the factors returned are those at it."""
    whitened = whitened_model(pm_model)
    n = whitened.n_dim
    rng = np.random.default_rng(0)
    pop, subj = whitened.pop_idx, whitened.subj_idx
    h = np.zeros((n, n))
    h[np.ix_(pop, pop)] = np.eye(pop.size) * 3.0
    for s in range(subj.shape[0]):
        block = rng.normal(size=(subj.shape[1], subj.shape[1]))
        h[np.ix_(subj[s], subj[s])] = block @ block.T + np.eye(subj.shape[1])
        coupling = 0.2 * rng.normal(size=(subj.shape[1], pop.size))
        h[np.ix_(subj[s], pop)], h[np.ix_(pop, subj[s])] = coupling, coupling.T
    optimum = rng.normal(size=n)

    def logp_dlogp(x):
        d = x - optimum
        return -0.5 * d @ h @ d, -h @ d

    x, factors = whitened.newton(logp_dlogp, np.zeros(n))
    np.testing.assert_allclose(x, optimum, atol=1e-6)
    np.testing.assert_allclose(factors.loc, x)
    w = rng.normal(size=n)  # L L^T = H^-1 at the optimum
    np.testing.assert_allclose(
        whitened.x_of(whitened.w_of_gradient(h @ w, factors), factors) - x, w, atol=1e-6
    )


@pytest.mark.parametrize("large", [False, True])
def test_large_cohort_geometry_polishes_starts_and_sets_centring_weights(pm_model, large):
    """With the large-cohort geometry the centring weights leave their initial 0/1; without it
    they stay 0/1 (the Newton steps: test_newton_reaches_the_optimum_of_a_quadratic)."""
    from cartfit.inference.sampling import sample_posterior

    weights = pm_model.cartfit_centring.weights
    initial = weights.get_value().copy()
    settings = FitSettings(
        chains=1, tune=20, draws=10, n_starts=2, cores=1, progress=False, large_cohort=large
    )
    try:
        sampled = sample_posterior(pm_model, settings)
        after = weights.get_value().copy()
    finally:
        weights.set_value(initial)
    post = sampled.idata["posterior"]
    assert post.attrs["mass_matrix"] == "low_rank"
    assert np.all((after >= 0.0) & (after <= 1.0))
    if large:
        assert not np.array_equal(after, initial)
    else:
        np.testing.assert_array_equal(after, initial)

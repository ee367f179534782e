"""Every model's Jacobians (J_y, J_p) against central finite differences of its rhs.

The inference solver integrates forward sensitivities with these matrices, so they must be
exact: a wrong entry gives wrong gradients without any visible failure of the fit.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from cartfit.growth import GROWTH_LAWS
from cartfit.models import MODEL_NAMES, get_model, make_tumor_only
from cartfit.models.constant_supply import make_constant_supply
from cartfit.models.cytokine import make_cytokine

CASES = [(m, g) for m in MODEL_NAMES for g in sorted(GROWTH_LAWS)]


def _finite_difference_jacobians(rhs, t, y, params, h=1e-6):
    n, q = y.size, params.size
    jy, jp = np.empty((n, n)), np.empty((n, q))
    for j in range(n):
        step = np.zeros(n)
        step[j] = h
        jy[:, j] = (rhs(t, y + step, params) - rhs(t, y - step, params)) / (2 * h)
    for j in range(q):
        step = np.zeros(q)
        step[j] = h * max(params[j], 1e-3)  # tiny parameters (μ ~ 1e-9) need an absolute step
        jp[:, j] = (rhs(t, y, params + step) - rhs(t, y, params - step)) / (2 * step[j])
    return jy, jp


def _check(model, seed, n_points=6):
    rng = np.random.default_rng(seed)
    medians = np.array([p.median for p in model.parameters])
    for _ in range(n_points):
        t = rng.uniform(0.0, 60.0)
        y = rng.normal(-1.0, 1.5, model.n_states)
        params = medians * np.exp(rng.normal(0.0, 0.5, model.n_params))
        jy, jp = model.jac(t, y, params)
        assert jy.shape == (model.n_states, model.n_states)
        assert jp.shape == (model.n_states, model.n_params)
        fd_y, fd_p = _finite_difference_jacobians(model.rhs, t, y, params)
        np.testing.assert_allclose(jy, fd_y, rtol=1e-5, atol=1e-7 * (1 + np.abs(fd_y).max()))
        np.testing.assert_allclose(jp, fd_p, rtol=1e-5, atol=1e-7 * (1 + np.abs(fd_p).max()))
        if model.rhs_jac_into is not None:  # the fused kernel's right-hand side is rhs's
            # to rounding: separately compiled, the two may contract a*b+c into one fma
            out = np.empty(model.n_states)
            model.rhs_jac_into(t, y, params, out, np.zeros_like(jy), np.zeros_like(jp))
            np.testing.assert_allclose(out, model.rhs(t, y, params), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(("name", "growth"), CASES)
def test_jacobians_match_finite_differences(name, growth):
    _check(get_model(name, growth), seed=zlib.crc32(f"{name}-{growth}".encode()))


def test_lymphodepletion_derivative_inside_its_range():
    # random draws of the depth often exceed 1, where it is clamped; check a depth inside
    model = get_model("multifate", "logistic")
    params = np.array([p.median for p in model.parameters])
    depth = model.parameter_names.index("lymphodepletion")
    params[depth] = 0.5
    y = np.log([0.1, 0.2, 0.05, 0.3])
    _, jp = model.jac(5.0, y, params)
    _, fd_p = _finite_difference_jacobians(model.rhs, 5.0, y, params)
    assert jp[1, depth] > 0.0  # deeper depletion, more homeostatic memory growth
    np.testing.assert_allclose(jp[:, depth], fd_p[:, depth], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: make_tumor_only(GROWTH_LAWS["gompertz"]),
        lambda: make_constant_supply(),
        lambda: make_constant_supply(GROWTH_LAWS["logistic"]),
        make_cytokine,
    ],
    ids=["tumor_only", "constant_supply", "constant_supply-logistic", "cytokine"],
)
def test_auxiliary_model_jacobians_match_finite_differences(factory):
    _check(factory(), seed=7)


def test_a_wrong_jacobian_is_caught():
    model = get_model("predator_prey", "logistic")

    def wrong_jac(t, y, params):
        jy, jp = model.jac(t, y, params)
        jy = jy.copy()
        jy[1, 0] *= 1.001
        return jy, jp

    with pytest.raises(AssertionError):
        _check(dataclasses.replace(model, jac=wrong_jac), seed=1)


@pytest.mark.parametrize(("name", "growth"), CASES)
def test_model_declares_states_parameters_and_extras(name, growth):
    model = get_model(name, growth)
    assert model.name == name and model.growth == growth
    assert (
        model.parameter_names[: GROWTH_LAWS[growth].n_params] == GROWTH_LAWS[growth].parameter_names
    )
    assert {"tumor", "car_t"} <= set(model.observables)
    for key in ("growth_law", "killing", "tumor_states", "car_t_states", "initial_state"):
        assert key in model.extras, key
    assert all(0 <= i < model.n_states for i in model.extras["tumor_states"])
    assert all(0 <= i < model.n_states for i in model.extras["car_t_states"])
    for p in model.parameters:
        assert p.unit and p.description and p.symbol

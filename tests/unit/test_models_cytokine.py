"""Homeostatic cytokine: steady state s/(δ + γL), its rise after lymphodepletion, h(Cyt)."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.models.cytokine import (
    cytokine_steady_state,
    homeostatic_rate,
    make_cytokine,
    relative_cytokine,
)
from cartfit.simulate.reference import solve_reference

MODEL = make_cytokine()
PARAMS = {
    "cytokine_production": 8.0,
    "cytokine_clearance": 2.0,
    "cytokine_consumption": 6.0,
    "baseline_lymphocytes": 1.0,
    "lymphodepletion": 0.0,
    "lymphocyte_recovery_time": 14.0,
}


@pytest.mark.parametrize("start", [0.05, 20.0])
def test_cytokine_relaxes_to_steady_state_from_below_and_above(start):
    times = np.linspace(0.0, 3.0, 31)
    log_c = solve_reference(MODEL, PARAMS, [np.log(start)], times)[:, 0]
    s, delta, gamma, lymph = 8.0, 2.0, 6.0, 1.0
    steady = cytokine_steady_state(s, delta, gamma, lymph)
    assert steady == pytest.approx(1.0)  # these defaults put the baseline at 1
    exact = steady + (start - steady) * np.exp(-(delta + gamma * lymph) * times)
    np.testing.assert_allclose(log_c, np.log(exact), atol=1e-8)


def test_steady_state_rises_when_lymphocytes_fall():
    levels = [cytokine_steady_state(8.0, 2.0, 6.0, lymph) for lymph in (1.0, 0.5, 0.1, 0.0)]
    assert np.all(np.diff(levels) > 0)
    assert levels[-1] == pytest.approx(8.0 / 2.0)  # no consumers: s / δ


def test_lymphodepletion_raises_the_solved_cytokine_then_it_recovers():
    params = PARAMS | {"lymphodepletion": 0.9}
    times = np.linspace(0.0, 120.0, 241)
    # lymphodepletion precedes infusion: start at the depleted steady state (L = 0.1 L_0)
    peak = cytokine_steady_state(8.0, 2.0, 6.0, 0.1)
    assert peak > 3.0  # several-fold above the baseline of 1
    cyt = np.exp(solve_reference(MODEL, params, [np.log(peak)], times)[:, 0])
    assert np.all(np.diff(cyt) < 0)  # it falls back as lymphocytes recover ...
    assert cyt[-1] == pytest.approx(1.0, rel=0.01)  # ... to baseline
    # the quasi-steady c(t) the multi-fate model uses has the same start and end ...
    rho = 6.0 * 1.0 / 2.0
    quasi = np.array([relative_cytokine(t, 0.9, rho, 14.0, np.empty(3)) for t in times])
    assert quasi[0] == pytest.approx(peak)
    assert quasi[-1] == pytest.approx(cyt[-1], rel=1e-3)
    # ... and tracks the ODE when clearance is fast (half-life 1.7 h, same ρ = 3): the lag is
    # at most |d ln c/dt| / (δ + γL) ≈ 0.14 / 13 ≈ 1 %
    fast = params | {
        "cytokine_production": 40.0,
        "cytokine_clearance": 10.0,
        "cytokine_consumption": 30.0,
    }
    cyt_fast = np.exp(solve_reference(MODEL, fast, [np.log(peak)], times)[:, 0])
    np.testing.assert_allclose(cyt_fast, quasi, rtol=0.015)
    assert np.max(np.abs(cyt / quasi - 1)) > 0.03  # slow clearance lags: the check can fail


def test_relative_cytokine_gradient_matches_finite_differences():
    rng = np.random.default_rng(11)
    for _ in range(5):
        args = np.array(
            [
                rng.uniform(0.0, 30.0),
                rng.uniform(0.05, 0.95),
                np.exp(rng.normal(1.0, 0.5)),
                np.exp(rng.normal(2.5, 0.3)),
            ]
        )
        grad = np.empty(3)
        relative_cytokine(*args, grad)
        for j in range(3):
            h = 1e-6 * args[j + 1]
            up, down = args.copy(), args.copy()
            up[j + 1] += h
            down[j + 1] -= h
            fd = relative_cytokine(*up, np.empty(3)) - relative_cytokine(*down, np.empty(3))
            assert grad[j] == pytest.approx(fd / (2 * h), rel=1e-6, abs=1e-10)


def test_homeostatic_rate_saturates_at_alpha_with_half_maximum_at_k_c():
    assert homeostatic_rate(0.0, 0.2, 1.5) == 0.0
    assert homeostatic_rate(1.5, 0.2, 1.5) == pytest.approx(0.1)
    assert homeostatic_rate(1e9, 0.2, 1.5) == pytest.approx(0.2, rel=1e-8)
    rates = homeostatic_rate(np.array([0.5, 1.0, 3.0]), 0.2, 1.5)
    assert np.all(np.diff(rates) > 0)

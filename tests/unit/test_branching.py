"""Exact branching simulation against textbook birth–death results."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.simulate.branching import outcome_frequencies, simulate_lineages


def _pos_only(times, n0, birth, death, n_rep, seed):
    rng = np.random.default_rng(seed)
    return simulate_lineages(times, n0, birth, death, 0, 0.5, 0.5, 0.0, n_rep, rng)[0]


def test_single_cell_survival_matches_kendall():
    # constant rates b=0.5, d=0.3: S(t) = (b-d)/(b - d e^{-(b-d)t}); 20 000 replicates,
    # binomial SE <= 0.0035, tolerance 4 SE = 0.014
    t = np.linspace(0.0, 10.0, 41)
    pos = _pos_only(t, 1, 0.5, 0.3, 20_000, seed=1)
    for k in (4, 20, 40):
        want = 0.2 / (0.5 - 0.3 * np.exp(-0.2 * t[k]))
        assert abs((pos[:, k] > 0).mean() - want) < 0.014


def test_extinction_of_n_cells_tends_to_death_over_birth_power_n():
    # supercritical: P(extinct eventually) = (d/b)^n = 0.6^3 = 0.216; by day 100 the
    # difference is < 1e-8; SE = 0.0029 at 20 000 replicates, tolerance 4 SE
    t = np.linspace(0.0, 100.0, 201)
    pos = _pos_only(t, 3, 0.5, 0.3, 20_000, seed=2)
    assert abs((pos[:, -1] == 0).mean() - 0.6**3) < 0.012


def test_piecewise_rates_large_population_mean_and_variance():
    # n cells, linear BD with constant rates per interval: E = n e^{at},
    # Var = n (b+d)/(b-d) e^{at} (e^{at} - 1) for constant rates; here the rates switch once
    t = np.array([0.0, 2.0, 5.0])
    n0, reps = 10**9, 4000
    pos = _pos_only(t, n0, [0.8, 0.5], [0.3, 1.1], reps, seed=3)
    growth = 0.5 * 2.0 + (-0.6) * 3.0
    mean = n0 * np.exp(growth)
    assert abs(pos[:, -1].mean() / mean - 1) < 5 * np.sqrt(pos[:, -1].var() / reps) / mean
    # variance after the first interval only (constant rates)
    a = 0.5
    var1 = n0 * (0.8 + 0.3) / a * np.exp(2 * a) * (np.exp(2 * a) - 1)
    assert pos[:, 1].var() == pytest.approx(var1, rel=0.1)


def test_immigration_mean_and_extinction_of_stream():
    # new lineages at rate nu, birth 0.4, death 0.35: E[Z_T] = nu (e^{aT} - 1)/a, a = 0.05;
    # P(Z_T = 0) = exp(-nu int_0^T S(u) du) with S Kendall's survival
    t = np.linspace(0.0, 20.0, 81)
    rng = np.random.default_rng(4)
    reps = 20_000
    _, neg = simulate_lineages(t, 0, 0.5, 0.5, 0, 0.4, 0.35, 0.1, reps, rng)
    a, nu = 0.05, 0.1
    mean = nu * np.expm1(a * 20.0) / a
    assert abs(neg[:, -1].mean() - mean) < 5 * neg[:, -1].std() / np.sqrt(reps)
    u = np.linspace(0.0, 20.0, 20_001)
    surv = a / (0.4 - 0.35 * np.exp(-a * u))
    p0 = np.exp(-nu * np.trapezoid(surv, u))
    assert abs((neg[:, -1] == 0).mean() - p0) < 4 * np.sqrt(p0 * (1 - p0) / reps)


def test_same_seed_same_numbers_and_bad_rates():
    t = np.linspace(0.0, 5.0, 11)
    a = _pos_only(t, 50, 0.5, 0.4, 100, seed=9)
    b = _pos_only(t, 50, 0.5, 0.4, 100, seed=9)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=">= 0"):
        _pos_only(t, 50, 0.5, -0.1, 10, seed=9)


def test_outcome_frequencies_on_hand_made_paths():
    t = np.arange(6.0)
    pos = np.array(
        [
            [100, 5, 1, 50, 200, 300],  # response day 1, antigen-positive relapse day 4
            [100, 5, 0, 0, 0, 0],  # response, cure from day 2
            [100, 200, 300, 400, 500, 600],  # no response
            [100, 5, 1, 0, 0, 0],  # response, antigen-negative relapse day 5
        ]
    )
    neg = np.array([[0, 0, 0, 0, 0, 0], [0] * 6, [0] * 6, [0, 0, 0, 10, 60, 150]])
    out = outcome_frequencies(t, pos, neg, threshold=100.0, horizons=[2, 4, 5])
    np.testing.assert_allclose(out["p_relapse"], [0, 0.25, 0.5])
    np.testing.assert_allclose(out["p_relapse_antigen_pos"], [0, 0.25, 0.25])
    np.testing.assert_allclose(out["p_relapse_antigen_neg"], [0, 0, 0.25])
    np.testing.assert_allclose(out["p_cure"], [0.25, 0.25, 0.25])
    np.testing.assert_allclose(out["p_response"], [0.75, 0.75, 0.75])

"""Exposure metrics on hand-made trajectories with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.analysis.metrics import (
    auc,
    c_at,
    cmax,
    exposure_metrics,
    killing_exposure,
    metric_grid,
    persistence_days,
    time_to_nadir,
    tmax,
    tumor_nadir_log10_reduction,
)


def test_grid_contains_landmarks_and_is_fine_early():
    t = metric_grid(365.0, window=21.0)
    for day in (0.0, 21.0, 28.0, 365.0):
        assert np.any(t == day)
    assert np.all(np.diff(t) > 0)
    early = np.diff(t[t <= 30.0])
    assert early.max() <= 0.05 + 1e-12
    assert np.diff(t[t >= 30.0]).max() <= 0.5 + 1e-12
    assert metric_grid(10.0, 28.0)[-1] == 28.0


def test_auc_of_exponential_decay_matches_closed_form():
    # C(t) = C0 exp(-d t): AUC_0^w = C0 (1 - exp(-d w)) / d
    t = metric_grid(100.0, 28.0)
    c0 = np.array([1e3, 50.0])[:, None]
    d = np.array([0.1, 0.7])[:, None]
    got = auc(t, c0 * np.exp(-d * t), 28.0)
    want = (c0 * (1 - np.exp(-d * 28.0)) / d)[:, 0]
    np.testing.assert_allclose(got, want, rtol=2e-4)


def test_auc_window_between_grid_points():
    t = np.linspace(0.0, 10.0, 11)
    assert auc(t, 2.0 * t, 2.5) == pytest.approx(2.5**2)


def test_tmax_and_cmax_of_gamma_shaped_peak():
    # C(t) = t^a exp(-t/b) peaks at t = a b with C = (a b)^a exp(-a)
    t = metric_grid(60.0, 28.0)
    a, b = 3.0, np.array([2.0, 3.33, 4.1])[:, None]
    c = t**a * np.exp(-t / b)
    np.testing.assert_allclose(tmax(t, c), a * b[:, 0], atol=1e-3)
    np.testing.assert_allclose(cmax(t, c), (a * b[:, 0]) ** a * np.exp(-a), rtol=1e-3)


def test_c_at_interpolates():
    t = metric_grid(60.0, 28.0)
    c = 5.0 + 2.0 * t
    assert c_at(t, c, 28.0) == pytest.approx(61.0)
    assert c_at(t, c, 12.3456) == pytest.approx(5.0 + 2 * 12.3456)


def test_persistence_of_exponential_decline_crossing_lloq():
    # C0 exp(-d t) = L at t = ln(C0/L)/d
    t = metric_grid(400.0, 28.0)
    c0, d, lloq = 1e4, np.array([0.05, 0.11])[:, None], 3.0
    got = persistence_days(t, c0 * np.exp(-d * t), lloq)
    np.testing.assert_allclose(got, np.log(c0 / lloq) / d[:, 0], rtol=1e-9)


def test_persistence_rises_then_falls_and_edge_cases():
    t = metric_grid(200.0, 28.0)
    c = 10 * t**3 * np.exp(-t / 5.0)  # below LLOQ at day 0, expands, contracts
    lloq = 1.0
    got = persistence_days(t, c, lloq)
    fine = np.linspace(20, 200, 2_000_001)
    want = fine[np.nonzero(10 * fine**3 * np.exp(-fine / 5.0) >= lloq)[0][-1]]
    assert got == pytest.approx(want, abs=1e-3)
    assert persistence_days(t, np.full_like(t, 0.5), 1.0) == 0.0
    assert persistence_days(t, np.full_like(t, 5.0), 1.0) == t[-1]


def test_killing_exposure_of_constant_rate():
    t = metric_grid(100.0, 28.0)
    k, c = 0.02, np.array([3.0, 7.0])[:, None] * np.ones_like(t)
    np.testing.assert_allclose(killing_exposure(t, k, c, window=28.0), k * np.array([3, 7]) * 28)
    np.testing.assert_allclose(killing_exposure(t, k, c), k * np.array([3, 7]) * 100)


def test_tumor_nadir_and_time_to_nadir():
    # ln B = ln B0 - 0.5 t + 0.01 t^2: nadir at t = 25, depth 0.5*25 - 0.01*625 = 6.25 e-folds
    t = metric_grid(80.0, 28.0)
    b = 1e2 * np.exp(-0.5 * t + 0.01 * t**2)
    assert time_to_nadir(t, b) == pytest.approx(25.0, abs=1e-6)
    assert tumor_nadir_log10_reduction(t, b) == pytest.approx(6.25 / np.log(10), rel=1e-6)
    growing = np.exp(0.1 * t)
    assert time_to_nadir(t, growing) == 0.0
    assert tumor_nadir_log10_reduction(t, growing) == 0.0


def test_exposure_metrics_vectorised_over_draws():
    t = metric_grid(120.0, 28.0)
    rng = np.random.default_rng(7)
    n = 5
    d = rng.uniform(0.05, 0.2, (n, 1))
    c = 100 * np.exp(-d * t)
    b = np.exp(-0.3 * t + 0.005 * t**2)
    out = exposure_metrics(t, c, b, 0.01, lloq=1.0, window=28.0, control_level=np.arange(n))
    assert set(out) == {
        "cmax",
        "tmax",
        "auc_0_28",
        "c_day28",
        "persistence_days",
        "killing_exposure",
        "tumor_nadir_log10_reduction",
        "time_to_nadir",
        "c_ctrl",
    }
    assert all(v.shape == (n,) for v in out.values())
    np.testing.assert_allclose(out["tmax"], 0.0)
    np.testing.assert_allclose(out["c_day28"], 100 * np.exp(-d[:, 0] * 28), rtol=1e-12)
    kill = 0.01 * 100 * (1 - np.exp(-d[:, 0] * 120)) / d[:, 0]
    np.testing.assert_allclose(out["killing_exposure"], kill, rtol=1e-3)
    np.testing.assert_allclose(out["time_to_nadir"], 30.0, atol=1e-6)
    np.testing.assert_array_equal(out["c_ctrl"], np.arange(n))

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


# --- exposure table from a fit file with a point-mass posterior -------------------------------


def write_point_mass_fit(path, model_name, theta, log_y0, scales, lloq, n_draw=4):
    """A fit file (cartfit.inference.fitfile layout) whose posterior is one point repeated."""
    import json

    import xarray as xr

    from cartfit.models import get_model

    model = get_model(model_name, "gompertz")
    subjects = [f"S{i + 1}" for i in range(len(theta))]
    th = np.broadcast_to(np.asarray(theta, float), (1, n_draw, *np.shape(theta)))
    y0 = np.broadcast_to(np.asarray(log_y0, float), (1, n_draw, *np.shape(log_y0)))
    analytes = sorted(scales)
    times = np.array([-7.0, 3.0, 14.0, 90.0])
    n_obs = len(subjects) * len(times)
    obs = np.arange(n_obs)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({
            "theta": (("chain", "draw", "subject", "parameter"), th),
            "log_y0": (("chain", "draw", "subject", "state"), y0),
            "sigma": (("chain", "draw", "analyte"), np.full((1, n_draw, len(analytes)), 0.3)),
        }, coords={"subject": subjects, "parameter": list(model.parameter_names),
                   "state": list(model.states), "analyte": analytes}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"),
                                            np.zeros((1, n_draw, n_obs)))}),
        "observed_data": xr.Dataset({"y": ("obs", np.ones(n_obs))}, coords={"obs": obs}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", np.repeat(subjects, len(times))),
            "obs_time": ("obs", np.tile(times, len(subjects))),
            "obs_analyte": ("obs", np.full(n_obs, "car_t")),
            "obs_lloq": ("obs", np.full(n_obs, lloq)),
            "obs_blq": ("obs", np.zeros(n_obs, dtype=np.int64)),
            "scale": ("analyte", [scales[a] for a in analytes]),
            "subject_dose": ("subject", np.full(len(subjects), 1e8)),
            "subject_costim": ("subject", np.full(len(subjects), "4-1BB")),
        }, coords={"obs": obs, "analyte": analytes, "subject": subjects}),
    })  # fmt: skip
    tree.attrs.update({
        "model": model_name, "growth": "gompertz", "mode": "subject",
        "subjects": json.dumps(subjects), "data_sha256": "x",
        "units": json.dumps({"car_t": "copies/ug", "tumor": "mm2"}),
        "cohort_meta": json.dumps({"relapse_threshold": None, "tumor_cells_per_unit": None}),
    })  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return model


def test_exposure_table_of_point_mass_posterior_matches_reference_solution(tmp_path):
    from scipy.integrate import solve_ivp

    from cartfit.analysis import exposure_table

    theta = [[0.03, 10.0, 0.5, 0.5, 0.1], [0.05, 10.0, 0.2, 0.8, 0.15]]
    log_y0 = [[0.0, np.log(2.5e-4)], [np.log(2.0), np.log(1e-3)]]
    scales = {"car_t": 1e4, "tumor": 50.0}
    model = write_point_mass_fit(tmp_path / "f.nc", "predator_prey", theta, log_y0, scales, 30.0)
    table = exposure_table(tmp_path / "f.nc", window=28.0)
    assert list(table.columns) == ["subject", "metric", "mean", "median", "q05", "q95", "unit"]
    assert len(table) == 2 * 9
    t = metric_grid(90.0, 28.0)
    for s, subject in enumerate(("S1", "S2")):
        p = np.array(theta[s])
        sol = solve_ivp(lambda tt, y, p=p: model.rhs(tt, y, p), (0, 90), log_y0[s], t_eval=t,
                        method="LSODA", rtol=1e-10, atol=1e-10)  # fmt: skip
        car_t = scales["car_t"] * np.exp(sol.y[1])
        tumor = scales["tumor"] * np.exp(sol.y[0])
        want = exposure_metrics(t, car_t, tumor, p[2] / scales["car_t"], 30.0, 28.0,
                                p[0] / p[2] * scales["car_t"])  # fmt: skip
        got = table[table["subject"] == subject].set_index("metric")
        np.testing.assert_allclose(got["q05"], got["q95"])  # a point mass has no spread
        for name, value in want.items():
            assert got.loc[name, "median"] == pytest.approx(float(value), rel=2e-3, abs=1e-3)
    units = table.set_index(["subject", "metric"])["unit"]
    assert units["S1", "auc_0_28"] == "copies/ug*day"
    assert units["S1", "killing_exposure"] == "e-folds"
    assert units["S1", "tmax"] == "day"

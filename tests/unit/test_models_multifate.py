"""Multi-fate model: memory after clearance, rechallenge, co-stimulation presets, homeostasis."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import trapezoid

from cartfit.models import get_model
from cartfit.models.cytokine import homeostatic_rate, relative_cytokine
from cartfit.simulate.reference import solve_natural, solve_reference

MODEL = get_model("multifate", "logistic")
BASE = {p.name: p.median for p in MODEL.parameters} | {
    "growth_rate": 0.05,
    "carrying_capacity": 20.0,
}
Y0 = MODEL.extras["initial_state"](1.0, 0.01)  # reference tumour burden, 1 % CAR T dose
E, M, X, T = range(4)


def _with_preset(costim):
    preset = MODEL.extras["costim_presets"][costim]
    return BASE | {name: median for name, (median, _) in preset.items()}


def test_memory_dominates_after_antigen_clearance():
    log_y = solve_reference(MODEL, BASE, Y0, [10.0, 60.0])
    cells = np.exp(log_y)
    assert cells[1, T] < 1e-5 * np.exp(Y0[T])  # antigen cleared
    assert cells[0, E] > cells[0, M]  # effectors dominate the expansion ...
    assert cells[1, M] / cells[1, :3].sum() > 0.8  # ... memory dominates afterwards


def test_memory_re_expands_effectors_on_rechallenge():
    y60 = solve_reference(MODEL, BASE, Y0, [60.0])[0]
    times = np.linspace(60.0, 90.0, 61)
    rechallenged = solve_reference(MODEL, BASE, np.r_[y60[:3], 0.0], times, t0=60.0)
    quiet = solve_reference(MODEL, BASE, y60, times, t0=60.0)
    assert rechallenged[:, E].max() - y60[E] > np.log(100)  # effectors rise > 100-fold
    assert quiet[:, E].max() == pytest.approx(y60[E], abs=1e-9)  # and keep falling without it
    # the memory pool drives a fast recall: without memory the same challenge re-expands
    # days later and the tumour is controlled later
    no_memory = solve_reference(MODEL, BASE, np.r_[y60[0], -30.0, y60[2], 0.0], times, t0=60.0)
    day_64, day_66 = 8, 12
    assert rechallenged[day_64, E] - no_memory[day_64, E] > np.log(30)
    assert no_memory[day_66, T] - rechallenged[day_66, T] > np.log(10)


def test_cd28_peaks_higher_and_earlier_and_4_1bb_persists_longer():
    times = np.linspace(0.0, 90.0, 901)
    car_t = {
        c: solve_natural(MODEL, _with_preset(c), Y0, times)["car_t"] for c in ("CD28", "4-1BB")
    }
    peak = {c: v.max() for c, v in car_t.items()}
    t_peak = {c: times[np.argmax(v)] for c, v in car_t.items()}
    assert peak["CD28"] > 2 * peak["4-1BB"]
    assert t_peak["CD28"] < t_peak["4-1BB"] - 2.0
    assert car_t["4-1BB"][-1] > 10 * car_t["CD28"][-1]


def test_presets_shift_priors_in_the_published_directions():
    presets = MODEL.extras["costim_presets"]
    cd28, bb = presets["CD28"], presets["4-1BB"]
    for name in {*cd28, *bb}:
        assert name in MODEL.parameter_names
    assert cd28["antigen_half_saturation"][0] < bb["antigen_half_saturation"][0]
    for faster_in_cd28 in (
        "effector_proliferation",
        "exhaustion_rate",
        "effector_death",
        "memory_death",
    ):
        assert cd28[faster_in_cd28][0] > bb[faster_in_cd28][0]
    assert cd28["memory_formation"][0] < bb["memory_formation"][0]


def test_homeostatic_memory_growth_follows_the_lymphodepletion_cytokine():
    # no tumour and no effectors: d ln M/dt = h(t) - d_M exactly
    y0 = np.log([1e-30, 0.01, 1e-30, 1e-30])
    times = np.linspace(0.0, 60.0, 601)
    grow = {}
    for depth in (0.0, 0.95):
        params = BASE | {"lymphodepletion": depth, "homeostatic_rate": 0.2}
        log_m = solve_reference(MODEL, params, y0, times)[:, M]
        c = np.array(
            [
                relative_cytokine(
                    t,
                    depth,
                    params["cytokine_consumption_ratio"],
                    params["lymphocyte_recovery_time"],
                    np.empty(3),
                )
                for t in times
            ]
        )
        h = homeostatic_rate(c, params["homeostatic_rate"], params["cytokine_half_saturation"])
        expected = trapezoid(h, times) - params["memory_death"] * times[-1]
        assert log_m[-1] - log_m[0] == pytest.approx(expected, rel=1e-4)
        grow[depth] = log_m[-1] - log_m[0]
    assert grow[0.95] > grow[0.0] + 0.5  # deep lymphodepletion: more homeostatic expansion


def test_blood_car_t_is_the_sum_of_the_three_phenotypes():
    pt = pytest.importorskip("pytensor.tensor")
    log_y = solve_reference(MODEL, BASE, Y0, [0.0, 10.0, 400.0])
    total = np.exp(MODEL.observables["car_t"](log_y))
    np.testing.assert_allclose(total, np.exp(log_y[:, :3]).sum(axis=1), rtol=1e-12)
    huge = np.array([[800.0, 799.0, -900.0, 0.0]])  # no overflow or underflow
    assert MODEL.observables["car_t"](huge)[0] == pytest.approx(800.0 + np.log1p(np.exp(-1.0)))
    symbolic = MODEL.observables["car_t"](pt.as_tensor(log_y), xp=pt).eval()
    np.testing.assert_allclose(symbolic, np.log(total), rtol=1e-12)

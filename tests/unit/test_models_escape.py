"""Antigen escape: selection of antigen-negative tumour by CAR T pressure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import trapezoid

from cartfit.models import get_model
from cartfit.simulate.reference import solve_natural, solve_reference

PARAMS = {
    "growth_rate": 0.05,
    "carrying_capacity": 20.0,
    "kill_rate": 1.0,
    "off_target_kill_rate": 0.01,
    "proliferation_rate": 1.0,
    "death_rate": 0.05,
    "antigen_loss_rate": 1e-6,
}
NEG_FRACTION0 = 1e-4
TIMES = np.linspace(0.0, 150.0, 151)


def _antigen_neg_fraction(car_t0, **overrides):
    model = get_model("escape", "logistic")
    y0 = model.extras["initial_state"](1.0, car_t0, NEG_FRACTION0)
    out = solve_natural(model, {**PARAMS, **overrides}, y0, TIMES)
    return out["tumor_antigen_neg"] / out["tumor"], out


def test_antigen_negative_fraction_rises_under_therapy():
    fraction, out = _antigen_neg_fraction(1e-2)
    assert fraction[0] == pytest.approx(NEG_FRACTION0)
    assert out["tumor"].min() < 1e-3 * out["tumor"][0]  # the therapy works on T_A ...
    assert fraction[20] > 0.5  # ... and selects the antigen-negative clone
    assert out["tumor"][-1] > 100 * out["tumor"].min()  # which relapses
    assert np.all(np.diff(fraction) > 0)


def test_without_car_t_the_fraction_only_drifts_by_antigen_loss():
    # no CAR T: a negligible level that cannot expand
    fraction, out = _antigen_neg_fraction(1e-20, proliferation_rate=1e-12)
    # both clones share G(T), so T_A / T = (1 - f0) exp(-mu t) exactly
    mu = PARAMS["antigen_loss_rate"]
    expected = 1.0 - (1.0 - NEG_FRACTION0) * np.exp(-mu * TIMES)
    np.testing.assert_allclose(fraction, expected, rtol=1e-7)
    assert fraction[-1] < 3 * NEG_FRACTION0
    # and the total follows the untreated logistic curve
    law = get_model("escape", "logistic").extras["growth_law"]
    exact = law.log_solution(TIMES, 0.0, [PARAMS["growth_rate"], PARAMS["carrying_capacity"]])
    np.testing.assert_allclose(np.log(out["tumor"]), exact, atol=1e-7)


def test_car_t_expansion_is_driven_by_antigen_positive_tumour_only():
    model = get_model("escape", "logistic")
    # a large antigen-negative tumour with almost no antigen-positive cells: no expansion
    y0 = np.log([1e-12, 5.0, 1e-2])
    log_c = solve_reference(model, PARAMS, y0, [0.0, 10.0])[:, 2]
    assert (log_c[1] - log_c[0]) / 10.0 == pytest.approx(-PARAMS["death_rate"], rel=1e-6)


def test_killing_exposure_counts_e_folds_of_antigen_positive_tumour_killed():
    model = get_model("escape", "exponential")
    params = {k: v for k, v in PARAMS.items() if k != "carrying_capacity"}
    params["growth_rate"] = 1e-12  # no growth: every e-fold lost is killed (or lost antigen)
    times = np.linspace(0.0, 40.0, 4001)
    log_states = solve_reference(model, params, np.log([1.0, 1e-4, 1e-2]), times)
    kill = model.extras["killing"](log_states, model.pack(params))
    exposure = trapezoid(kill, times)
    lost = log_states[0, 0] - log_states[-1, 0] - params["antigen_loss_rate"] * times[-1]
    assert exposure > 3.0
    assert exposure == pytest.approx(lost, rel=1e-5)

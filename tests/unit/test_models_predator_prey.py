"""Predator–prey model: expansion, regression, contraction, and its limits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import trapezoid

from cartfit.models import get_model
from cartfit.simulate.reference import solve_reference

PARAMS = {
    "growth_rate": 0.05,
    "carrying_capacity": 20.0,
    "kill_rate": 1.0,
    "proliferation_rate": 1.0,
    "death_rate": 0.1,
}
Y0 = np.log([1.0, 1e-3])  # tumour at the reference burden, a small CAR T dose
TIMES = np.linspace(0.0, 100.0, 1001)


def test_expansion_regression_and_contraction():
    model = get_model("predator_prey", "logistic")
    log_b, log_c = solve_reference(model, PARAMS, Y0, TIMES).T
    peak = int(np.argmax(log_c))
    # expansion: the CAR T peak comes after day 0, hundreds of times the infused level
    assert 3.0 < TIMES[peak] < 30.0
    assert log_c[peak] - log_c[0] > np.log(100)
    # regression: the tumour falls by more than four orders of magnitude
    assert log_b.min() - log_b[0] < -4 * np.log(10)
    # contraction: once the tumour is negligible (p B << d), ln C falls at rate d
    late = (TIMES > TIMES[peak] + 20) & (PARAMS["proliferation_rate"] * np.exp(log_b) < 1e-3)
    assert late.sum() > 100
    slope = np.polyfit(TIMES[late], log_c[late], 1)[0]
    assert slope == pytest.approx(-PARAMS["death_rate"], rel=0.01)


def test_without_car_t_the_tumour_grows_as_the_untreated_law():
    for growth in ("exponential", "logistic", "gompertz"):
        model = get_model("predator_prey", growth)
        law = model.extras["growth_law"]
        params = {**{n: PARAMS[n] for n in model.parameter_names}, "proliferation_rate": 1e-12}
        log_b = solve_reference(model, params, [0.0, np.log(1e-20)], TIMES)[:, 0]
        exact = law.log_solution(TIMES, 0.0, [params[n] for n in law.parameter_names])
        np.testing.assert_allclose(log_b, exact, atol=1e-7)


def test_without_killing_car_t_follows_the_untreated_tumour():
    model = get_model("predator_prey", "logistic")
    params = {**PARAMS, "kill_rate": 1e-14, "proliferation_rate": 0.1}
    times = TIMES[TIMES <= 40.0]
    log_b, log_c = solve_reference(model, params, Y0, times).T
    law = model.extras["growth_law"]
    exact_b = law.log_solution(times, Y0[0], [params["growth_rate"], params["carrying_capacity"]])
    np.testing.assert_allclose(log_b, exact_b, atol=1e-7)
    # ln C(t) - ln C(0) = p ∫ B dt - d t
    integral = trapezoid(np.exp(exact_b), times)
    expected = params["proliferation_rate"] * integral - params["death_rate"] * times[-1]
    assert expected > 5.0
    assert log_c[-1] - log_c[0] == pytest.approx(expected, rel=1e-5)


def test_without_tumour_growth_every_e_fold_lost_is_killing_exposure():
    model = get_model("predator_prey", "exponential")
    params = {n: PARAMS[n] for n in model.parameter_names} | {"growth_rate": 1e-14}
    log_states = solve_reference(model, params, Y0, TIMES)
    assert np.all(np.diff(log_states[:, 0]) <= 1e-12)  # the tumour never grows
    kill = model.extras["killing"](log_states, model.pack(params))
    assert kill == pytest.approx(params["kill_rate"] * np.exp(log_states[:, 1]))
    exposure = trapezoid(kill, TIMES)
    assert exposure == pytest.approx(log_states[0, 0] - log_states[-1, 0], rel=1e-4)


def test_control_level_r_over_k_is_the_exponential_equilibrium():
    model = get_model("predator_prey", "exponential")
    params = {n: PARAMS[n] for n in model.parameter_names}
    b_star = params["death_rate"] / params["proliferation_rate"]
    c_ctrl = params["growth_rate"] / params["kill_rate"]
    out = solve_reference(model, params, np.log([b_star, c_ctrl]), [0.0, 50.0, 100.0])
    np.testing.assert_allclose(out, np.log([[b_star, c_ctrl]] * 3), atol=1e-9)
    # a CAR T level below C_ctrl lets the tumour grow at first
    below = solve_reference(model, params, np.log([b_star, 0.5 * c_ctrl]), [0.0, 1.0])
    assert below[1, 0] > below[0, 0]


def test_without_tumour_car_t_only_contracts_at_rate_d():
    model = get_model("predator_prey", "exponential")  # 1e-30 stays negligible for 100 days
    params = {n: PARAMS[n] for n in model.parameter_names}
    log_c = solve_reference(model, params, [np.log(1e-30), 0.0], TIMES)[:, 1]
    np.testing.assert_allclose(log_c, -PARAMS["death_rate"] * TIMES, atol=1e-9)


def test_unknown_model_lists_the_registered_names():
    with pytest.raises(ValueError, match="escape.*multifate.*predator_prey"):
        get_model("sir", "logistic")

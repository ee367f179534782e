"""The SciPy reference solver: accuracy, convergence, inputs and failures."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.errors import CartfitError
from cartfit.growth import GOMPERTZ, LOGISTIC
from cartfit.models import get_model
from cartfit.models.tumor_only import make_tumor_only
from cartfit.simulate.reference import SolverError, solve_natural, solve_reference

PP_PARAMS = {
    "growth_rate": 0.05,
    "carrying_capacity": 20.0,
    "kill_rate": 0.8,
    "proliferation_rate": 0.6,
    "death_rate": 0.15,
}
PP_Y0 = np.log([1.0, 1e-3])


@pytest.mark.parametrize("method", ["LSODA", "Radau", "RK45"])
def test_error_against_logistic_closed_form_shrinks_as_rtol_tightens(method):
    times = np.linspace(0.0, 150.0, 31)
    params = [0.2, 1e4]
    exact = LOGISTIC.log_solution(times, np.log(1e-6), params)
    model = make_tumor_only(LOGISTIC)
    errors = []
    for rtol in (1e-4, 1e-6, 1e-8, 1e-10):
        solved = solve_reference(model, params, [np.log(1e-6)], times, rtol=rtol, atol=rtol * 1e-2)
        errors.append(np.max(np.abs(solved[:, 0] - exact)))
    assert errors[-1] < 1e-7
    # every hundred-fold tightening buys at least a factor 5 (LSODA's error control is loose)
    assert all(b < a / 5 for a, b in zip(errors, errors[1:], strict=False)), errors


def test_predator_prey_solution_converges_as_rtol_tightens():
    model = get_model("predator_prey", "logistic")
    times = np.linspace(0.0, 120.0, 25)
    best = solve_reference(model, PP_PARAMS, PP_Y0, times, rtol=1e-12, atol=1e-14, method="Radau")
    diffs = []
    for rtol in (1e-5, 1e-7, 1e-9):
        solved = solve_reference(model, PP_PARAMS, PP_Y0, times, rtol=rtol, atol=rtol * 1e-2)
        diffs.append(np.max(np.abs(solved - best)))
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 1e-6
    # default settings agree with the tightest solve
    assert np.max(np.abs(solve_reference(model, PP_PARAMS, PP_Y0, times) - best)) < 1e-7


def test_mapping_and_vector_parameters_give_the_same_solution():
    model = get_model("predator_prey", "logistic")
    times = [0.0, 5.0, 50.0]
    by_name = solve_reference(model, PP_PARAMS, PP_Y0, times)
    by_order = solve_reference(model, model.pack(PP_PARAMS), PP_Y0, times)
    assert by_name.shape == (3, 2)
    np.testing.assert_array_equal(by_name, by_order)
    np.testing.assert_array_equal(by_name[0], PP_Y0)


def test_start_time_shifts_an_autonomous_solution():
    model = make_tumor_only(GOMPERTZ)
    params = [0.1, 5.0]
    shifted = solve_reference(model, params, [0.0], [-10.0, -5.0, 0.0], t0=-10.0)
    plain = solve_reference(model, params, [0.0], [0.0, 5.0, 10.0])
    np.testing.assert_allclose(shifted, plain, atol=1e-9)


def test_solve_natural_returns_exp_of_each_observable():
    model = get_model("predator_prey", "logistic")
    times = [0.0, 10.0]
    natural = solve_natural(model, PP_PARAMS, PP_Y0, times)
    log_states = solve_reference(model, PP_PARAMS, PP_Y0, times)
    assert set(natural) == {"tumor", "car_t"}
    np.testing.assert_allclose(natural["car_t"], np.exp(log_states[:, 1]), rtol=1e-12)
    assert natural["tumor"][0] == pytest.approx(1.0)


def test_only_the_initial_time_returns_the_initial_state():
    model = get_model("predator_prey", "logistic")
    out = solve_reference(model, PP_PARAMS, PP_Y0, [0.0, 0.0])
    np.testing.assert_array_equal(out, np.vstack([PP_Y0, PP_Y0]))


@pytest.mark.parametrize(
    ("params", "y0", "times", "match"),
    [
        ([0.1, 1.0, 1.0], PP_Y0, [1.0], "takes 5 parameters"),
        (PP_PARAMS, [0.0], [1.0], "has 2 states"),
        (PP_PARAMS, PP_Y0, [2.0, 1.0], "non-decreasing"),
        (PP_PARAMS, PP_Y0, [-1.0, 1.0], "non-decreasing and >= t0"),
        (PP_PARAMS, PP_Y0, [0.0, np.nan], "finite"),
        ({"growth_rate": 0.1}, PP_Y0, [1.0], "missing"),
    ],
)
def test_bad_arguments_are_value_errors(params, y0, times, match):
    model = get_model("predator_prey", "logistic")
    with pytest.raises(ValueError, match=match):
        solve_reference(model, params, y0, times)


def test_integration_failure_raises_solver_error_not_a_user_error():
    model = get_model("predator_prey", "exponential")
    params = {"growth_rate": 1.0, "kill_rate": 1.0, "proliferation_rate": 1.0, "death_rate": 0.1}
    # a tumour of e^710 reference burdens overflows the CAR T proliferation term
    with pytest.raises(SolverError, match="non-finite derivative") as info:
        solve_reference(model, params, [710.0, 0.0], [0.0, 10.0])
    assert isinstance(info.value, RuntimeError)
    assert not isinstance(info.value, CartfitError)
    with pytest.raises(SolverError, match="evaluations"):
        solve_reference(model, params, [0.0, 0.0], [0.0, 10.0], max_evaluations=50)
    with pytest.raises(SolverError, match="non-finite"):
        solve_reference(model, params, [np.inf, 0.0], [1.0])

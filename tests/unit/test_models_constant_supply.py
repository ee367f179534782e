"""Constant supply: the tumour-control number R_ctrl decides clearance on both sides of 1."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.models.constant_supply import control_level, control_number, make_constant_supply
from cartfit.simulate.reference import solve_reference

MODEL = make_constant_supply()
R, ALPHA, DELTA = 0.1, 0.5, 0.2
TIMES = np.linspace(0.0, 400.0, 401)


def _params_for(r_ctrl):
    kappa = R * DELTA / (ALPHA * r_ctrl)  # solve R_ctrl = r δ / (α κ) for κ
    return {"growth_rate": R, "kill_rate": ALPHA, "supply_rate": kappa, "clearance_rate": DELTA}


@pytest.mark.parametrize("r_ctrl", [0.9, 1.1])
def test_tumour_is_cleared_iff_control_number_is_below_one(r_ctrl):
    params = _params_for(r_ctrl)
    assert control_number(R, ALPHA, params["supply_rate"], DELTA) == pytest.approx(r_ctrl)
    log_t = solve_reference(MODEL, params, np.log([1.0, 1e-3]), TIMES)[:, 0]
    late_slope = np.polyfit(TIMES[300:], log_t[300:], 1)[0]
    # net per-capita rate at C* = κ/δ is r (1 - 1/R_ctrl)
    assert late_slope == pytest.approx(R * (1.0 - 1.0 / r_ctrl), rel=1e-6)
    if r_ctrl < 1:
        assert log_t[-1] < log_t[0] - 3.0 and late_slope < 0  # cleared
    else:
        assert log_t[-1] > log_t[0] + 3.0 and late_slope > 0  # escapes control


def test_solution_matches_closed_form():
    params = _params_for(0.9)
    kappa = params["supply_rate"]
    c0 = 1e-3
    log_y = solve_reference(MODEL, params, np.log([1.0, c0]), TIMES)
    c_star = kappa / DELTA
    c_exact = c_star + (c0 - c_star) * np.exp(-DELTA * TIMES)
    integral_c = c_star * TIMES + (c0 - c_star) * (1 - np.exp(-DELTA * TIMES)) / DELTA
    np.testing.assert_allclose(log_y[:, 1], np.log(c_exact), atol=1e-8)
    np.testing.assert_allclose(log_y[:, 0], R * TIMES - ALPHA * integral_c, atol=1e-7)


def test_control_level_is_the_level_that_holds_the_tumour():
    c_ctrl = control_level(R, ALPHA)
    assert c_ctrl == pytest.approx(R / ALPHA)
    # a supply that holds C exactly at C_ctrl keeps the tumour constant: R_ctrl = 1
    params = {
        "growth_rate": R,
        "kill_rate": ALPHA,
        "supply_rate": c_ctrl * DELTA,
        "clearance_rate": DELTA,
    }
    assert control_number(R, ALPHA, c_ctrl * DELTA, DELTA) == pytest.approx(1.0)
    out = solve_reference(MODEL, params, np.log([2.0, c_ctrl]), [0.0, 100.0])
    np.testing.assert_allclose(out[1], np.log([2.0, c_ctrl]), atol=1e-9)

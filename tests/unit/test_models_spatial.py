"""Reaction–diffusion infiltration: the front moves at the Fisher–KPP minimal speed.

Grid reasoning: the leading edge decays as exp(-s* x) with s* = sqrt(λ/D_E), λ = ακT0 − δ; a
step h ≤ 0.35/s* keeps the central-difference speed bias below 0.5 % (module docstring), and
80 days give the Bramson-corrected fit > 100 decay lengths of travel, so 3 % is ample yet a
wrong c_min (e.g. sqrt(D_E λ) or 2 sqrt(D_E ακT0)) misses by more than 15 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import trapezoid
from scipy.optimize import brentq

from cartfit.models.spatial import front_position, front_speed, minimal_speed, solve_front


@pytest.mark.parametrize(
    ("D_E", "T0", "length"),
    [(1.0, 1.5, 200.0), (0.25, 1.0, 100.0)],  # λ = 1 (c_min = 2) and λ = 0.5 (c_min ≈ 0.71)
)
def test_front_speed_matches_fisher_kpp_minimal_speed(D_E, T0, length):
    rates = {"alpha": 1.0, "kappa": 1.0, "delta": 0.5}
    c_min = minimal_speed(D_E, rates["alpha"], rates["kappa"], T0, rates["delta"])
    assert c_min == pytest.approx(2.0 * np.sqrt(D_E * (T0 - 0.5)))
    solution = solve_front(D_E=D_E, T0=T0, length=length, **rates)
    speed = front_speed(solution)
    assert speed == pytest.approx(c_min, rel=0.03)
    # behind the front the tumour is cut to the epidemic final size s T0, where
    # ln s = -R0 (1 - s) with R0 = ακT0/δ (integrate E_t + κT_t = D_E E_xx - δE in time);
    # ahead of it the tumour is untouched
    r0 = rates["alpha"] * rates["kappa"] * T0 / rates["delta"]
    final = brentq(lambda s: np.log(s) + r0 * (1.0 - s), 1e-9, 1.0 - 1e-9) * T0
    x_front = front_position(solution.x, solution.effector[-1], 1e-3)
    behind = (solution.x > 0.3 * x_front) & (solution.x < 0.6 * x_front)
    np.testing.assert_allclose(solution.tumor[-1][behind], final, rtol=0.02)
    assert solution.tumor[-1][solution.x > x_front + 10.0].min() == pytest.approx(T0, rel=1e-3)


@pytest.mark.parametrize("T0", [0.5, 0.4])  # ακT0 = δ and ακT0 < δ
def test_no_invading_front_when_killing_cannot_outpace_death(T0):
    assert minimal_speed(1.0, 1.0, 1.0, T0, 0.5) == 0.0
    solution = solve_front(D_E=1.0, alpha=1.0, kappa=1.0, T0=T0, delta=0.5)
    assert front_speed(solution) == 0.0
    positions = [front_position(solution.x, e, 1e-3) for e in solution.effector]
    assert np.nanmax(positions) < 20.0  # an invading front would be 80+ mm deep by now
    mass = trapezoid(solution.effector, solution.x, axis=1)
    assert np.all(np.diff(mass) < 0)  # CAR T only decline

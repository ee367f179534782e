"""Growth laws: closed forms, inflection points, the log-linear diagnostic, Jacobians."""

from __future__ import annotations

import numpy as np
import pytest

from cartfit.growth import EXPONENTIAL, GOMPERTZ, GROWTH_LAWS, LOGISTIC, get_growth_law
from cartfit.models.tumor_only import make_tumor_only
from cartfit.simulate.reference import solve_reference

# ten orders of magnitude: from 1e-6 to 1e4 reference burdens
LOG_B0 = np.log(1e-6)
PARAMS = {"exponential": [0.2], "logistic": [0.2, 1e4], "gompertz": [0.05, 1e4]}


@pytest.mark.parametrize("name", ["exponential", "logistic", "gompertz"])
def test_reference_solution_matches_closed_form_over_ten_decades(name):
    law = get_growth_law(name)
    params = PARAMS[name]
    times = np.linspace(0.0, 300.0, 61) if name == "gompertz" else np.linspace(0.0, 150.0, 61)
    solved = solve_reference(make_tumor_only(law), params, [LOG_B0], times)[:, 0]
    exact = law.log_solution(times, LOG_B0, params)
    # the trajectory really spans ten orders of magnitude
    assert exact.max() - exact.min() > 9.9 * np.log(10)
    assert np.max(np.abs(solved - exact)) < 1e-7


def _burden_at_max_growth_speed(law, params, t_end):
    """Locate max dB/dt along a solved trajectory (parabola through the 3 best grid points)."""
    times = np.linspace(0.0, t_end, 4001)
    log_b = solve_reference(make_tumor_only(law), params, [np.log(1e-3)], times)[:, 0]
    speed = np.array([np.exp(u) * law.per_capita(u, np.asarray(params)) for u in log_b])
    i = int(np.argmax(speed))
    assert 0 < i < times.size - 1, "maximum growth speed must lie inside the window"
    s0, s1, s2 = speed[i - 1 : i + 2]
    h = times[1] - times[0]
    t_star = times[i] + 0.5 * h * (s0 - s2) / (s0 - 2 * s1 + s2)
    return float(np.exp(np.interp(t_star, times, log_b)))


@pytest.mark.parametrize(
    ("law", "expected_fraction", "t_end"),
    [(LOGISTIC, 0.5, 150.0), (GOMPERTZ, 1.0 / np.e, 250.0)],
)
def test_inflection_point_is_where_growth_is_fastest(law, expected_fraction, t_end):
    capacity = 50.0
    params = [0.1, capacity]
    burden = _burden_at_max_growth_speed(law, params, t_end)
    assert burden == pytest.approx(expected_fraction * capacity, rel=2e-3)
    assert law.inflection(*params) == pytest.approx(expected_fraction * capacity, rel=1e-12)
    # the other law's inflection point is clearly different: the test discriminates
    other = GOMPERTZ if law is LOGISTIC else LOGISTIC
    assert abs(burden - other.inflection(*params)) > 0.1 * capacity


def _linear_fit_residual(times, log_b):
    coeffs = np.polyfit(times, log_b, 1)
    return np.max(np.abs(np.polyval(coeffs, times) - log_b)), coeffs


def test_log_burden_is_exactly_linear_only_for_exponential_growth():
    times = np.linspace(0.0, 60.0, 31)
    exp_log_b = solve_reference(make_tumor_only(EXPONENTIAL), [0.15], [np.log(0.01)], times)[:, 0]
    residual, (slope, intercept) = _linear_fit_residual(times, exp_log_b)
    assert residual < 1e-9
    assert slope == pytest.approx(0.15, rel=1e-9)
    assert intercept == pytest.approx(np.log(0.01), abs=1e-9)
    for law in (LOGISTIC, GOMPERTZ):
        log_b = solve_reference(make_tumor_only(law), [0.15, 1.0], [np.log(0.01)], times)[:, 0]
        assert _linear_fit_residual(times, log_b)[0] > 0.1


@pytest.mark.parametrize("name", sorted(GROWTH_LAWS))
def test_per_capita_jacobian_matches_central_differences(name):
    law = GROWTH_LAWS[name]
    rng = np.random.default_rng(20240611)
    for _ in range(5):
        u = rng.normal(0.0, 2.0)
        params = np.exp(rng.normal(0.0, 1.0, law.n_params))
        jp = np.zeros((2, law.n_params))
        g, d_du = law.per_capita_jac(u, params, jp, 1)
        out = jp[1]
        assert not jp[0].any()  # only the given row is written
        assert g == pytest.approx(law.per_capita(u, params), rel=1e-14)
        h = 1e-6
        fd_u = (law.per_capita(u + h, params) - law.per_capita(u - h, params)) / (2 * h)
        assert d_du == pytest.approx(fd_u, rel=1e-6, abs=1e-8)
        for j in range(law.n_params):
            step = np.zeros(law.n_params)
            step[j] = h * params[j]
            fd = (law.per_capita(u, params + step) - law.per_capita(u, params - step)) / (
                2 * step[j]
            )
            assert out[j] == pytest.approx(fd, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", sorted(GROWTH_LAWS))
def test_closed_form_gradient_matches_central_differences(name):
    """The compiled likelihood's pre-infusion rows: ``log_solution_grad`` gives the closed form
    and its derivatives in ln B0 and the log parameters, including the logistic law's linear
    continuation (B0 far above K, long before infusion)."""
    law = GROWTH_LAWS[name]
    rng = np.random.default_rng(7)
    cases = [(-rng.uniform(0, 60), rng.normal(0, 1.5), rng.normal(-1.0, 1.0, law.n_params))
             for _ in range(50)]  # fmt: skip
    cases.append((-59.2, 1.27, np.array([-1.66, 0.14])[: law.n_params]))  # a < eps (logistic)
    h = 1e-6
    for t, log_b0, log_p in cases:
        d_log_p = np.zeros(law.n_params)
        value, d_b0 = law.log_solution_grad(t, log_b0, np.exp(log_p), d_log_p)

        def f(lb, lp, t=t):
            return law.log_solution(t, lb, list(np.exp(lp)), np)

        assert value == pytest.approx(f(log_b0, log_p), rel=1e-12, abs=1e-12)
        fd_b0 = (f(log_b0 + h, log_p) - f(log_b0 - h, log_p)) / (2 * h)
        assert d_b0 == pytest.approx(fd_b0, rel=1e-5, abs=1e-7)
        for k in range(law.n_params):
            e = h * np.eye(law.n_params)[k]
            fd = (f(log_b0, log_p + e) - f(log_b0, log_p - e)) / (2 * h)
            assert d_log_p[k] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", sorted(GROWTH_LAWS))
def test_closed_form_builds_the_same_numbers_with_pytensor(name):
    pt = pytest.importorskip("pytensor.tensor")
    law = GROWTH_LAWS[name]
    params = PARAMS[name]
    times = np.array([0.0, 3.0, 30.0])
    symbolic_params = [pt.as_tensor(np.float64(p)) for p in params]
    symbolic = law.log_solution(pt.as_tensor(times), pt.as_tensor(LOG_B0), symbolic_params, xp=pt)
    np.testing.assert_allclose(symbolic.eval(), law.log_solution(times, LOG_B0, params), rtol=1e-12)


def test_unknown_growth_law_lists_valid_names():
    with pytest.raises(ValueError, match="exponential.*gompertz.*logistic"):
        get_growth_law("richards")


def test_logistic_from_above_capacity_stays_finite_before_the_blow_up_time():
    """B0 = 2K: backwards in time B reaches infinity at t* = ln(1 - K/B0)/r = ln(0.5)/r. After
    t* the closed form is exact; before it the continuation is finite, increasing towards the
    past, and its gradient (through PyTensor) is finite, where ln of a negative gave NaN."""
    import pytensor
    import pytensor.tensor as pt

    r, k = 0.1, 1.0
    t_star = np.log(0.5) / r
    times = np.array([t_star - 20.0, t_star - 1.0, t_star + 1.0, 0.0, 10.0])
    values = LOGISTIC.log_solution(times, np.log(2.0), [r, k])
    assert np.all(np.isfinite(values))
    assert values[0] > values[1] > values[2] > values[3] > values[4] > 0.0
    exact = np.log(k / (1.0 - 0.5 * np.exp(-r * times[2:])))
    np.testing.assert_allclose(values[2:], exact, rtol=1e-12)
    log_b0, rate = pt.dscalar("log_b0"), pt.dscalar("r")
    pred = LOGISTIC.log_solution(pt.as_tensor(times), log_b0, [rate, pt.as_tensor(k)], xp=pt)
    grad = pytensor.function([log_b0, rate], pytensor.grad(pred.sum(), [log_b0, rate]))
    assert np.all(np.isfinite(grad(np.log(2.0), r)))

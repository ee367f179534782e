"""The compiled sensitivity solver against the SciPy reference and finite differences."""

import numpy as np
import pytest

from cartfit.inference.solver import get_batch_solver
from cartfit.models import get_model
from cartfit.simulate.reference import solve_reference

TIMES = np.array([0.0, 0.5, 1, 4, 7, 10, 14, 21, 28, 56, 90, 180, 365.0])
#: expansion, regression and contraction within the year (peak ~day 10, tumour down 3 logs)
PARAMS = {
    "growth_rate": 0.03,
    "carrying_capacity": 10.0,
    "kill_rate": 0.5,
    "proliferation_rate": 0.5,
    "death_rate": 0.1,
}
LOG_Y0 = np.array([0.0, np.log(2.5e-4)])


def _solve(model, log_p, log_y0, times=TIMES, rtol=1e-6, atol=1e-6, with_sens=True):
    solve = get_batch_solver(model, with_sens)
    ys, sens, status = solve(
        np.atleast_2d(log_p),
        np.atleast_2d(log_y0),
        np.atleast_2d(times),
        np.array([len(times)]),
        rtol,
        atol,
        100_000,
    )
    return ys[0], sens[0], status[0]


@pytest.mark.parametrize("growth", ["exponential", "logistic", "gompertz"])
def test_matches_tight_reference_through_expansion(growth):
    """Log states agree with LSODA at rtol 1e-10 to 1e-4: the local tolerance 1e-6 accumulates
    over ~150 steps through a 10^4-fold expansion and tumour regrowth; 1e-4 on a log state is a
    0.01 % error, three orders below assay noise (~20-40 %)."""
    model = get_model("predator_prey", growth)
    params = {k: v for k, v in PARAMS.items() if k in model.parameter_names}
    ref = solve_reference(model, params, LOG_Y0, TIMES)
    ys, _, status = _solve(model, np.log(model.pack(params)), LOG_Y0)
    assert status == 0
    assert np.max(np.abs(ys - ref)) < 1e-4
    # the case is not trivial: CAR T expands more than 1000-fold
    assert ys[:, 1].max() - LOG_Y0[1] > np.log(1000)


def test_sensitivities_match_finite_differences():
    """d y / d(log p, y0) agrees with central differences of tightly solved states (step 1e-5,
    truncation error ~1e-10, solver error 1e-11 / 1e-5 = 1e-6) to 1e-3 absolute."""
    model = get_model("predator_prey", "gompertz")
    log_p = np.log(model.pack(PARAMS))
    _, sens, _ = _solve(model, log_p, LOG_Y0, rtol=1e-10, atol=1e-10)
    theta = np.concatenate([log_p, LOG_Y0])
    eps = 1e-5
    for j in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[j] += eps
        down[j] -= eps
        y_up = _solve(model, up[:5], up[5:], rtol=1e-11, atol=1e-11, with_sens=False)[0]
        y_down = _solve(model, down[:5], down[5:], rtol=1e-11, atol=1e-11, with_sens=False)[0]
        np.testing.assert_allclose(sens[:, :, j], (y_up - y_down) / (2 * eps), atol=1e-3)


def test_failed_solve_is_flagged_not_raised():
    """A system whose right-hand side overflows (growth rate e^800 per day) reports status 1
    with zeroed outputs, and the other subject of the batch is still solved."""
    model = get_model("predator_prey", "exponential")
    log_p = np.array([800.0, np.log(0.5), np.log(0.5), np.log(0.1)])
    solve = get_batch_solver(model, True)
    ys, sens, status = solve(
        np.array([log_p, np.log([0.03, 0.5, 0.5, 0.1])]),
        np.array([[2.0, 0.0], [0.0, -8.0]]),
        np.vstack([TIMES, TIMES]),
        np.array([len(TIMES)] * 2),
        1e-6,
        1e-6,
        2000,
    )
    assert status.tolist() == [1, 0]
    assert np.all(ys[0] == 0) and np.all(sens[0] == 0)
    assert np.all(np.isfinite(ys[1]))


def test_padded_rows_repeat_their_last_time():
    model = get_model("predator_prey", "gompertz")
    log_p = np.log(model.pack(PARAMS))
    solve = get_batch_solver(model, True)
    times = np.vstack([TIMES, np.r_[TIMES[:5], np.repeat(TIMES[4], len(TIMES) - 5)]])
    ys, _, status = solve(
        np.vstack([log_p, log_p]),
        np.vstack([LOG_Y0, LOG_Y0]),
        times,
        np.array([len(TIMES), 5]),
        1e-6,
        1e-6,
        100_000,
    )
    assert status.tolist() == [0, 0]
    # the short row ends its last step on day TIMES[4]; the long one interpolates there
    np.testing.assert_allclose(ys[1, :5], ys[0, :5], atol=2e-5)
    np.testing.assert_allclose(ys[1, 5:], np.repeat(ys[1, 4:5], len(TIMES) - 5, axis=0))


@pytest.mark.parametrize("name", ["escape", "multifate"])
def test_other_models_match_reference(name):
    """The compiled solver reproduces the reference solver for every registered model."""
    model = get_model(name, "gompertz")
    params = np.array([p.median for p in model.parameters])
    log_y0 = model.extras["initial_state"](1.0, 2.5e-4)
    ref = solve_reference(model, params, log_y0, TIMES)
    ys, _, status = _solve(model, np.log(params), log_y0, rtol=1e-8, atol=1e-8)
    assert status == 0
    assert np.max(np.abs(ys - ref)) < 1e-4


def test_sensitivities_stay_accurate_where_memory_tracks_effectors_fast():
    """Multi-fate point where a chain of data/example's population fit stopped (subject S14):
    memory cells ~e^-10 fed by effectors make ln M relax on a time scale far shorter than the
    steps the states alone need. Before the sensitivities entered the error control, their
    fast mode was integrated outside DOPRI5's stability region and d ln M / d ln(memory death)
    came out as 2.2e6 where finite differences of the solution give ~1; the sampler's step size
    then collapsed to 1e-6. Now every sensitivity agrees with central differences (step 1e-6
    in the log parameter) to 1e-3 of the largest one."""
    model = get_model("multifate", "gompertz")
    log_p = np.array([
        -4.520949843418418, -0.8543607446855912, -0.8208968080542688, 2.255082320137668,
        -1.8323003859261962, -4.093464346935454, -2.89131002310437, -0.8535103343052102,
        0.11638049863242549, -2.122742527069125, 1.3917738981110674, -4.188101530973163,
        0.0, -0.10536051565782628, 1.0986122886681098, 2.6390573296152584,
    ])  # fmt: skip
    log_y0 = np.array([-9.651440745672888, -10.463142243879917, -10.918879726381576,
                       -0.45574233953517695])  # fmt: skip
    times = np.array([0.0, 1.09, 3.73, 7.05, 9.79, 14.16, 21.31, 28.65, 57.42, 177.05, 276.4,
                      360.42])  # fmt: skip
    _, sens, status = _solve(model, log_p, log_y0, times, rtol=1e-5, atol=1e-5)
    assert status == 0
    h = 1e-6
    for q in range(model.n_params + model.n_states):
        up, down = log_p.copy(), log_p.copy()
        y_up, y_down = log_y0.copy(), log_y0.copy()
        if q < model.n_params:
            up[q] += h
            down[q] -= h
        else:
            y_up[q - model.n_params] += h
            y_down[q - model.n_params] -= h
        fd = (_solve(model, up, y_up, times, 1e-5, 1e-5)[0]
              - _solve(model, down, y_down, times, 1e-5, 1e-5)[0]) / (2 * h)  # fmt: skip
        np.testing.assert_allclose(sens[..., q], fd, atol=1e-3 * np.abs(sens).max())

"""Relapse, escape and cure probabilities: closed forms against exact results and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cartfit.analysis.birth_death import (
    constant_rate_survival,
    establishment_probability,
    survival_to,
)
from cartfit.analysis.compound import compound_tail
from cartfit.analysis.relapse import (
    branching_rates,
    branching_relapse,
    relapse_grid,
    relapse_probabilities,
)
from cartfit.simulate.branching import outcome_frequencies, simulate_lineages

KEYS = ("p_relapse", "p_relapse_antigen_pos", "p_relapse_antigen_neg", "p_cure")


def scenario(n0, growth, kill, loss, neg_growth, kill_off, neg0, horizon=240.0):
    """CAR T peak at day 7 (level 1, gamma-shaped); T_A(t) = n0 exp(r t - k int C)."""
    t = relapse_grid(horizon)
    car_t = (t / 7.0) ** 2 * np.exp(2.0 * (1.0 - t / 7.0))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (car_t[1:] + car_t[:-1]) * np.diff(t))])
    tumor_pos = n0 * np.exp(growth * t - kill * cum)
    return dict(
        times=t,
        tumor_pos=tumor_pos,
        antigen_loss_rate=loss,
        neg_net_growth=neg_growth - kill_off * car_t,
        tumor_neg0=neg0,
        birth_rate=0.5,
    ), 0.1 * n0


# (n0, r, k, mu, r_neg, kappa_off, neg0): probabilities from 0.004 to 0.996 at 60/120/240 d
CASES = {
    "pos_cure_or_regrowth": (1e6, 0.07, 1.1, 0.0, 0.05, 0.0, 0),
    "rare_escape": (1e6, 0.03, 1.3, 2e-6, 0.09, 0.0, 0),
    "escape_with_off_target_killing": (1e6, 0.03, 1.3, 2e-5, 0.1, 0.3, 0),
    "mixed_relapse": (1e6, 0.06, 1.05, 5e-6, 0.08, 0.1, 0),
    "few_negative_founders": (1e6, 0.02, 1.3, 0.0, 0.07, 0.5, 50),
    "frequent_escape": (1e6, 0.03, 1.3, 2e-5, 0.07, 0.05, 0),
    "both_parts_race": (1e8, 0.06, 1.2, 3e-8, 0.065, 0.0, 0),
}
HORIZONS = (60.0, 120.0, 240.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_form_matches_exact_simulation(name):
    """Closed form vs exact simulation, |difference| <= 0.02 for every probability.

    10 000 replicates give a Monte Carlo SE <= sqrt(0.25/10 000) = 0.005 on every frequency,
    so 0.02 is 4 SE (the closed form's own error measured with 40 000 replicates is <= 0.006).
    """
    kw, threshold = scenario(*CASES[name])
    rates = branching_rates(**kw)
    closed = branching_relapse(rates, threshold, HORIZONS)
    rng = np.random.default_rng(20260 + sorted(CASES).index(name))
    pos, neg = simulate_lineages(
        kw["times"], int(kw["tumor_pos"][0]), rates.pos_birth, rates.pos_death,
        int(kw["tumor_neg0"]), rates.neg_birth, rates.neg_death, rates.immigration,
        10_000, rng,
    )  # fmt: skip
    sim = outcome_frequencies(kw["times"], pos, neg, threshold, HORIZONS)
    for key in KEYS:
        np.testing.assert_allclose(closed[key], sim[key], atol=0.02, err_msg=f"{name} {key}")


def test_deterministic_trajectory_alone_would_be_wrong():
    """Negative control: the mean trajectory regrows above the threshold (a deterministic
    relapse certainty), but most simulated patients are cured — and so says the closed form."""
    kw, threshold = scenario(*CASES["pos_cure_or_regrowth"])
    assert kw["tumor_pos"][-1] > threshold
    out = relapse_probabilities(threshold=threshold, horizons=[240.0], **kw)
    assert out["p_relapse"][0] < 0.5
    assert out["p_cure"][0] > 0.5


def test_cure_of_supercritical_founders_is_death_over_birth_power_n():
    # T_A = 3 e^{0.2 t} with b = 0.5: death 0.3, eventual extinction (0.3/0.5)^3
    t = relapse_grid(240.0)
    out = relapse_probabilities(t, 3.0 * np.exp(0.2 * t), threshold=1e9, horizons=[240.0])
    assert out["p_cure"][0] == pytest.approx(0.6**3, abs=1e-9)
    assert out["p_relapse_antigen_neg"][0] == 0.0


def test_no_response_no_relapse_and_vectorised_over_draws():
    kws = [scenario(*CASES[n]) for n in ("rare_escape", "mixed_relapse")]
    t = kws[0][0]["times"]
    stacked = np.stack([kw["tumor_pos"] for kw, _ in kws] + [1e6 * np.exp(0.01 * t)])
    loss = np.array([kws[0][0]["antigen_loss_rate"], kws[1][0]["antigen_loss_rate"], 1e-6])
    neg = np.stack([kw["neg_net_growth"] for kw, _ in kws] + [np.full_like(t, 0.05)])
    thr = np.array([1e5, 1e5, 1e5])
    out = relapse_probabilities(t, stacked, thr, HORIZONS, loss, neg)
    for i, (kw, threshold) in enumerate(kws):
        one = relapse_probabilities(threshold=threshold, horizons=HORIZONS, **kw)
        for key in KEYS:
            np.testing.assert_allclose(out[key][i], one[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out["p_response"][2], 0.0)
    np.testing.assert_array_equal(out["p_relapse"][2], 0.0)


def test_survival_constant_rates_and_establishment():
    t = np.linspace(0.0, 200.0, 401)
    surv, mean = survival_to(t, np.full(400, 0.5), np.full(400, 0.3), 400)
    tau = 200.0 - t
    want = 0.2 / (0.5 - 0.3 * np.exp(-0.2 * tau))
    np.testing.assert_allclose(surv, want, rtol=1e-12)
    np.testing.assert_allclose(mean * surv, np.exp(0.2 * tau), rtol=1e-10)
    assert surv[0] == pytest.approx(establishment_probability(0.5, 0.3), abs=1e-12)
    assert establishment_probability(0.3, 0.5) == 0.0
    assert constant_rate_survival(0.5, 0.3, 200.0) == pytest.approx(surv[0])


def test_survival_piecewise_rates_matches_composed_generating_functions():
    rng = np.random.default_rng(5)
    t = np.cumsum(np.r_[0.0, rng.uniform(0.1, 2.0, 30)])
    lam, mu = rng.uniform(0.1, 1.0, 30), rng.uniform(0.0, 2.0, 30)
    q = 0.0  # extinction probability by t_end, composed backwards interval by interval
    for i in range(29, -1, -1):
        s1 = constant_rate_survival(lam[i], mu[i], t[i + 1] - t[i])
        p = s1 * np.exp(-(lam[i] - mu[i]) * (t[i + 1] - t[i]))
        q = (1 - s1) + s1 * p * q / (1 - (1 - p) * q)
    surv, _ = survival_to(t, lam, mu, 30)
    assert surv[0] == pytest.approx(1 - q, rel=1e-10)


@pytest.mark.parametrize("lam", [0.001, 0.1, 1.0, 5.0, 50.0, 1000.0])
def test_compound_tail_of_poisson_exponential_sum(lam):
    # Poisson(lam) lineages of Exp(M) cells: P(Z >= N) = P(K - Y >= 1), Y ~ Poisson(N/M)
    m = 7.0
    n = np.array([0.1, 0.6, 1.0, 1.5, 3.0]) * max(lam, 1.0) * m
    tail, p0 = compound_tail(n, stream=(np.array([lam]), np.array([m])))
    np.testing.assert_allclose(tail, stats.skellam.sf(0, lam, n / m), atol=0.003)
    np.testing.assert_allclose(p0, np.exp(-lam))


def test_compound_tail_binomial_founders_and_many_scales():
    # 3 founders surviving w.p. S, Exp(M) sizes: sum over Binomial(3, S) of Gamma(k, M) tails
    for s in (0.05, 0.4, 0.9):
        n = np.array([0.5, 2.0, 5.0]) * 7.0
        tail, _ = compound_tail(n, founders=(np.array([3.0]), np.array([s]), np.array([7.0])))
        exact = sum(stats.binom.pmf(k, 3, s) * stats.gamma.sf(n / 7.0, k) for k in (1, 2, 3))
        np.testing.assert_allclose(tail, exact, atol=1e-6)
    # clones from 1 to 3e8 cells: seeded Monte Carlo with 200 000 draws (SE <= 0.0012)
    w, m = np.array([0.5, 1.0, 3.0, 2.0, 0.7]), np.array([3e8, 1e6, 1e4, 30.0, 1.0])
    rng = np.random.default_rng(6)
    z = np.zeros(200_000)
    for wi, mi in zip(w, m, strict=True):
        k = rng.poisson(wi, z.size)
        z[k > 0] += rng.gamma(k[k > 0], mi)
    n = np.array([1e2, 1e4, 1e5, 1e7, 1e9])
    tail, _ = compound_tail(n, stream=(w, m))
    np.testing.assert_allclose(tail, [(z >= x).mean() for x in n], atol=0.005)


# --- relapse table from fit files with point-mass posteriors ----------------------------------


def write_fit(path, model_name, theta, log_y0, meta, n_draw=3):
    """A subject fit (cartfit.inference.fitfile layout) whose posterior is one point."""
    import json

    import xarray as xr

    from cartfit.models import get_model

    model = get_model(model_name, "gompertz")
    subjects = [f"S{i + 1}" for i in range(len(theta))]
    full = (1, n_draw)
    n_obs = len(subjects)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({
            "theta": (("chain", "draw", "subject", "parameter"),
                      np.broadcast_to(theta, (*full, *np.shape(theta)))),
            "log_y0": (("chain", "draw", "subject", "state"),
                       np.broadcast_to(log_y0, (*full, *np.shape(log_y0)))),
            "sigma": (("chain", "draw", "analyte"), np.full((*full, 2), 0.3)),
        }, coords={"subject": subjects, "parameter": list(model.parameter_names),
                   "state": list(model.states), "analyte": ["car_t", "tumor"]}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), np.zeros((*full, n_obs)))}),
        "observed_data": xr.Dataset({"y": ("obs", np.ones(n_obs))}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", np.asarray(subjects)),
            "obs_time": ("obs", np.full(n_obs, 30.0)),
            "obs_analyte": ("obs", np.full(n_obs, "tumor")),
            "obs_lloq": ("obs", np.full(n_obs, np.nan)),
            "obs_blq": ("obs", np.zeros(n_obs, dtype=np.int64)),
            "scale": ("analyte", [1e4, 50.0]),
        }, coords={"analyte": ["car_t", "tumor"]}),
    })  # fmt: skip
    tree.attrs.update({"model": model_name, "growth": "gompertz", "mode": "subject",
                       "subjects": json.dumps(subjects), "data_sha256": "x",
                       "units": json.dumps({"car_t": "copies/ug", "tumor": "mm2"}),
                       "cohort_meta": json.dumps(meta)})  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return model


def test_relapse_table_of_point_mass_matches_direct_computation(tmp_path):
    """5000 tumour cells at baseline (100 cells/mm2), a 2-log nadir: extinction and relapse
    both have intermediate probabilities; the table must equal the closed form applied to the
    reference solution of the same ODE."""
    from scipy.integrate import solve_ivp

    from cartfit.analysis import relapse_table

    theta = np.array([[0.04, 10.0, 3.0, 0.5, 0.1]])
    log_y0 = np.array([[0.0, np.log(2.5e-4)]])
    meta = {"tumor_cells_per_unit": 100.0, "relapse_threshold": 5.0}
    model = write_fit(tmp_path / "f.nc", "predator_prey", theta, log_y0, meta)
    table = relapse_table(tmp_path / "f.nc", horizons=[90, 180, 365])
    assert list(table.columns[:6]) == [
        "subject", "horizon_days", "p_relapse", "p_relapse_antigen_pos",
        "p_relapse_antigen_neg", "p_cure",
    ]  # fmt: skip
    t = relapse_grid(365.0)
    sol = solve_ivp(lambda tt, y: model.rhs(tt, y, theta[0]), (0, 365), log_y0[0], t_eval=t,
                    method="LSODA", rtol=1e-10, atol=1e-10)  # fmt: skip
    direct = relapse_probabilities(t, 50.0 * np.exp(sol.y[0]) * 100.0, 500.0, [90, 180, 365])
    for key in KEYS:
        np.testing.assert_allclose(table[key], direct[key], atol=2e-3, err_msg=key)
    assert 0.05 < table["p_cure"].iloc[-1] < 0.95
    assert (table["p_relapse_antigen_neg"] == 0).all()


def test_relapse_table_escape_grows_with_antigen_loss(tmp_path):
    from cartfit.analysis import relapse_table

    base = [0.04, 10.0, 3.0, 0.02, 0.5, 0.1]
    theta = np.array([base + [1e-12], base + [1e-3]])
    log_y0 = np.array([[0.0, np.log(1e-9), np.log(2.5e-4)]] * 2)
    meta = {"tumor_cells_per_unit": 1e6, "relapse_threshold": 5.0}
    write_fit(tmp_path / "e.nc", "escape", theta, log_y0, meta)
    table = relapse_table(tmp_path / "e.nc", horizons=[90, 365]).set_index(
        ["subject", "horizon_days"]
    )
    low, high = table.loc[("S1", 365)], table.loc[("S2", 365)]
    assert low["p_relapse_antigen_neg"] < 0.05
    assert high["p_relapse_antigen_neg"] > low["p_relapse_antigen_neg"] + 0.2
    np.testing.assert_allclose(
        table["p_relapse"], table["p_relapse_antigen_pos"] + table["p_relapse_antigen_neg"]
    )

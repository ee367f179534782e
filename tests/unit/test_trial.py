"""Virtual trials from point-mass population posteriors (no sampler needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from cartfit.analysis import exposure_table, relapse_table, virtual_trial
from cartfit.analysis.trial import _rate_row
from cartfit.errors import CartfitError
from cartfit.models import get_model

MODEL = get_model("predator_prey", "gompertz")
#: tumour falls 2.4 logs by day 30 and oscillates back above 10 % of baseline by day ~50
THETA = np.array([0.04, 10.0, 0.5, 0.5, 0.1])
LOG_Y0 = np.array([0.0, np.log(2.5e-4)])
SCALES = {"car_t": 1e4, "tumor": 50.0}


def write_population_fit(path, costims=("4-1BB",), omega=0.0, betas=None, mode="population",
                         n_draw=3):  # fmt: skip
    """Population fit (cartfit.inference.fitfile layout) with a point-mass posterior: every
    subject has THETA and LOG_Y0, mu = ln THETA, omega and covariate effects as given."""
    subjects = [f"S{i + 1}" for i in range(len(costims))]
    n_s, n_p = len(subjects), len(THETA)
    full = (1, n_draw)
    post = {
        "theta": (("chain", "draw", "subject", "parameter"),
                  np.broadcast_to(THETA, (*full, n_s, n_p))),
        "log_y0": (("chain", "draw", "subject", "state"),
                   np.broadcast_to(LOG_Y0, (*full, n_s, 2))),
        "sigma": (("chain", "draw", "analyte"), np.full((*full, 2), 0.3)),
        "mu": (("chain", "draw", "parameter"), np.broadcast_to(np.log(THETA), (*full, n_p))),
        "omega": (("chain", "draw", "parameter"), np.full((*full, n_p), omega)),
    }  # fmt: skip
    for name, beta in (betas or {}).items():
        post[f"beta_{name}"] = (("chain", "draw", "parameter"), np.broadcast_to(beta, (*full, n_p)))
    times = np.array([-7.0, 3.0, 14.0, 90.0])
    n_obs = n_s * len(times)
    obs = np.arange(n_obs)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset(post, coords={"subject": subjects,
                                              "parameter": list(MODEL.parameter_names),
                                              "state": list(MODEL.states),
                                              "analyte": ["car_t", "tumor"]}),
        "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), np.zeros((*full, n_obs)))}),
        "observed_data": xr.Dataset({"y": ("obs", np.ones(n_obs))}, coords={"obs": obs}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", np.repeat(subjects, len(times))),
            "obs_time": ("obs", np.tile(times, n_s)),
            "obs_analyte": ("obs", np.full(n_obs, "car_t")),
            "obs_lloq": ("obs", np.full(n_obs, 30.0)),
            "obs_blq": ("obs", np.zeros(n_obs, dtype=np.int64)),
            "scale": ("analyte", [SCALES["car_t"], SCALES["tumor"]]),
            "subject_dose": ("subject", np.full(n_s, 1e8)),
            "subject_costim": ("subject", np.asarray(costims, dtype=str)),
        }, coords={"obs": obs, "analyte": ["car_t", "tumor"], "subject": subjects}),
    })  # fmt: skip
    tree.attrs.update({
        "model": "predator_prey", "growth": "gompertz", "mode": mode,
        "subjects": json.dumps(subjects), "data_sha256": "x",
        "units": json.dumps({"car_t": "copies/ug", "tumor": "mm2"}),
        "cohort_meta": json.dumps({"relapse_threshold": None, "tumor_cells_per_unit": None}),
    })  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return path


def test_identical_virtual_subjects_reproduce_the_subject_tables(tmp_path):
    fit = write_population_fit(tmp_path / "pop.nc")
    trial = virtual_trial(fit, n_subjects=12, seed=3, n_draws=3, per_draw=4).set_index("quantity")
    assert list(trial.columns) == [
        "mean", "median", "q05", "q95", "unit", "dose", "costim", "lymphodepletion", "n_subjects"
    ]  # fmt: skip
    rel = relapse_table(fit, horizons=[90, 180, 365]).set_index("horizon_days")
    for h in (90, 180, 365):
        assert trial.loc[f"p_relapse_{h}d", "mean"] == pytest.approx(rel.loc[h, "p_relapse"])
        assert trial.loc[f"p_cure_{h}d", "mean"] == pytest.approx(rel.loc[h, "p_cure"])
    # millions of cells at the nadir: the deterministic regrowth is a certain relapse
    np.testing.assert_allclose(rel["p_relapse"], 1.0)
    np.testing.assert_allclose(rel["p_response"], 1.0)
    assert (rel["p_relapse_antigen_neg"] == 0).all()  # no antigen-negative compartment
    assert trial.loc["response_rate", "mean"] == 1.0
    table = exposure_table(fit)
    exp = table[table["subject"] == "S1"].set_index("metric")
    for name in ("cmax", "tmax", "auc_0_28", "killing_exposure", "c_ctrl"):
        assert trial.loc[name, "median"] == pytest.approx(exp.loc[name, "median"], rel=1e-6)
        assert trial.loc[name, "q05"] == pytest.approx(trial.loc[name, "q95"], rel=1e-9)


def test_dose_and_costim_arms(tmp_path):
    beta = np.zeros(len(THETA))
    beta[MODEL.parameter_names.index("kill_rate")] = 1.0  # CD28 kills e-fold faster
    fit = write_population_fit(tmp_path / "pop.nc", costims=("4-1BB", "CD28"), omega=0.1,
                               betas={"costim_cd28": beta})  # fmt: skip
    small = {"n_subjects": 40, "seed": 1, "n_draws": 8, "per_draw": 5}
    low = virtual_trial(fit, dose=1e7, costim="4-1BB", **small).set_index("quantity")
    high = virtual_trial(fit, dose=1e9, costim="4-1BB", **small).set_index("quantity")
    cd28 = virtual_trial(fit, dose=1e9, costim="CD28", **small).set_index("quantity")
    # a larger dose peaks earlier; in the predator-prey model faster killing removes the
    # antigen that drives expansion, so the peak is also lower (seen in the model, not assumed)
    assert high.loc["tmax", "median"] < low.loc["tmax", "median"] - 2
    assert cd28.loc["cmax", "median"] < high.loc["cmax", "median"]
    # same virtual subjects (same seed), kill rate x e: C_ctrl = r/k falls by exactly e
    ratio = cd28.loc["c_ctrl", "median"] / high.loc["c_ctrl", "median"]
    assert ratio == pytest.approx(np.exp(-1.0), rel=1e-9)
    assert cd28["costim"].iloc[0] == "CD28" and cd28["n_subjects"].iloc[0] == 40
    for table in (low, high, cd28):
        rates = table[table["unit"] == "fraction"]
        assert (
            (rates["q05"] <= rates["mean"] + 1e-12) & (rates["mean"] <= rates["q95"] + 1e-12)
        ).all()


def test_rate_interval_carries_the_uncertainty_of_the_population_parameters():
    """Posterior draws that disagree (every virtual subject responds at half of them, none at
    the other half) leave a trial's observed rate anywhere from 0 to 1, whatever its size."""
    p = np.repeat(np.tile([0.0, 1.0], 50), 10)  # 100 draws x 10 subjects
    row = _rate_row("response_rate", p, 10, 200, np.random.default_rng(0))
    assert row["mean"] == 0.5
    assert (row["q05"], row["q95"]) == (0.0, 1.0)


def test_rate_interval_without_parameter_uncertainty_is_binomial():
    """With the same rate 0.3 at every draw, the only spread between the draws' means is Monte
    Carlo noise of 40 subjects each, which the interval must not count: it is that of
    Binomial(200, 0.3)/200 (0.245-0.355). Counting the noise would widen it to about
    0.17-0.43; 2,000 draws keep the error of the noise estimate to about a sixth of the
    binomial variance, hence the tolerance of 0.01."""
    rng = np.random.default_rng(5)
    p = (rng.uniform(size=2000 * 40) < 0.3).astype(float)
    row = _rate_row("p_cure_90d", p, 40, 200, np.random.default_rng(6))
    lo, hi = stats.binom.ppf([0.05, 0.95], 200, 0.3) / 200
    assert row["q05"] == pytest.approx(lo, abs=0.01)
    assert row["q95"] == pytest.approx(hi, abs=0.01)


def test_trial_refusals(tmp_path):
    with pytest.raises(CartfitError, match="population fit"):
        virtual_trial(write_population_fit(tmp_path / "s.nc", mode="subject"))
    fit = write_population_fit(tmp_path / "p.nc")
    with pytest.raises(CartfitError, match="no co-stimulation effect"):
        virtual_trial(fit, costim="CD28", n_subjects=5)
    with pytest.raises(CartfitError, match="at least 1"):
        virtual_trial(fit, n_subjects=0)


def test_population_exposure_rows(tmp_path):
    """A population fit's exposure table adds the population-typical subject (subject effects
    zero) and a new subject (predictive): with omega = 0 both equal the cohort subject; with
    omega = 0.5 the new subject's 90 % interval of cmax is wider than the typical one's."""
    table = exposure_table(write_population_fit(tmp_path / "a.nc"), n_draws=60)
    by = table.set_index(["subject", "metric"])
    for who in ("population_typical", "new_subject"):
        assert by.loc[(who, "cmax"), "median"] == pytest.approx(by.loc[("S1", "cmax"), "median"],
                                                                rel=1e-6)
    table = exposure_table(write_population_fit(tmp_path / "b.nc", omega=0.5), n_draws=60)
    by = table.set_index(["subject", "metric"])
    width = {w: np.log(by.loc[(w, "cmax"), "q95"] / by.loc[(w, "cmax"), "q05"])
             for w in ("population_typical", "new_subject")}
    assert width["population_typical"] < 1e-9 < width["new_subject"]

"""Paired contrasts between virtual-trial arms (no sampler: point-mass population posteriors
and hand-made virtual-subject tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cartfit.analysis.trial import rate_names, trial_subjects
from cartfit.analysis.trial_contrast import trial_contrast
from cartfit.cli import main
from cartfit.errors import CartfitError
from tests.unit.test_trial import MODEL, THETA, write_population_fit


def _arm(path, p, n_draws=100, per_draw=20):
    """A virtual-subject table whose every outcome probability is ``p`` (array or scalar)."""
    n = n_draws * per_draw
    table = pd.DataFrame({"block": np.arange(n) // per_draw, "draw": np.arange(n) // per_draw,
                          "subject": "S1"})  # fmt: skip
    for name in rate_names():
        table[name] = np.broadcast_to(p, n)
    table["cmax"] = 1.0
    table["fit"] = "predator_prey/gompertz data x"
    table.to_csv(path, index=False)
    return path


def test_difference_interval_is_that_of_two_independent_arms(tmp_path):
    """Rates 0.6 and 0.4 at every draw and in every patient: no parameter uncertainty, so the
    observed difference of a 200-per-arm trial is the difference of two independent
    Binomial(200, .)/200, normal to about 0.005 here (sd 0.049; 5-95 % at 0.2 -+ 0.081); 4,000
    simulated trials give its quantiles to about 0.006, hence the tolerance 0.015."""
    arm, ref = _arm(tmp_path / "a.csv", 0.6), _arm(tmp_path / "b.csv", 0.4)
    table = trial_contrast(arm, ref, n_subjects=200, seed=3).set_index("quantity")
    row = table.loc["p_relapse_180d"]
    sd = np.sqrt(2 * 0.6 * 0.4 / 200)
    assert row["mean"] == pytest.approx(0.2)
    assert row["q05"] == pytest.approx(0.2 - stats.norm.ppf(0.95) * sd, abs=0.015)
    assert row["q95"] == pytest.approx(0.2 + stats.norm.ppf(0.95) * sd, abs=0.015)
    assert row["p_population_higher"] == 1.0
    assert row["p_trial_higher"] > 0.99
    assert table.loc["cmax_ratio", "median"] == pytest.approx(1.0)
    assert (table["arm"] == "a").all() and (table["reference"] == "b").all()


def test_an_arm_against_itself(tmp_path):
    rng = np.random.default_rng(0)
    arm = _arm(tmp_path / "a.csv", rng.uniform(size=2000))
    table = trial_contrast(arm, arm, n_subjects=100, seed=1).set_index("quantity")
    rates = table.loc[rate_names()]
    assert (rates["mean"] == 0).all() and (rates["p_population_higher"] == 0).all()
    assert rates["median"].abs().max() <= 0.01
    assert ((rates["q05"] < 0) & (rates["q95"] > 0)).all()
    np.testing.assert_allclose(rates["p_trial_higher"], 0.5, atol=0.03)


def test_costim_arms_of_a_fit_are_paired(tmp_path):
    """CD28 kills e-fold faster (point-mass posterior, subject effects 0.1): from the same
    virtual patients, the peak is lower in every one (the antigen that drives expansion goes
    sooner), so the population ratio's interval lies below 1 and P(higher) is 0."""
    beta = np.zeros(len(THETA))
    beta[MODEL.parameter_names.index("kill_rate")] = 1.0
    fit = write_population_fit(tmp_path / "pop.nc", costims=("4-1BB", "CD28"), omega=0.1,
                               betas={"costim_cd28": beta})  # fmt: skip
    small = {"seed": 4, "n_draws": 3, "per_draw": 4}
    paths = {}
    for arm in ("CD28", "4-1BB"):
        paths[arm] = tmp_path / f"{arm}.csv"
        trial_subjects(fit, costim=arm, **small).to_csv(paths[arm], index=False)
    a, b = pd.read_csv(paths["CD28"]), pd.read_csv(paths["4-1BB"])
    assert (a["draw"] == b["draw"]).all() and (a["subject"] == b["subject"]).all()
    assert (a["cmax"] < b["cmax"]).all()
    table = trial_contrast(paths["CD28"], paths["4-1BB"], n_subjects=50).set_index("quantity")
    assert table.loc["cmax_ratio", "q95"] < 1.0
    assert table.loc["cmax_ratio", "p_population_higher"] == 0.0
    # another seed draws other virtual patients: not paired
    trial_subjects(fit, costim="4-1BB", seed=5, n_draws=3, per_draw=4).to_csv(
        tmp_path / "other.csv", index=False
    )
    with pytest.raises(CartfitError, match=r"differ at row \d+, column '(draw|subject)'"):
        trial_contrast(paths["CD28"], tmp_path / "other.csv")


def test_contrast_refusals(tmp_path):
    arm = _arm(tmp_path / "a.csv", 0.5)
    with pytest.raises(CartfitError, match="virtual subjects, .* 1000"):
        trial_contrast(arm, _arm(tmp_path / "b.csv", 0.5, n_draws=50))
    other = pd.read_csv(arm)
    other["fit"] = "predator_prey/logistic data x"
    other.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(CartfitError, match="row 2, column 'fit'.*the same fit"):
        trial_contrast(arm, tmp_path / "c.csv")
    pd.read_csv(arm).drop(columns="draw").to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(CartfitError, match=r"d\.csv: not a virtual-subject table.*draw"):
        trial_contrast(arm, tmp_path / "d.csv")
    with pytest.raises(CartfitError, match="at least 1"):
        trial_contrast(arm, arm, n_subjects=0)


def test_cli_writes_subjects_and_contrast(tmp_path, capsys):
    beta = np.zeros(len(THETA))
    beta[MODEL.parameter_names.index("kill_rate")] = 1.0
    fit = write_population_fit(tmp_path / "pop.nc", costims=("4-1BB", "CD28"), omega=0.1,
                               betas={"costim_cd28": beta})  # fmt: skip
    for arm in ("CD28", "4-1BB"):
        assert main(["trial", str(fit), "--out", str(tmp_path / f"t_{arm}.csv"), "--costim", arm,
                     "--draws", "2", "--per-draw", "3", "--subjects-out",
                     str(tmp_path / f"s_{arm}.csv")]) == 0  # fmt: skip
    out = tmp_path / "contrast.csv"
    assert (
        main(
            [
                "trial-contrast",
                str(tmp_path / "s_CD28.csv"),
                str(tmp_path / "s_4-1BB.csv"),
                "--out",
                str(out),
                "--arm-name",
                "CD28",
                "--reference-name",
                "4-1BB",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert list(table["quantity"][:2]) == ["response_rate", "p_relapse_90d"]
    assert (table["arm"] == "CD28").all() and (table["n_subjects"] == 200).all()
    assert len(pd.read_csv(tmp_path / "s_CD28.csv")) == 6

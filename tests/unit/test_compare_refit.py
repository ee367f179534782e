"""Exact leave-one-out refits and k-fold over subjects in ``cartfit compare``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr
from scipy import special, stats

from cartfit.analysis import kfold as K
from cartfit.analysis import refit as R
from cartfit.analysis.compare import compare_fits
from cartfit.analysis.elpd import Pointwise, compare_pointwise, stacking_weights, with_exact
from cartfit.errors import CartfitError

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "example"
LIGHT = {"chains": 1, "tune": 60, "draws": 60, "cores": 1, "n_starts": 0}
#: for a comparison of Monte Carlo estimates: with 60 draws the PSIS and exact elpd of one point
#: moved by more than 1 when the compiled kernels were rebuilt (same arithmetic, other draws)
STEADY = {"chains": 2, "tune": 300, "draws": 300, "cores": 1}


def logmeanexp(x: np.ndarray) -> float:
    return float(special.logsumexp(x) - np.log(len(x)))


# --- arithmetic -------------------------------------------------------------------------------


def test_exact_values_replace_psis_and_totals_follow():
    loo = Pointwise(np.array([-1.0, -2.0, -30.0, -1.5]), np.array([-0.9, -1.8, -5.0, -1.4]))
    fixed = with_exact(loo, {2: -8.0})
    np.testing.assert_array_equal(fixed.elpd_i, [-1.0, -2.0, -8.0, -1.5])
    assert loo.elpd_i[2] == -30.0  # the input is left alone
    assert fixed.elpd == pytest.approx(-12.5)
    # mean -3.125, squared deviations 4.515625 + 1.265625 + 23.765625 + 2.640625 = 32.1875
    assert fixed.se == pytest.approx(np.sqrt(4 * 32.1875 / 3))
    assert fixed.p == pytest.approx(0.1 + 0.2 + 3.0 + 0.1)  # sum of lppd_i - elpd_i


def test_differences_use_paired_pointwise_values():
    lppd = np.zeros(4)
    a = Pointwise(np.array([-1.0, -2.0, -1.0, -1.0]), lppd)
    b = Pointwise(np.array([-1.5, -2.0, -3.0, -1.2]), lppd)
    table = compare_pointwise({"b": b, "a": a})
    assert list(table.index) == ["a", "b"]
    diff = np.array([-0.5, 0.0, -2.0, -0.2])
    assert table.loc["b", "elpd_diff"] == pytest.approx(diff.sum())
    assert table.loc["b", "dse"] == pytest.approx(np.sqrt(4 * np.var(diff, ddof=1)))
    assert table.loc["a", "elpd_diff"] == 0.0 and table.loc["a", "dse"] == 0.0
    assert table.loc["a", "weight"] == pytest.approx(1.0, abs=1e-6)  # b is never better


def test_stacking_weights_solve_the_optimality_condition():
    rng = np.random.default_rng(3)
    m = rng.normal(-2.0, 1.0, size=(40, 2)) - 600.0  # per-subject sums: exp() alone underflows
    w = stacking_weights(m)
    assert 0.05 < w[0] < 0.95 and w.sum() == pytest.approx(1.0)
    grid = np.linspace(0.0, 1.0, 100_001)  # log score on a fine grid of w0, shifted by -600
    score = np.log(np.exp(m[:, :1] + 600) * grid + np.exp(m[:, 1:] + 600) * (1 - grid)).sum(0)
    assert w[0] == pytest.approx(grid[np.argmax(score)], abs=1e-4)


def test_subject_groups_round_robin():
    assert K.subject_groups(["S3", "S1", "S2", "S4"], 2) == [["S1", "S3"], ["S2", "S4"]]
    assert len(K.subject_groups([f"S{i:02d}" for i in range(12)])) == 10
    assert K.subject_groups(["A", "B"]) == [["A"], ["B"]]
    with pytest.raises(CartfitError, match="needs 2 to 3 groups"):
        K.subject_groups(["A", "B", "C"], 4)


# --- the table, with the refits replaced by known values --------------------------------------


def synthetic_fit(path, *, seed=0, bad=(3, 11), mode="population", cohort="", sha="abc"):
    """A fit file whose log-likelihood is log-normal with sigma 0.3 except at ``bad`` points,
    whose likelihood swings over e^±60 between draws (Pareto k > 0.7)."""
    rng = np.random.default_rng(seed)
    n_obs, n_chain, n_draw = 30, 2, 200
    y = rng.normal(0.0, 1.0, n_obs)
    mu = y + 0.05 * rng.standard_normal((n_chain, n_draw, n_obs))
    ll = stats.norm.logpdf(y, mu, 0.3)
    for j, i in enumerate(bad):
        ll[..., i] = rng.normal(-30.0, 20.0 + 5 * j, size=(n_chain, n_draw))
    dims, obs = ("chain", "draw", "obs"), np.arange(n_obs)
    subjects = np.repeat(["S1", "S2", "S3"], 10)
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"sigma": (("chain", "draw"), np.full((n_chain, n_draw), 0.3))}),
        "log_likelihood": xr.Dataset({"y": (dims, ll)}),
        "observed_data": xr.Dataset({"y": ("obs", np.exp(y))}, coords={"obs": obs}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", subjects),
            "obs_time": ("obs", np.tile(np.arange(10.0), 3)),
            "obs_analyte": ("obs", np.full(n_obs, "tumor")),
        }, coords={"obs": obs}),
    })  # fmt: skip
    tree.attrs.update({"model": "predator_prey", "growth": "gompertz", "mode": mode,
                       "subjects": json.dumps(["S1", "S2", "S3"]), "data_sha256": sha,
                       "cohort": str(cohort), "settings": "{}"})  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return path, tree


@pytest.fixture
def fake_refits(monkeypatch):
    """Exact LOO values -5 - i/100 for point i, without sampling; records the points."""
    calls = []

    def exact(tree, cohort, index, settings):
        calls.append(index)
        return -5.0 - index / 100

    monkeypatch.setattr(R, "source_cohort", lambda tree, path: None)
    monkeypatch.setattr(R, "exact_loo_point", exact)
    return calls


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_table_carries_exact_values(tmp_path, fake_refits):
    path, tree = synthetic_fit(tmp_path / "a.nc")
    loo = azs.loo(tree, pointwise=True, var_name="y")
    k = loo.pareto_k.values
    assert set(np.flatnonzero(k > 0.7)) == {3, 11}
    elpd_i = loo.elpd_i.values.copy()
    elpd_i[[3, 11]] = [-5.03, -5.11]
    ll = tree["log_likelihood"]["y"].values.reshape(-1, 30)
    lppd_i = special.logsumexp(ll, axis=0) - np.log(ll.shape[0])

    row = compare_fits([path]).iloc[0]
    assert sorted(fake_refits) == [3, 11]
    assert row["n_refit"] == 2 and row["n_bad_pareto_k"] == 0
    assert row["elpd_loo"] == pytest.approx(elpd_i.sum())
    assert row["se"] == pytest.approx(np.sqrt(30 * np.var(elpd_i, ddof=1)))
    assert row["p_loo"] == pytest.approx(np.sum(lppd_i - elpd_i))
    assert "2 point(s) with Pareto k > 0.7 replaced by exact" in row["warning"]

    fake_refits.clear()
    row = compare_fits([path], max_refits=1).iloc[0]
    assert fake_refits == [int(np.argmax(k))]  # the worst point first
    assert row["n_refit"] == 1 and row["n_bad_pareto_k"] == 1
    assert "1 Pareto k > 0.7 (beyond max_refits=1)" in row["warning"]


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_comparison_uses_corrected_pointwise_values(tmp_path, fake_refits):
    a, tree_a = synthetic_fit(tmp_path / "a.nc", seed=1, bad=(3,))
    b, tree_b = synthetic_fit(tmp_path / "b.nc", seed=1, bad=())
    tree_b.attrs["growth"] = "logistic"
    tree_b.to_netcdf(b, engine="netcdf4")
    table = compare_fits([a, b]).set_index("growth")
    ea = azs.loo(tree_a, pointwise=True, var_name="y").elpd_i.values.copy()
    eb = azs.loo(tree_b, pointwise=True, var_name="y").elpd_i.values
    ea[3] = -5.03
    diff = ea - eb if ea.sum() < eb.sum() else eb - ea
    worse = "gompertz" if ea.sum() < eb.sum() else "logistic"
    assert table.loc[worse, "elpd_diff"] == pytest.approx(diff.sum())
    assert table.loc[worse, "dse"] == pytest.approx(np.sqrt(30 * np.var(diff, ddof=1)))
    assert table.loc["gompertz", "n_refit"] == 1 and table.loc["logistic", "n_refit"] == 0


# --- refusals ---------------------------------------------------------------------------------


def test_refits_refuse_missing_or_changed_cohort(tmp_path):
    gone, _ = synthetic_fit(tmp_path / "gone.nc", cohort=tmp_path / "nowhere")
    with pytest.raises(CartfitError, match=r"gone\.nc: cohort folder .*nowhere .*not found"):
        compare_fits([gone])
    cohort = shutil.copytree(EXAMPLE, tmp_path / "example")
    changed, _ = synthetic_fit(tmp_path / "changed.nc", cohort=cohort, sha="0" * 64)
    with pytest.raises(CartfitError, match=r"changed\.nc: cohort folder .*example has changed"):
        compare_fits([changed])
    assert compare_fits([changed], max_refits=0)["n_bad_pareto_k"].iloc[0] == 2  # no refit
    with pytest.raises(CartfitError, match="--max-refits -1"):
        compare_fits([changed], max_refits=-1)


def test_kfold_refuses_subject_fits(tmp_path):
    path, _ = synthetic_fit(tmp_path / "s.nc", mode="subject", cohort=EXAMPLE)
    with pytest.raises(CartfitError, match=r"s\.nc: compare --kfold needs population fits.*30 "
                       r"refits.*without --kfold"):  # fmt: skip
        compare_fits([path], kfold=True)


def test_cli_options_reach_the_comparison(tmp_path, capsys):
    import pandas as pd

    from cartfit.cli import main

    path, _ = synthetic_fit(tmp_path / "a.nc", mode="subject")
    out = tmp_path / "compare.csv"
    assert main(["compare", str(path), "--out", str(out), "--max-refits", "0"]) == 0
    table = pd.read_csv(out)
    assert table[["n_bad_pareto_k", "n_refit"]].iloc[0].tolist() == [2, 0]
    assert main(["compare", str(path), "--out", str(out), "--kfold", "--kfold-groups", "2"]) == 2
    assert "needs population fits" in capsys.readouterr().err


# --- real refits (one chain, 60 draws) ---------------------------------------------------------


@pytest.fixture(scope="module")
def example_copy(tmp_path_factory):
    return shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("cohort") / "example")


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto")
def test_refit_leaves_out_exactly_one_row(tmp_path, example_copy, monkeypatch):
    from cartfit.inference.fit import FitSettings, fit_cohort
    from cartfit.inference.predict import fit_model, load_fit, observation_means, posterior_draws

    out = tmp_path / "s01.nc"
    settings = FitSettings(progress=False, **STEADY)
    fit_cohort(example_copy, model="predator_prey", growth="gompertz", subject="S01", out=out,
               settings=settings)  # fmt: skip
    tree = load_fit(out)
    cohort = R.source_cohort(tree, out)
    const = tree["constant_data"]
    loo = azs.loo(tree, pointwise=True, var_name="y")
    quantified = (const["obs_analyte"].values == "car_t") & (const["obs_blq"].values == 0)
    index = int(np.flatnonzero(quantified & (loo.pareto_k.values < 0.5))[-1])
    seen = {}
    real = R.posterior_without

    def spy(tree, kept, subjects, settings):
        seen["kept"], seen["subjects"] = kept, subjects
        seen["data"], seen["idata"] = real(tree, kept, subjects, settings)
        return seen["data"], seen["idata"]

    monkeypatch.setattr(R, "posterior_without", spy)
    exact = R.exact_loo_point(tree, cohort, index, R.refit_settings(tree, STEADY))

    key = ["subject", "analyte", "time"]
    full = cohort.observations[key].astype(str).agg("|".join, axis=1)
    kept = seen["kept"].observations[key].astype(str).agg("|".join, axis=1)
    missing = sorted(set(full) - set(kept))
    assert len(kept) == len(full) - 1
    t = const["obs_time"].values[index]
    assert missing == [f"S01|car_t|{t}"] and seen["subjects"] == ["S01"]
    # independent evaluation: log-normal density of ln y under the refit's draws
    data, draws = seen["data"], posterior_draws(seen["idata"])
    mu = observation_means(fit_model(tree), draws["theta"], draws["log_y0"], np.array([0]),
                           np.array([t]), np.array(["car_t"]), 1e-5, 1e-5)[:, 0]  # fmt: skip
    sigma = draws["sigma"][:, data.analytes.index("car_t")]
    y = tree["observed_data"]["y"].values[index]
    expected = logmeanexp(stats.norm.logpdf(np.log(y), mu + np.log(data.scales["car_t"]), sigma))
    assert exact == pytest.approx(expected, abs=1e-6)
    # where PSIS is reliable (k < 0.5) the refit agrees with it to Monte Carlo error
    assert exact == pytest.approx(loo.elpd_i.values[index], abs=0.6)


@pytest.mark.slow
@pytest.mark.ci
def test_kfold_over_subjects_of_a_population_fit(tmp_path, example_copy, monkeypatch):
    """Three subjects, one group each: a population fit and three refits without the held-out
    subject (75 s on an idle core, over 3 min on a shared one, hence slow)."""
    import pandas as pd

    from cartfit.inference.fit import FitSettings, fit_cohort

    ids = ["S01", "S02", "S03"]
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("observations.csv", "subjects.csv"):
        table = pd.read_csv(example_copy / name, dtype=str, keep_default_na=False)
        table[table["subject"].isin(ids)].to_csv(cut / name, index=False)
    shutil.copy(example_copy / "cohort.yaml", cut / "cohort.yaml")
    out = tmp_path / "pop.nc"
    fit_cohort(cut, model="predator_prey", growth="gompertz", population=True, out=out,
               settings=FitSettings(progress=False, **LIGHT))  # fmt: skip
    from cartfit.inference.predict import load_fit

    # the fit records the geometry it used (by default off below 50 subjects); refits reuse it
    assert json.loads(load_fit(out).attrs["settings"])["large_cohort"] is False
    trained = []
    real = R.posterior_without

    def spy(tree, cohort, subjects, settings):
        trained.append(sorted(subjects))
        return real(tree, cohort, subjects, settings)

    monkeypatch.setattr(K, "posterior_without", spy)
    row = compare_fits([out], kfold=True, refit_settings=LIGHT).iloc[0]
    assert trained == [["S02", "S03"], ["S01", "S03"], ["S01", "S02"]]
    assert row["n_refit"] == 3 and row["n_bad_pareto_k"] == 0
    assert row["warning"].startswith("elpd_kfold: 3-fold cross-validation over 3 subjects")
    assert np.isfinite(row["elpd_loo"]) and row["se"] > 0
    # a new subject is predicted less well than the fitted one: p_kfold > 0
    assert row["p_loo"] > 0


def test_constant_pointwise_likelihood_is_exact_not_an_error(tmp_path):
    """A censored reading predicted far below its LLOQ has the same log-likelihood (log Φ = 0)
    in every draw: its LOO value is that constant with k = 0, and the other points keep the
    PSIS values they have without it."""
    from cartfit.analysis.crossval import psis_loo

    _, tree = synthetic_fit(tmp_path / "a.nc", bad=())
    ll = tree["log_likelihood"]["y"].values.copy()
    ll[..., 5] = 0.0
    ll[..., 6] = -1.25
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    groups["log_likelihood"] = xr.Dataset({"y": (("chain", "draw", "obs"), ll)})
    tree = xr.DataTree.from_dict(groups)
    pointwise, k = psis_loo(tree)
    assert pointwise.elpd_i[5] == 0.0 and pointwise.elpd_i[6] == -1.25
    assert k[5] == 0.0 and k[6] == 0.0
    keep = [i for i in range(ll.shape[-1]) if i not in (5, 6)]
    reference, k_ref = psis_loo(tree.isel(obs=keep))
    np.testing.assert_allclose(pointwise.elpd_i[keep], reference.elpd_i, rtol=1e-12)
    np.testing.assert_allclose(k[keep], k_ref, rtol=1e-12)


def test_tail_of_equal_values_is_flagged_not_an_error(tmp_path):
    """A chain that stopped moving repeats one draw, so the largest importance ratios of a point
    can all be equal and no Pareto tail can be fitted (arviz raises). That point gets the plain
    importance-sampling value with k = inf (counted as unreliable); the others keep their PSIS
    values."""
    from cartfit.analysis.crossval import psis_loo

    _, tree = synthetic_fit(tmp_path / "a.nc", bad=())
    ll = tree["log_likelihood"]["y"].values.copy()
    n_chain, n_draw = ll.shape[:2]
    col = ll[..., 4].copy()
    col[0, :] = col.min() - 5.0  # chain 0 stuck where the point fits worst: the whole tail
    ll[..., 4] = col
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    groups["log_likelihood"] = xr.Dataset({"y": (("chain", "draw", "obs"), ll)})
    tree = xr.DataTree.from_dict(groups)
    pointwise, k = psis_loo(tree)
    assert np.isinf(k[4])
    neg = -col.ravel()
    assert pointwise.elpd_i[4] == pytest.approx(-np.log(np.mean(np.exp(neg))))
    keep = [i for i in range(ll.shape[-1]) if i != 4]
    reference, k_ref = psis_loo(tree.isel(obs=keep))
    np.testing.assert_allclose(pointwise.elpd_i[keep], reference.elpd_i, rtol=1e-12)
    np.testing.assert_allclose(k[keep], k_ref, rtol=1e-12)

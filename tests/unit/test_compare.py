"""PSIS-LOO comparison on synthetic fit files, and the log-linearity diagnostic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from cartfit.analysis.compare import compare_fits, subject_elpd
from cartfit.analysis.loglinear import log_linearity_diagnostic
from cartfit.data import load_cohort
from cartfit.errors import CartfitError

N_CHAIN, N_DRAW = 2, 200


def write_fit(path, y, subjects, mean, spread, model="predator_prey", growth="gompertz",
              sha="abc123", seed=0, outlier=None, problems=(), sigma=0.3, times=None,
              last_chain_shift=0.0):  # fmt: skip
    """A fit file with the layout of cartfit.inference.fitfile: the posterior predictive mean of
    ln y is ``mean + spread * noise`` per draw (plus ``last_chain_shift`` in the last chain, a
    chain in another mode), the log-likelihood is log-normal with ``sigma``."""
    rng = np.random.default_rng(seed)
    n_obs = len(y)
    mu = mean[None, None, :] + spread * rng.standard_normal((N_CHAIN, N_DRAW, 1))
    mu[-1] += last_chain_shift
    ll = -0.5 * ((np.log(y) - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    if outlier is not None:  # observation `outlier`'s likelihood varies over e^±60 in draws
        ll[..., outlier] = rng.normal(-30.0, 20.0, size=(N_CHAIN, N_DRAW))
    dims, obs = ("chain", "draw", "obs"), np.arange(n_obs)
    subj_ids = sorted(set(subjects))
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({
            "theta": (("chain", "draw", "subject", "parameter"),
                      np.exp(rng.normal(size=(N_CHAIN, N_DRAW, len(subj_ids), 2)))),
            "sigma": (("chain", "draw", "analyte"), np.full((N_CHAIN, N_DRAW, 1), sigma)),
        }, coords={"subject": subj_ids, "parameter": ["growth_rate", "kill_rate"],
                   "analyte": ["tumor"]}),
        "posterior_predictive": xr.Dataset({"y": (dims, np.exp(mu + 0 * ll))}),
        "log_likelihood": xr.Dataset({"y": (dims, ll)}),
        "observed_data": xr.Dataset({"y": ("obs", y)}, coords={"obs": obs}),
        "constant_data": xr.Dataset({
            "obs_subject": ("obs", np.asarray(subjects, dtype=str)),
            "obs_time": ("obs", np.arange(n_obs, dtype=float) if times is None else times),
            "obs_analyte": ("obs", np.full(n_obs, "tumor")),
            "obs_lloq": ("obs", np.full(n_obs, np.nan)),
            "obs_blq": ("obs", np.zeros(n_obs, dtype=np.int64)),
            "scale": ("analyte", [1.0]),
        }, coords={"obs": obs, "analyte": ["tumor"]}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"),
                                                  np.zeros((N_CHAIN, N_DRAW), bool))}),
    })  # fmt: skip
    tree.attrs.update({"model": model, "growth": growth, "mode": "population",
                       "subjects": json.dumps(subj_ids), "data_sha256": sha,
                       "diagnostics": json.dumps({"problems": list(problems)})})  # fmt: skip
    tree.to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    truth = rng.normal(0.0, 1.0, 60)
    y = np.exp(truth + 0.3 * rng.standard_normal(60))
    subjects = np.repeat(["S1", "S2", "S3"], 20)
    return truth, y, subjects


def test_generating_law_ranks_first_with_weight(tmp_path, data):
    truth, y, subjects = data
    good = write_fit(tmp_path / "g.nc", y, subjects, truth, 0.05, growth="gompertz", seed=2)
    bad = write_fit(tmp_path / "e.nc", y, subjects, truth + 0.4, 0.05, growth="exponential")
    table = compare_fits([bad, good])
    assert list(table.columns[:8]) == [
        "model",
        "growth",
        "elpd_loo",
        "se",
        "elpd_diff",
        "dse",
        "weight",
        "n_bad_pareto_k",
    ]
    assert table["growth"].tolist() == ["gompertz", "exponential"]
    assert table["elpd_diff"].iloc[0] == 0.0
    # 60 points, shift 0.4 with sigma 0.3: elpd difference ~ 60 * 0.4^2 / (2 * 0.09) ~ 53
    assert table["elpd_diff"].iloc[1] < -30
    assert table["elpd_diff"].iloc[1] < -2 * table["dse"].iloc[1]
    assert table["weight"].iloc[0] > 0.95
    assert not table["indistinguishable"].any()
    assert (table["n_bad_pareto_k"] == 0).all()


def test_indistinguishable_fits_are_flagged(tmp_path, data):
    truth, y, subjects = data
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05, growth="logistic", seed=3)
    b = write_fit(tmp_path / "b.nc", y, subjects, truth, 0.05, growth="gompertz", seed=4)
    table = compare_fits([a, b])
    assert abs(table["elpd_diff"].iloc[1]) < 2 * table["dse"].iloc[1]
    assert table["indistinguishable"].all()


def test_bad_pareto_k_counted_and_warned(tmp_path, data):
    truth, y, subjects = data
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05, seed=5, outlier=0)
    table = compare_fits([a], max_refits=0)
    assert table["n_bad_pareto_k"].iloc[0] >= 1
    assert table["n_refit"].iloc[0] == 0
    assert "Pareto k > 0.7 (refits disabled)" in table["warning"].iloc[0]
    # refits would need the cohort, which this synthetic fit does not name
    with pytest.raises(CartfitError, match=r"a\.nc: the fit names no cohort folder"):
        compare_fits([a])


def test_misfit_is_warned_by_its_residual_sd(tmp_path, data):
    """A model that cannot follow the data shows it in its residual SD: 0.9 against the best
    fit's 0.3 is named in the warning; the best fit and one within 1.5x carry no such note."""
    truth, y, subjects = data
    good = write_fit(tmp_path / "g.nc", y, subjects, truth, 0.05, seed=2)
    near = write_fit(tmp_path / "n.nc", y, subjects, truth, 0.05, growth="logistic", sigma=0.4)
    bad = write_fit(tmp_path / "e.nc", y, subjects, truth, 0.05, growth="exponential", sigma=0.9)
    table = compare_fits([bad, near, good]).set_index("growth")
    assert table.loc["exponential", "warning"].startswith(
        "misfit: residual SD of tumor 0.90 against 0.30 in the best fit;"
    )
    assert "misfit" not in table.loc["gompertz", "warning"]
    assert "misfit" not in table.loc["logistic", "warning"]


def test_unconverged_fit_is_warned(tmp_path, data):
    """A fit whose chains disagree carries its R-hat problem into the comparison's warning;
    other problems (divergences) are the fit's own report, not the comparison's."""
    truth, y, subjects = data
    problems = ["R-hat > 1.01 for 126 quantities (worst 2.814)", "3 divergent transitions"]
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05, seed=3, problems=problems)
    b = write_fit(tmp_path / "b.nc", y, subjects, truth, 0.05, growth="logistic", seed=4)
    table = compare_fits([a, b]).set_index("growth")
    assert table.loc["gompertz", "warning"].startswith(
        "fit not converged: R-hat > 1.01 for 126 quantities (worst 2.814)"
    )
    assert "divergent" not in table.loc["gompertz", "warning"]
    assert "not converged" not in table.loc["logistic", "warning"]


def test_unconverged_fit_is_ranked_chain_by_chain(tmp_path, data):
    """A fit whose chains disagree is scored chain by chain: a fit far behind in every chain
    keeps its place; one whose first chain fits as well as the best but whose last chain sits
    in a mode 1 log unit off (pooled: about 60 log 2 = 42 behind, below a fit 0.2 off, about 13
    behind) would move up in chain 0, and the note says so."""
    truth, y, subjects = data
    problems = ["R-hat > 1.01 for 12 quantities (worst 1.3)"]
    good = write_fit(tmp_path / "g.nc", y, subjects, truth, 0.05, seed=2)
    near = write_fit(tmp_path / "n.nc", y, subjects, truth + 0.2, 0.05, growth="logistic")
    far = write_fit(tmp_path / "e.nc", y, subjects, truth + 1.0, 0.05, growth="exponential",
                    problems=problems, last_chain_shift=0.1)  # fmt: skip
    table = compare_fits([good, near, far]).set_index("growth")
    assert "its place in the ranking holds in every chain" in table.loc["exponential", "warning"]
    assert "chains alone" not in table.loc["gompertz", "warning"]
    split = write_fit(tmp_path / "e.nc", y, subjects, truth, 0.05, growth="exponential",
                      problems=problems, last_chain_shift=1.0)  # fmt: skip
    table = compare_fits([good, near, split]).set_index("growth")
    assert list(table.index) == ["gompertz", "logistic", "exponential"]
    note = table.loc["exponential", "warning"]
    assert "its place in the ranking changes in chain(s) 0" in note
    low, high = (float(v) for v in note.split("elpd_diff ")[1].split(":")[0].split(" to "))
    assert high > -2.0 and low < -100.0


def test_refuses_fits_of_different_data(tmp_path, data):
    truth, y, subjects = data
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05)
    other_y = write_fit(tmp_path / "b.nc", y * 1.01, subjects, truth, 0.05, growth="logistic")
    other_sha = write_fit(tmp_path / "c.nc", y, subjects, truth, 0.05, sha="zzz")
    with pytest.raises(CartfitError, match=r"a\.nc and .*b\.nc .*different data"):
        compare_fits([a, other_y])
    with pytest.raises(CartfitError, match="data_sha256"):
        compare_fits([a, other_sha])
    with pytest.raises(CartfitError, match=r"a\.nc: the fit names no cohort folder"):
        compare_fits([a], kfold=True)


def test_fits_with_extra_observations_are_scored_on_the_shared_ones(tmp_path, data):
    """A model that fits more of the cohort (escape: the tumor_antigen_neg readings) is
    compared with one that does not on the observations both fitted, and the table says so;
    k-fold, which scores whole subjects, refuses."""
    from cartfit.analysis.crossval import psis_loo
    from cartfit.inference.predict import load_fit

    truth, y, subjects = data
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05)
    more = [np.concatenate([v, v[:5]]) for v in (y, subjects, truth)]
    b = write_fit(tmp_path / "b.nc", *more, 0.05, growth="logistic", seed=1)
    table = compare_fits([a, b], max_refits=0).set_index("growth")
    note = f"scored on the {len(y)} observations every fit has (tumor); b.nc also fitted 5 others"
    assert note in table.loc["logistic", "warning"] and note in table.loc["gompertz", "warning"]
    for name, path in (("gompertz", a), ("logistic", b)):
        shared = psis_loo(load_fit(path))[0].elpd_i[: len(y)].sum()
        assert table.loc[name, "elpd_loo"] == pytest.approx(shared)
    with pytest.raises(CartfitError, match="do not share all their observations"):
        compare_fits([a, b], kfold=True)


def test_unshared_observations_are_neither_counted_nor_refitted(tmp_path, data):
    """An unreliable PSIS point among the observations only one fit has does not enter its
    Pareto k count (nor would it be refitted: no cohort folder is needed)."""
    truth, y, subjects = data
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05)
    more = [np.concatenate([v, v[:5]]) for v in (y, subjects, truth)]
    b = write_fit(tmp_path / "b.nc", *more, 0.05, growth="logistic", seed=1, outlier=len(y))
    table = compare_fits([a, b], max_refits=3).set_index("growth")
    assert table.loc["logistic", "n_bad_pareto_k"] == 0
    assert table.loc["logistic", "n_refit"] == 0


def test_refuses_fits_that_share_observations_only_pairwise(tmp_path, data):
    truth, y, subjects = data
    n = len(y)
    parts = [np.r_[0 : 2 * n // 3], np.r_[n // 3 : n], np.r_[0 : n // 3, 2 * n // 3 : n]]
    laws = ("gompertz", "logistic", "exponential")
    paths = [
        write_fit(tmp_path / f"{g}.nc", y[p], subjects[p], truth[p], 0.05, growth=g, times=1.0 * p)
        for g, p in zip(laws, parts, strict=True)
    ]
    with pytest.raises(CartfitError, match="no observation is in every one of the 3 fits"):
        compare_fits(paths)


def test_subject_elpd_sums_pointwise_elpd(tmp_path, data):
    truth, y, subjects = data
    shifted = truth + np.where(subjects == "S2", 0.5, 0.0)  # wrong only for S2
    a = write_fit(tmp_path / "a.nc", y, subjects, truth, 0.05, growth="gompertz", seed=6)
    b = write_fit(tmp_path / "b.nc", y, subjects, shifted, 0.05, growth="logistic", seed=6)
    per = subject_elpd([a, b])
    total = compare_fits([a])["elpd_loo"].iloc[0]
    assert per[per["growth"] == "gompertz"]["elpd_loo"].sum() == pytest.approx(total)
    s2 = per[per["subject"] == "S2"].set_index("growth")
    assert s2.loc["logistic", "elpd_diff"] < -10
    # same draws and same means for S1's rows: identical pointwise elpd
    np.testing.assert_allclose(per[per["subject"] == "S1"]["elpd_diff"], 0.0, atol=1e-9)


def _cohort(tmp_path, curves):
    rows = ["subject,time,analyte,value,unit"]
    for subject, (times, values) in curves.items():
        rows += [f"{subject},{t},tumor,{v:.6g},mm2" for t, v in zip(times, values, strict=True)]
        rows += [f"{subject},7,car_t,100,copies/ug"]
    (tmp_path / "observations.csv").write_text("\n".join(rows) + "\n")
    subj = "subject,dose\n" + "".join(f"{s},1e8\n" for s in curves)
    (tmp_path / "subjects.csv").write_text(subj)
    return load_cohort(tmp_path)


def test_log_linearity_separates_exponential_from_gompertz(tmp_path):
    rng = np.random.default_rng(8)
    t = np.linspace(-60.0, -1.0, 8)
    noise = lambda: np.exp(0.02 * rng.standard_normal(t.size))  # noqa: E731
    gompertz = 100 * np.exp(np.log(0.01) * np.exp(-0.05 * (t + 60)))  # K=100, from 1 % of K
    curves = {
        "EXP1": (t, 5 * np.exp(0.03 * t) * noise()),
        "EXP2": (t, 2 * np.exp(0.05 * t) * noise()),
        "GOMP": (t, gompertz * noise()),
        "TWO": (t[:2], [1.0, 2.0]),
    }
    table = log_linearity_diagnostic(_cohort(tmp_path, curves)).set_index("subject")
    assert table.loc["EXP1", "growth_rate"] == pytest.approx(0.03, abs=0.003)
    assert table.loc["EXP1", "verdict"] == "linear (exponential-compatible)"
    assert table.loc["EXP2", "verdict"] == "linear (exponential-compatible)"
    assert table.loc["GOMP", "verdict"] == "decelerating"
    assert table.loc["GOMP", "curvature"] < 0
    assert table.loc["TWO", "verdict"] == "too few points"
    assert table.loc["(cohort)", "p_value"] < 0.05
    no_pre = {"S": (np.array([1.0, 5.0]), [3.0, 1.0])}
    assert log_linearity_diagnostic(_cohort(tmp_path, no_pre)).empty

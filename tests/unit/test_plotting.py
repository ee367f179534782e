"""Figures: each returns a labelled Figure of the expected shape; VPC statistics by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cartfit.errors import CartfitError
from cartfit.models import get_model
from cartfit.plotting import (
    contrast_forest,
    diagnostics_figure,
    diagnostics_table,
    exposure_forest,
    growth_law_comparison,
    posterior_predictive_bands,
    prior_predictive_plot,
    published_comparison,
    relapse_curves,
    save,
    style,
    trial_summary,
    visual_predictive_check,
    vpc_statistics,
)
from cartfit.plotting.style import FAIL_RED
from cartfit.plotting.vpc_stats import edge_bins, visit_bins

SUBJECTS = ("A1", "B2")
TUMOR_TIMES = (-7.0, 1.0, 7.0, 14.0, 28.0, 56.0)
CAR_T_TIMES = (1.0, 7.0, 14.0, 28.0, 56.0)
SCALES = {"car_t": 1e4, "tumor": 1e3, "tumor_antigen_neg": 1e3}
LLOQ = {"car_t": 5.0, "tumor": 10.0, "tumor_antigen_neg": 10.0}


def _visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def _rank_axes(fig):
    return [ax for ax in _visible(fig) if ax.get_xlabel() == "rank of draw (all chains pooled)"]


#: prior-like log initial states per state name (scaled units)
LOG_Y0 = {
    "log_tumor": np.log(0.5),
    "log_tumor_antigen_pos": np.log(0.5),
    "log_tumor_antigen_neg": np.log(1e-3),
    "log_car_t": np.log(1e-3),
}


def _fit_tree(
    seed: int = 1,
    n_chain: int = 2,
    n_draw: int = 40,
    diagnostics: bool = True,
    chain_shift: float = 0.0,
    model_name: str = "predator_prey",
) -> xr.DataTree:
    """A tiny Gompertz fit file (fitfile.py layout) with prior-like draws around the medians."""
    rng = np.random.default_rng(seed)
    model = get_model(model_name, "gompertz")
    analytes = ["car_t", "tumor"] + (["tumor_antigen_neg"] if model_name == "escape" else [])
    n_sub, n_par = len(SUBJECTS), model.n_params
    medians = np.array([p.median for p in model.parameters])
    theta = medians * np.exp(rng.normal(0, 0.1, (n_chain, n_draw, n_sub, n_par)))
    theta[1:, :, :, 0] *= np.exp(chain_shift)  # an offset chain when asked: R-hat fails
    log_y0 = np.stack(
        [rng.normal(LOG_Y0[s], 0.1, (n_chain, n_draw, n_sub)) for s in model.states], axis=-1
    )
    sigma = np.abs(rng.normal(0.3, 0.02, (n_chain, n_draw, len(analytes))))
    rows = [(s, t, "tumor") for s in SUBJECTS for t in TUMOR_TIMES]
    rows += [(s, t, a) for s in SUBJECTS for t in CAR_T_TIMES for a in analytes if a != "tumor"]
    obs_sub, obs_t, obs_an = (np.array(c) for c in zip(*rows, strict=True))
    lloq = np.array([LLOQ[a] for a in obs_an])
    value = np.exp(rng.normal(np.log(np.where(obs_an == "car_t", 1e3, 300.0)), 1.0))
    blq = (value < lloq) | ((obs_an == "car_t") & (obs_t == 56.0))  # some BLQ rows for sure
    value = np.where(blq, lloq, value)
    n_obs = len(rows)
    coords = {
        "chain": np.arange(n_chain),
        "draw": np.arange(n_draw),
        "subject": list(SUBJECTS),
        "parameter": list(model.parameter_names),
        "state": list(model.states),
        "analyte": analytes,
        "obs": np.arange(n_obs),
    }
    cd = ("chain", "draw")
    post = xr.Dataset(
        {
            "theta": (cd + ("subject", "parameter"), theta),
            "log_y0": (cd + ("subject", "state"), log_y0),
            "sigma": (cd + ("analyte",), sigma),
        },
        coords=coords,
    )
    rep = value * np.exp(rng.normal(0, 0.4, (n_chain, n_draw, n_obs)))
    tree = xr.DataTree.from_dict(
        {
            "posterior": post,
            "posterior_predictive": xr.Dataset({"y": (cd + ("obs",), rep)}),
            "observed_data": xr.Dataset({"y": ("obs", value)}),
            "constant_data": xr.Dataset(
                {
                    "obs_subject": ("obs", obs_sub),
                    "obs_time": ("obs", obs_t),
                    "obs_analyte": ("obs", obs_an),
                    "obs_lloq": ("obs", lloq),
                    "obs_blq": ("obs", blq.astype(int)),
                    "scale": ("analyte", [SCALES[a] for a in analytes]),
                },
                coords={"analyte": analytes},
            ),
            "sample_stats": xr.Dataset(
                {
                    "diverging": (cd, np.zeros((n_chain, n_draw), bool)),
                    "maxdepth_reached": (cd, np.zeros((n_chain, n_draw), bool)),
                    "energy": (cd, rng.normal(size=(n_chain, n_draw))),
                }
            ),
        }
    )
    tree.attrs = {
        "model": model_name,
        "growth": "gompertz",
        "mode": "population",
        "subjects": json.dumps(list(SUBJECTS)),
        "units": json.dumps({"car_t": "copies/ug", "tumor": "mm2", "tumor_antigen_neg": "mm2"}),
        "settings": json.dumps(
            {"chains": n_chain, "tune": 50, "draws": n_draw, "likelihood": "lognormal"}
        ),
    }
    if diagnostics:
        tree.attrs["diagnostics"] = json.dumps(
            {
                "max_r_hat": 1.004,
                "min_ess_bulk": 120.0,
                "min_ess_tail": 300.0,
                "n_divergent": 3,
                "n_max_treedepth": 0,
                "bfmi": [0.9, 0.8],
                "n_draws": n_chain * n_draw,
            }
        )
    return tree


@pytest.fixture(scope="module")
def tree():
    return _fit_tree()


# --- VPC statistics: hand-made data with known answers -------------------------------------


def _vpc_case():
    obs = pd.DataFrame(
        {
            "time": [1.0] * 4 + [2.0] * 3,
            "analyte": ["car_t"] * 7,
            "value": [1.5, 2.0, 4.0, 6.0, 1.5, 1.5, 1.5],
            "lloq": [1.5] * 7,
            "blq": [True, False, False, False, True, True, True],
        }
    )
    base = np.array([1.0, 2.0, 4.0, 6.0, 1.0, 1.0, 100.0])
    rep = np.array([0.5, 1.0, 2.0])[:, None] * base  # three replicates, scaled copies
    return obs, rep


def test_vpc_statistics_match_hand_computation():
    obs, rep = _vpc_case()
    st = vpc_statistics(obs, rep).set_index("bin")
    b0 = st.loc[0]
    assert (b0["n_obs"], b0["n_blq"], b0["obs_frac_blq"]) == (4, 1, 0.25)
    # quantified observed [2, 4, 6]: linear quantiles 2.2, 4, 5.8
    np.testing.assert_allclose([b0["obs_p05"], b0["obs_p50"], b0["obs_p95"]], [2.2, 4.0, 5.8])
    # replicates: BLQ fractions [0.5, 0.25, 0]; medians of quantified [2.5, 4, 6]
    np.testing.assert_allclose(
        [b0["sim_frac_blq_lo"], b0["sim_frac_blq_med"], b0["sim_frac_blq_hi"]], [0.025, 0.25, 0.475]
    )
    np.testing.assert_allclose(
        [b0["sim_p50_lo"], b0["sim_p50_med"], b0["sim_p50_hi"]], [2.65, 4.0, 5.8]
    )
    b1 = st.loc[1]  # all observed BLQ: no observed percentile, fraction 1
    assert b1["obs_frac_blq"] == 1.0 and np.isnan(b1["obs_p50"])
    # replicated fractions: 2/3, 2/3, 0 (the third replicate is quantified everywhere)
    np.testing.assert_allclose(b1["sim_frac_blq_med"], 2 / 3)
    assert b1["time_mid"] == 2.0 and b0["time_lo"] == 1.0


def test_vpc_statistics_ignores_failed_replicates_and_missing_lloq():
    obs, rep = _vpc_case()
    obs.loc[:, "lloq"] = np.nan  # no LLOQ: nothing replicated is BLQ
    rep = rep.copy()
    rep[0, :4] = np.nan
    st = vpc_statistics(obs, rep).set_index("bin")
    assert st.loc[0, "sim_frac_blq_hi"] == 0.0
    np.testing.assert_allclose(st.loc[0, "sim_p50_med"], np.mean([3.0, 6.0]))  # replicates 1, 2


def test_vpc_statistics_explicit_edges_and_bad_shapes():
    obs, rep = _vpc_case()
    st = vpc_statistics(obs, rep, bins=[0.0, 1.5, 3.0])
    assert list(st["n_obs"]) == [4, 3]
    with pytest.raises(CartfitError, match="expected"):
        vpc_statistics(obs, rep[:, :3])
    with pytest.raises(CartfitError, match="increasing"):
        vpc_statistics(obs, rep, bins=[3.0, 1.0])


def test_visit_bins_keep_visits_whole_and_balance_counts():
    np.testing.assert_array_equal(visit_bins(np.arange(12.0), 4), np.repeat([0, 1, 2, 3], 3))
    np.testing.assert_array_equal(
        visit_bins(np.array([0.0] * 6 + [1.0, 2.0, 3.0]), 2), [0] * 6 + [1] * 3
    )
    np.testing.assert_array_equal(visit_bins(np.array([5.0, 1.0, 5.0]), 10), [1, 0, 1])
    np.testing.assert_array_equal(
        edge_bins(np.array([-1.0, 0.0, 1.0, 2.0, 3.0]), [0, 1, 2]), [-1, 0, 1, 1, -1]
    )


# --- figures from fit files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def escape_tree():
    """Escape model: CAR T, total and antigen-negative tumour (one compiled solver for all)."""
    return _fit_tree(seed=4, model_name="escape")


def _median_line(ax, analyte):
    return next(
        line
        for line in ax.get_lines()
        if line.get_color() == style.analyte_colour(analyte)
        and line.get_linestyle() == "-"
        and line.get_linewidth() == 1.5
        and len(line.get_xdata()) > 50
    )


def test_posterior_predictive_bands_panels_and_pre_infusion_closed_form(escape_tree):
    fig = posterior_predictive_bands(escape_tree, n_draws=500)
    axes = _visible(fig)
    assert len(axes) == len(SUBJECTS) * 2  # CAR T; tumour with its antigen-negative part
    for ax in axes:
        assert ax.get_yscale() == "log" and ax.get_ylabel() and ax.get_xlabel()
    car_t = next(ax for ax in axes if ax.get_title() == "A1: CAR T in blood")
    assert any(
        line.get_marker() == "v" and line.get_xdata()[0] == 56.0 for line in car_t.get_lines()
    )  # BLQ drawn at its time, open marker
    tumour = next(ax for ax in axes if ax.get_title() == "A1: tumour burden")
    assert _median_line(tumour, "tumor_antigen_neg").get_xdata()[0] == 0.0  # ODE only
    median = _median_line(tumour, "tumor")
    t, y = np.asarray(median.get_xdata()), np.asarray(median.get_ydata())
    assert t[0] < -7.0 < 0.0 < t[-1]
    # Gompertz closed form from the total burden at day 0, median over all 80 draws
    post = escape_tree["posterior"]
    th = post["theta"].sel(subject="A1").values.reshape(-1, 7)
    y0 = post["log_y0"].sel(subject="A1").values.reshape(-1, 3)
    log_b0 = np.logaddexp(y0[:, 0], y0[:, 1])
    log_k = np.log(th[:, 1])
    want = np.median(np.exp(log_k + (log_b0 - log_k) * np.exp(-th[:, 0] * t[0])))
    np.testing.assert_allclose(y[0], want * SCALES["tumor"], rtol=1e-9)


def test_posterior_predictive_bands_subset_and_unknown_subject(escape_tree):
    axes = _visible(posterior_predictive_bands(escape_tree, subjects=["B2"], n_draws=20))
    assert [ax.get_title() for ax in axes] == ["B2: CAR T in blood", "B2: tumour burden"]
    with pytest.raises(CartfitError, match="no subject 'ZZ'"):
        posterior_predictive_bands(escape_tree, subjects=["ZZ"])
    assert len(_visible(visual_predictive_check(escape_tree, n_sim=20))) == 2 * 3


def test_visual_predictive_check_layout(tree):
    fig = visual_predictive_check(tree, n_sim=50)
    axes = _visible(fig)
    assert len(axes) == 4  # percentiles and BLQ fraction for each of two analytes
    assert {ax.get_ylabel() for ax in axes} >= {"fraction below LLOQ", "CAR T in blood (copies/ug)"}
    assert all(ax.get_xlabel() or ax.get_yscale() == "log" for ax in axes)


def test_diagnostics_table_reads_attrs_and_flags_failures(tree):
    table = diagnostics_table(tree).set_index("check")
    assert table.loc["min bulk ESS", "value"] == 120.0 and not table.loc["min bulk ESS", "ok"]
    assert not table.loc["divergent transitions", "ok"] and table.loc["max R-hat", "ok"]
    fig = diagnostics_figure(tree, n_worst=4)
    assert fig._suptitle.get_color() == FAIL_RED
    assert "divergent transitions 3" in fig._suptitle.get_text()
    assert len(_visible(fig)) == 1 + 4  # table and rank plots
    assert len(_rank_axes(fig)) == 4


def test_diagnostics_recomputed_without_attrs():
    good_tree = _fit_tree(seed=3, n_chain=4, n_draw=1000, diagnostics=False)
    good = diagnostics_table(good_tree).set_index("check")
    assert good.loc["max R-hat", "ok"] and good.loc["divergent transitions", "ok"]
    bad_tree = _fit_tree(seed=3, n_chain=4, n_draw=1000, diagnostics=False, chain_shift=1.0)
    bad = diagnostics_table(bad_tree).set_index("check")
    assert bad.loc["max R-hat", "value"] > 1.5 and not bad.loc["max R-hat", "ok"]
    fig = diagnostics_figure(bad_tree)
    assert "CONVERGENCE PROBLEMS" in fig._suptitle.get_text()
    assert "growth_rate" in _rank_axes(fig)[0].get_title()  # worst parameter first


def test_parameter_diagnostics_leave_out_entries_held_fixed():
    """A parameter held at one value in every draw has no R-hat (0/0): it is not listed, and
    no division warning is printed for it."""
    import warnings

    from cartfit.plotting.diagnostics import parameter_diagnostics

    tree = _fit_tree(seed=3, n_chain=4, n_draw=200, diagnostics=False)
    tree["posterior"]["theta"].values[..., 1] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per = parameter_diagnostics(tree)
    names = get_model("predator_prey", "gompertz").parameter_names
    assert not per["variable"].str.endswith(f", {names[1]}]").any()
    assert per["variable"].str.endswith(f", {names[0]}]").sum() == len(SUBJECTS)
    assert per["r_hat"].notna().all()


def test_parameter_diagnostics_list_a_shared_parameter_once():
    """A shared parameter's theta is exp(mu) for every subject: its draws rank alike, so only
    the population entry is listed, and the rank plots show distinct quantities."""
    from cartfit.plotting.diagnostics import parameter_diagnostics

    tree = _fit_tree(seed=3, n_chain=4, n_draw=200, diagnostics=False)
    post = tree["posterior"]
    mu = np.random.default_rng(5).normal(size=post["theta"].isel(subject=0).shape)
    post["mu"] = post["theta"].isel(subject=0).copy(data=mu)
    shared = np.log(post["theta"].values[:, :, 0, 1])
    post["mu"].values[..., 1] = shared
    post["theta"].values[..., 1] = np.exp(shared)[:, :, None]
    per = parameter_diagnostics(tree)
    names = get_model("predator_prey", "gompertz").parameter_names
    listed = per["variable"][per["variable"].str.endswith(f"{names[1]}]")].tolist()
    assert listed == [f"mu[{names[1]}]"]
    assert per["variable"].str.endswith(f", {names[0]}]").sum() == len(SUBJECTS)


def test_failed_title_is_wrapped_for_bold_type():
    """The red bold title of a failed fit is wrapped to fewer characters per line than a
    regular one (bold capitals run wider and were cut at both edges of a 10-inch figure)."""
    import matplotlib.pyplot as plt

    text = "CONVERGENCE PROBLEMS: " + "; ".join(["max R-hat 2.156 (needs <= 1.01)"] * 6)
    widths = {}
    for failed in (False, True):
        fig = plt.figure(figsize=(10, 4))
        style.title(fig, text, failed=failed)
        widths[failed] = max(len(line) for line in fig._suptitle.get_text().splitlines())
        plt.close(fig)
    assert widths[True] <= 106 < widths[False]


# --- figures from analysis tables ----------------------------------------------------------


def test_growth_law_comparison_orders_best_first_and_marks_bad_k():
    df = pd.DataFrame(
        {
            "model": ["predator_prey"] * 3,
            "growth": ["logistic", "gompertz", "exponential"],
            "elpd_loo": [-110.0, -100.0, -130.0],
            "se": [5.0, 5.0, 6.0],
            "elpd_diff": [-10.0, 0.0, -30.0],
            "dse": [3.0, 0.0, 5.0],
            "weight": [0.2, 0.8, 0.0],
            "n_bad_pareto_k": [0, 0, 2],
        }
    )
    fig = growth_law_comparison(df)
    left, right = _visible(fig)
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert labels[0] == "predator_prey / gompertz"  # best at the top
    bad = [t for t in left.get_yticklabels() if "Pareto" in t.get_text()]
    assert len(bad) == 1 and bad[0].get_color() == FAIL_RED
    assert left.get_xlabel() and right.get_xlabel()
    with pytest.raises(CartfitError, match="weight"):
        growth_law_comparison(df.drop(columns="weight"))


def test_growth_law_comparison_labels_unconverged_and_misfit_fits_in_red():
    df = pd.DataFrame(
        {
            "model": ["predator_prey"] * 3,
            "growth": ["gompertz", "logistic", "exponential"],
            "elpd_loo": [-100.0, -300.0, -130.0],
            "se": [5.0, 8.0, 6.0],
            "elpd_diff": [0.0, -200.0, -30.0],
            "dse": [0.0, 20.0, 5.0],
            "weight": [1.0, 0.0, 0.0],
            "n_bad_pareto_k": [0, 0, 0],
            "warning": [
                "",
                "fit not converged: R-hat > 1.01 for 124 quantities (worst 1.427); "
                "misfit: residual SD of tumor 2.20 against 0.59 in the best fit",
                "misfit: residual SD of car_t 0.98 against 0.40 in the best fit",
            ],
        }
    )
    ticks = {t.get_text(): t for t in _visible(growth_law_comparison(df))[0].get_yticklabels()}
    assert set(ticks) == {
        "predator_prey / gompertz",
        "predator_prey / logistic\n(not converged; misfit)",
        "predator_prey / exponential\n(misfit)",
    }
    assert ticks["predator_prey / gompertz"].get_color() != FAIL_RED
    assert ticks["predator_prey / exponential\n(misfit)"].get_color() == FAIL_RED


def _exposure():
    rng = np.random.default_rng(5)
    rows = []
    for s in ("S1", "S2", "S3"):
        for metric, unit, centre in (("cmax", "copies/ug", 1e4), ("tmax", "days", 12.0)):
            m = centre * np.exp(rng.normal(0, 2.0 if metric == "cmax" else 0.1))
            rows.append(
                {
                    "subject": s,
                    "metric": metric,
                    "mean": m,
                    "median": m,
                    "q05": m / 2,
                    "q95": m * 2,
                    "unit": unit,
                }
            )
    return pd.DataFrame(rows)


def test_exposure_forest_log_where_spanning_and_truth_overlay():
    df = _exposure()
    truth = df[["subject", "metric"]].assign(value=df["median"] * 1.1)
    fig = exposure_forest(df, truth=truth)
    cmax_ax, tmax_ax = _visible(fig)
    assert cmax_ax.get_xscale() == "log" and tmax_ax.get_xscale() == "linear"
    assert cmax_ax.get_xlabel() == "cmax (copies/ug)"
    assert [t.get_text() for t in cmax_ax.get_yticklabels()] == ["S1", "S2", "S3"]
    assert any(line.get_marker() == "D" for line in cmax_ax.get_lines())
    assert len(_visible(exposure_forest(df, metrics=["tmax"]))) == 1
    with pytest.raises(CartfitError, match="no metric"):
        exposure_forest(df, metrics=["auc"])


def test_exposure_forest_title_counts_fitted_subjects_only():
    df = _exposure()
    extra = df[df["subject"] == "S1"]
    df = pd.concat([df, extra.assign(subject="population_typical"),
                    extra.assign(subject="new_subject")])  # fmt: skip
    title = exposure_forest(df)._suptitle.get_text()
    assert "(3 subjects, the population-typical subject, a new subject)" in title


def test_relapse_curves_panels():
    rows = [
        {
            "subject": s,
            "horizon_days": h,
            "p_relapse": 0.3 * h / 365,
            "p_relapse_antigen_pos": 0.2 * h / 365,
            "p_relapse_antigen_neg": 0.1 * h / 365,
            "p_cure": 0.5,
        }
        for s in ("S1", "S2")
        for h in (90, 180, 365)
    ]
    fig = relapse_curves(pd.DataFrame(rows))
    axes = _visible(fig)
    assert len(axes) == 4 and all(ax.get_xlabel() for ax in axes)
    assert axes[2].get_title().startswith("antigen-negative")
    assert len(axes[2].get_lines()) == 3  # two subjects and the cohort mean
    # a model without an antigen-negative tumour: its zeros are not a prediction
    no_escape = _visible(relapse_curves(pd.DataFrame(rows), antigen_negative=False))[2]
    assert not no_escape.get_lines()
    assert "not modelled" in " ".join(t.get_text() for t in no_escape.texts)


def test_report_figures_know_which_models_have_an_antigen_negative_tumour(tmp_path):
    from cartfit.report.figures import _antigen_negative

    assert not _antigen_negative([tmp_path / "predator_prey_gompertz_population.csv"])
    assert not _antigen_negative([tmp_path / "multifate_logistic_S01.csv"])
    assert _antigen_negative([tmp_path / "escape_gompertz_CD28.csv"])


def test_trial_summary_rates_on_percent_axis():
    df = pd.DataFrame({"scenario": ["base", "base", "dose x3", "dose x3"],
                       "metric": ["response_rate", "cmax"] * 2, "mean": [0.5, 1e4, 0.7, 3e5],
                       "q05": [0.3, 5e3, 0.5, 1e5], "q95": [0.7, 2e4, 0.9, 9e5],
                       "unit": ["fraction", "copies/ug"] * 2})  # fmt: skip
    (rate,) = _visible(trial_summary(df))  # default: the fractions only
    assert rate.get_xlim() == (-0.02, 1.02) and rate.get_xlabel()
    assert [t.get_text() for t in rate.get_yticklabels()] == ["base", "dose x3"]
    rate, cmax_ax = _visible(trial_summary(df, metrics=["response_rate", "cmax"]))
    assert cmax_ax.get_xscale() == "log" and cmax_ax.get_xlabel() == "cmax (copies/ug)"


def test_trial_summary_reads_cartfit_trial_tables_with_horizons():
    rows = []
    for dose, costim in ((np.nan, np.nan), (3e8, "CD28")):
        rows.append({"quantity": "response_rate", "mean": 0.6, "q05": 0.5, "q95": 0.7})
        for h in (90, 365):
            rows.append({"quantity": f"p_relapse_{h}d", "mean": 0.2, "q05": 0.1, "q95": 0.3})
        rows.append({"quantity": "cmax", "mean": 1e4, "q05": 1e3, "q95": 1e5})
        for r in rows[-4:]:
            r.update(unit="fraction" if r["quantity"] != "cmax" else "copies/ug", dose=dose,
                     costim=costim, lymphodepletion=np.nan, n_subjects=200)  # fmt: skip
    axes = _visible(trial_summary(pd.DataFrame(rows)))
    assert [ax.get_title() for ax in axes] == ["response", "relapse"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == [
        "as fitted", "dose 3e+08, costim CD28"]  # fmt: skip
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["by day 90", "by day 365"]


def test_contrast_forest_rates_in_points_and_ratios_on_log_axis():
    rows = []
    for arm, shift in (("CD28", 0.1), ("high-dose", -0.05)):
        rows += [{"quantity": "p_relapse_180d", "mean": shift, "median": shift,
                  "q05": shift - 0.1, "q95": shift + 0.1, "unit": "difference (fraction)",
                  "p_population_higher": 0.9},
                 {"quantity": "cmax_ratio", "mean": 0.8, "median": 0.8, "q05": 0.4, "q95": 1.6,
                  "unit": "geometric mean ratio", "p_population_higher": 0.3}]  # fmt: skip
        for r in rows[-2:]:
            r.update(arm=arm, reference="4-1BB", n_subjects=200)
    rates, ratios = _visible(contrast_forest(pd.DataFrame(rows)))
    assert [t.get_text() for t in rates.get_yticklabels()] == ["relapse by day 180"]
    assert [t.get_text() for t in ratios.get_yticklabels()] == ["cmax"]
    assert ratios.get_xscale() == "log" and rates.get_xscale() == "linear"
    labels = [t.get_text() for t in rates.get_legend().get_texts()]
    assert labels == ["CD28 − 4-1BB", "high-dose − 4-1BB"]
    # a difference of +0.1 is drawn at +10 percentage points
    assert any(np.isclose(line.get_xdata(), 10.0).any() for line in rates.lines)
    with pytest.raises(CartfitError, match="p_population_higher"):
        contrast_forest(pd.DataFrame(rows).drop(columns="p_population_higher"))


def test_published_comparison_one_panel_per_parameter():
    df = pd.DataFrame(
        {
            "parameter": ["rho", "rho", "kappa", "kappa"],
            "source": ["cartfit", "published", "cartfit", "published"],
            "estimate": [0.05, 0.045, 0.3, 0.2],
            "lower": [0.03, 0.04, 0.2, 0.1],
            "upper": [0.08, 0.05, 0.45, 0.3],
        }
    )
    axes = _visible(published_comparison(df))
    assert [ax.get_title() for ax in axes] == ["rho", "kappa"]
    assert all(len(ax.lines) >= 2 for ax in axes)


def test_prior_predictive_plot_counts_data_inside_band():
    rng = np.random.default_rng(7)
    times = np.repeat([1.0, 7.0], 50)
    prior = np.exp(rng.normal(0, 1, (400, 100)))  # 90 % band about [0.19, 5.2]
    observed = np.where(np.arange(100) % 2 == 0, 1.0, 1e3)  # half inside, half far above
    fig = prior_predictive_plot(
        prior, times, ["car_t"] * 100, observed, units={"car_t": "copies/ug"}
    )
    (ax,) = _visible(fig)
    assert "50% of 100 measurements" in ax.get_title()
    assert ax.get_ylabel() == "CAR T in blood (copies/ug)" and ax.get_yscale() == "log"
    with pytest.raises(CartfitError, match="shape"):
        prior_predictive_plot(prior[:, :5], times)


# --- output and package boundaries -----------------------------------------------------------


def test_save_writes_atomically_by_suffix(tmp_path):
    def figure():
        return published_comparison(
            pd.DataFrame(
                {
                    "parameter": ["rho"],
                    "source": ["cartfit"],
                    "estimate": [0.05],
                    "lower": [0.03],
                    "upper": [0.08],
                }
            )
        )

    png = save(figure(), tmp_path / "sub" / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = tmp_path / "r.pdf"
    save(figure(), pdf)
    first = pdf.read_bytes()
    save(figure(), pdf)  # replaces the file; no creation date, so the same bytes
    assert first[:5] == b"%PDF-" and pdf.read_bytes() == first
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["r.pdf", "r.png", "sub"]


def test_importing_plotting_does_not_import_matplotlib():
    code = "import sys, cartfit.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

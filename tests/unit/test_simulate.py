"""The virtual-cohort simulator: valid cohorts, reproducibility, schedule, noise, LLOQ, truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cartfit.analysis.metrics import c_at, metric_grid, tmax
from cartfit.cli import main
from cartfit.data import load_cohort
from cartfit.errors import CartfitError
from cartfit.io import write_cohort
from cartfit.models import get_model
from cartfit.simulate import (
    Assay,
    CloneSettings,
    CohortDesign,
    VisitSchedule,
    draw_parameters,
    draw_visits,
    population_for,
    simulate_cohort,
    simulate_observations,
    simulate_tables,
    solve_reference,
    solve_subject,
)

PP = ("predator_prey", "gompertz")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "cohort"
    return simulate_cohort(*PP, n_subjects=8, seed=11, out=out)


def test_cohort_is_valid_and_has_truth(cohort: Path) -> None:
    loaded = load_cohort(cohort)
    assert sorted(loaded.subjects.index) == [f"S{i:02d}" for i in range(1, 9)]
    assert set(loaded.subjects["costim"]) == {"CD28", "4-1BB"}
    assert loaded.units == {"car_t": "copies/ug", "tumor": "% marrow blasts"}
    assert loaded.meta["relapse_threshold"] == 5.0
    assert (
        "cartfit simulate --model predator_prey --growth gompertz --subjects 8 --seed 11"
        in (loaded.meta["notes"])
    )
    truth = pd.read_csv(cohort / "truth.csv")
    assert list(truth["subject"]) == [f"S{i:02d}" for i in range(1, 9)]
    for name in get_model(*PP).parameter_names:
        assert {f"scaled_{name}", f"measured_{name}"} <= set(truth.columns)
    for metric in (
        "cmax",
        "tmax",
        "auc_0_28",
        "c_day28",
        "persistence_days",
        "killing_exposure",
        "tumor_nadir_log10_reduction",
        "time_to_nadir",
        "c_ctrl",
    ):
        assert truth[metric].notna().all(), metric
    scales = yaml.safe_load((cohort / "truth.yaml").read_text())["scales"]
    assert scales["car_t"]["per_scaled_unit"] == 1e4 and scales["tumor"]["per_scaled_unit"] == 40
    assert "Simulated data" in (cohort / "README.md").read_text()


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    out = tmp_path / "c"
    files = (
        "observations.csv",
        "subjects.csv",
        "cohort.yaml",
        "truth.csv",
        "truth.yaml",
        "README.md",
    )
    simulate_cohort(*PP, n_subjects=3, seed=5, out=out)
    first = {f: (out / f).read_bytes() for f in files}
    simulate_cohort(*PP, n_subjects=3, seed=5, out=out)
    assert {f: (out / f).read_bytes() for f in files} == first
    simulate_cohort(*PP, n_subjects=3, seed=6, out=out)
    assert (out / "observations.csv").read_bytes() != first["observations.csv"]
    assert (out / "truth.csv").read_bytes() != first["truth.csv"]


def test_subject_does_not_depend_on_cohort_size() -> None:
    obs3, _, truth3 = simulate_tables(*PP, n_subjects=3, seed=9)
    obs1, _, truth1 = simulate_tables(*PP, n_subjects=1, seed=9)
    pd.testing.assert_frame_equal(obs1, obs3[obs3["subject"] == "S01"].reset_index(drop=True))
    pd.testing.assert_frame_equal(truth1, truth3.iloc[:1])


def test_visit_schedule_jitter_order_and_missed_visits() -> None:
    schedule = VisitSchedule()
    rng = np.random.default_rng(0)
    nominal = np.asarray(schedule.days, float)
    gaps = dict(zip(nominal[1:], np.diff(nominal), strict=True))
    n_draws, held = 200, 0
    for _ in range(n_draws):
        v = draw_visits(schedule, rng)
        assert np.all(np.diff(v["time"]) > 0)  # never before the previous visit
        pre = v[v["nominal"] < 0]
        assert list(pre["nominal"]) == [-28, -7] and np.all(pre["time"] < 0)
        assert not pre["car_t"].any() and pre["tumor"].all()
        post = v[v["nominal"] > 0]
        assert v.loc[v["nominal"] == 0, "time"].tolist() == [0.0]
        # jitter within ±10 % of the gap (+ the 0.01-day rounding)
        limit = 0.1 * post["nominal"].map(gaps) + 0.005 + 1e-9
        assert np.all(np.abs(post["time"] - post["nominal"]) <= limit)
        held += len(post)
    # 12 visits after day 0, each missed with p = 0.1: the held share is 0.9 ± 0.006 (1 SE);
    # a 4-SE band cannot be missed by chance in practice.
    share = held / (12 * n_draws)
    assert abs(share - 0.9) < 4 * np.sqrt(0.9 * 0.1 / (12 * n_draws))
    jitter = pd.concat([draw_visits(schedule, rng) for _ in range(50)])
    assert (jitter.loc[jitter["nominal"] == 365, "time"] != 365).mean() > 0.9


def test_cohort_rows_have_pre_infusion_tumor_and_blq_tails(cohort: Path) -> None:
    obs = pd.read_csv(cohort / "observations.csv", keep_default_na=True)
    for _, rows in obs.groupby("subject"):
        assert (rows.loc[rows["analyte"] == "tumor", "time"] < 0).sum() == 2
        assert not (rows.loc[rows["analyte"] == "car_t", "time"] < 0).any()
    blq = obs["blq"] == 1
    assert obs.loc[blq, "value"].isna().all() and obs.loc[~blq, "value"].notna().all()
    assert (obs.loc[~blq, "value"] >= obs.loc[~blq, "lloq"]).all()
    car_t = obs[obs["analyte"] == "car_t"]
    late = car_t[car_t["time"] > 50]
    assert late["blq"].sum() > 0, "expected BLQ results in the CAR T contraction tail"
    assert set(car_t["lloq"]) == {5.0}


def test_assay_noise_has_the_stated_log_sd() -> None:
    model = get_model(*PP)
    params = {
        "growth_rate": 0.005,
        "carrying_capacity": 1.9,
        "kill_rate": 0.6,
        "proliferation_rate": 1.6,
        "death_rate": 0.13,
    }
    times = np.linspace(5.0, 25.0, 400)
    log_y0 = np.log([1.0, 3e-4])
    obs = simulate_observations(model, params, log_y0, {"car_t": times}, np.random.default_rng(3))
    truth = 1e4 * np.exp(solve_reference(model, params, log_y0, times)[:, 1])
    assert obs["blq"].sum() == 0  # all far above LLOQ in this window
    resid = np.log(obs["value"].to_numpy() / truth)
    # SD 0.4, n = 400: the sample SD has SE 0.4/sqrt(800) = 0.014; 4 SE band. Mean 0 ± 4 SE.
    assert abs(resid.std() - 0.4) < 0.06 and abs(resid.mean()) < 4 * 0.4 / 20


def test_blq_flags_follow_the_lloq_and_pre_infusion_follows_the_closed_form() -> None:
    model = get_model(*PP)
    params = {
        "growth_rate": 0.01,
        "carrying_capacity": 2.0,
        "kill_rate": 0.6,
        "proliferation_rate": 1.6,
        "death_rate": 0.13,
    }
    exact = CohortDesign()
    exact = replace(
        exact, assays={k: replace(a, log_sd=0.0, significant=12) for k, a in exact.assays.items()}
    )
    log_y0 = np.log([0.5, 3e-4])
    obs = simulate_observations(
        model,
        params,
        log_y0,
        {"tumor": [-60.0, -28.0, -7.0], "car_t": [0.0, 1.0, 300.0]},
        np.random.default_rng(0),
        design=exact,
    )
    tumor = obs[obs["analyte"] == "tumor"]
    t = tumor["time"].to_numpy()
    # Gompertz backwards: ln B(t) = ln K + (ln B0 - ln K) e^{-r t}
    expected = 40 * np.exp(np.log(2.0) + (np.log(0.5) - np.log(2.0)) * np.exp(-0.01 * t))
    np.testing.assert_allclose(tumor["value"], expected, rtol=1e-9)
    car_t = obs[obs["analyte"] == "car_t"].set_index("time")
    assert car_t.loc[0.0, "blq"] == 1 and np.isnan(car_t.loc[0.0, "value"])  # 3 < LLOQ 5
    assert car_t.loc[1.0, "blq"] == 0 and car_t.loc[1.0, "value"] >= 5.0


def test_truth_metrics_agree_with_a_direct_solve(cohort: Path) -> None:
    model = get_model(*PP)
    truth = pd.read_csv(cohort / "truth.csv")
    for _, row in truth.iterrows():
        params = {n: row[f"scaled_{n}"] for n in model.parameter_names}
        log_y0 = [row[f"init_{s}"] for s in model.states]
        # an independent grid to the end of follow-up (365 + 10 % of the last 95-day gap)
        t = np.linspace(0.0, 374.5, 37451)
        y = solve_reference(model, params, log_y0, t)
        car_t, tumor = 1e4 * np.exp(y[:, 1]), 40 * np.exp(y[:, 0])
        early = t <= 28
        # trapezoid on a 0.01-day vs the metric grid, grid maxima: agree to ~1e-4 relative
        assert row["cmax"] == pytest.approx(car_t.max(), rel=1e-3)
        assert row["auc_0_28"] == pytest.approx(np.trapezoid(car_t[early], t[early]), rel=1e-3)
        assert row["c_day28"] == pytest.approx(car_t[early][-1], rel=1e-6)
        assert row["killing_exposure"] == pytest.approx(
            np.trapezoid(params["kill_rate"] * car_t / 1e4, t), rel=1e-3
        )
        nadir = np.log10(tumor[0] / tumor.min())
        assert row["tumor_nadir_log10_reduction"] == pytest.approx(nadir, rel=1e-3, abs=1e-3)
        assert row["tumor_day0"] == pytest.approx(tumor[0], rel=1e-9)
        # measured units: k_meas * C_meas == k_scaled * C_scaled, p_meas * B_meas == p * B
        assert row["measured_kill_rate"] * 1e4 == pytest.approx(row["scaled_kill_rate"])
        assert row["measured_proliferation_rate"] * 40 == pytest.approx(
            row["scaled_proliferation_rate"]
        )
        assert row["c_ctrl"] == pytest.approx(
            row["measured_growth_rate"] / row["measured_kill_rate"]
        )


def test_cd28_typical_subject_peaks_earlier_and_contracts_faster() -> None:
    model = get_model(*PP)
    spec = population_for(model)
    grid = metric_grid(100.0)
    out = {}
    for costim in ("4-1BB", "CD28"):
        effect = spec.costim_effect.get(costim, {})
        params = {n: v * effect.get(n, 1.0) for n, v in spec.typical.items()}
        y = solve_reference(model, params, np.log([0.95, 2.5e-4]), grid)
        car_t = 1e4 * np.exp(y[:, 1])
        out[costim] = (tmax(grid, car_t), c_at(grid, car_t, 28.0))
    assert out["CD28"][0] < out["4-1BB"][0] - 1.0  # earlier peak (days)
    assert out["CD28"][1] < 0.5 * out["4-1BB"][1]  # lower day-28 level: faster contraction
    assert 5.0 < out["4-1BB"][0] < 12.0  # tisagenlecleucel-like peak time


def test_between_subject_variability_has_the_stated_log_sd() -> None:
    spec = population_for(get_model(*PP))
    rng = np.random.default_rng(4)
    names = tuple(spec.typical)
    draws = [draw_parameters(spec, names, "4-1BB", rng) for _ in range(2000)]
    low = np.array([d[1] for d in draws])
    # latent low-fitness class: binomial share, 4 SE band
    share_se = np.sqrt(spec.low_fitness_fraction * (1 - spec.low_fitness_fraction) / 2000)
    assert abs(low.mean() - spec.low_fitness_fraction) < 4 * share_se
    normal = [d[0] for d, is_low in zip(draws, low, strict=True) if not is_low]
    for name in names:
        logs = np.log([d[name] for d in normal])
        # sample SD of ~1700 normal draws has SE omega/sqrt(2n) ~ 1.7 %; 10 % band
        assert np.std(logs) == pytest.approx(spec.omega[name], rel=0.1), name
        assert np.exp(np.median(logs)) == pytest.approx(spec.typical[name], rel=0.1), name


def test_bad_requests_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(CartfitError, match="at least 1"):
        simulate_cohort(*PP, n_subjects=0, seed=1, out=tmp_path / "x")
    with pytest.raises(CartfitError, match="seed"):
        simulate_cohort(*PP, n_subjects=2, seed=-1, out=tmp_path / "x")
    with pytest.raises(CartfitError, match="unknown growth law"):
        simulate_cohort("predator_prey", "linear", n_subjects=2, seed=1, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(CartfitError, match="no CAR T phenotypes"):
        simulate_cohort(*PP, n_subjects=2, seed=1, out=tmp_path / "x", phenotype_days=(7,))
    with pytest.raises(CartfitError, match=r"--phenotype-days 8: expected visit days .*1, 4, 7"):
        simulate_cohort("multifate", "gompertz", 2, 1, tmp_path / "x", phenotype_days=(8,))
    assert not (tmp_path / "x").exists()
    rc = main(
        [
            "simulate",
            "--model",
            "predator_prey",
            "--growth",
            "gompertz",
            "--subjects",
            "0",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2


def test_assay_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Assay("car_t", "copies/ug", scale=1e4, log_sd=0.4, lloq=0.0)


ESCAPE_PARAMS = {
    "growth_rate": 0.005,
    "carrying_capacity": 1.9,
    "kill_rate": 0.7,
    "off_target_kill_rate": 0.02,
    "proliferation_rate": 3.0,
    "death_rate": 0.1,
}


def _escape_runs(loss_rate: float, seeds: range) -> list[tuple[float, float, float]]:
    """(antigen-negative cells at infusion, establishment day, final log antigen-neg share)."""
    model = get_model("escape", "gompertz")
    params = {**ESCAPE_PARAMS, "antigen_loss_rate": loss_rate}
    log_y0 = model.extras["initial_state"](0.95, 2.5e-4)
    grid = np.linspace(0.0, 300.0, 601)
    clones = CloneSettings(cells_per_scaled_tumor=4e11)
    out = []
    for seed in seeds:
        run = solve_subject(
            model, params, log_y0, grid, clones=clones, rng=np.random.default_rng(seed)
        )
        y = run.log_states[-1]
        out.append((run.antigen_neg_cells_day0, run.escape_day, y[1] - np.logaddexp(y[0], y[1])))
    return out


def test_antigen_negative_clones_arise_stochastically() -> None:
    """Same parameters, different clone seeds: some runs end antigen-negative, some never have
    an antigen-negative tumour. At 3e-13 per cell per day a 4e11-cell leukaemia founds ~0.1
    antigen-negative cells a day, most of whose lineages die out, so whether a clone survives is
    down to chance (seeds fixed: the split below is what these 12 seeds give)."""
    runs = _escape_runs(3e-13, range(12))
    share = np.array([r[2] for r in runs])
    established = np.isfinite([r[1] for r in runs])
    assert (share > np.log(0.5)).sum() >= 2  # antigen-negative relapse in some runs ...
    assert (share < -100).sum() >= 2  # ... and no antigen-negative tumour at all in others
    np.testing.assert_array_equal(established, share > -100)
    assert any(r[0] == 0 for r in runs) and any(r[0] > 0 for r in runs)
    # negative controls: no antigen loss -> never; frequent loss -> always, present at infusion
    assert all(np.isnan(r[1]) and r[0] == 0 for r in _escape_runs(1e-20, range(3)))
    assert all(r[1] <= 0 and r[0] >= 1000 for r in _escape_runs(1e-9, range(3)))


def test_escape_cohort_has_both_relapse_types_and_antigen_negative_rows() -> None:
    obs, subjects, truth = simulate_tables("escape", "gompertz", n_subjects=6, seed=10)
    assert set(obs["analyte"]) == {"car_t", "tumor", "tumor_antigen_neg"}
    assert set(subjects["relapse_antigen"]) == {"pos", "neg", ""}
    assert (subjects["best_response"] == "NR").any()
    neg = obs[obs["analyte"] == "tumor_antigen_neg"].set_index(["subject", "time"])["value"]
    tot = obs[obs["analyte"] == "tumor"].set_index(["subject", "time"])["value"]
    for _, row in subjects[subjects["relapse_antigen"] != ""].iterrows():
        key = (row["subject"], row["relapse_day"])
        assert tot[key] >= 5.0  # the relapse visit is the last one and above the threshold
        assert obs.loc[obs["subject"] == row["subject"], "time"].max() == row["relapse_day"]
        share = np.nan_to_num(neg[key]) / tot[key]
        assert (share >= 0.5) == (row["relapse_antigen"] == "neg")
    # an antigen-negative relapse needs an established clone
    relapsed_neg = truth[truth["relapse_antigen"] == "neg"]
    assert np.isfinite(relapsed_neg["escape_day"]).all()


def test_bundled_example_regenerates_from_its_readme_command(tmp_path: Path) -> None:
    """``data/example`` is what its README's command writes: the same rows, columns and flags,
    and the same numbers to 1e-9 relative. Not byte for byte: the files carry 10 significant
    digits, and NumPy's summation order depends on the memory alignment of its arrays, so a
    last-bit difference between runs (it happened once in a CI run, in a killing exposure) can
    flip the tenth digit."""
    example = Path(__file__).resolve().parents[2] / "data" / "example"
    load_cohort(example)
    command = [
        line
        for line in (example / "README.md").read_text().splitlines()
        if line.startswith("cartfit simulate")
    ]
    assert len(command) == 1
    args = command[0].split()[1:]
    args[args.index("--out") + 1] = str(tmp_path / "example")
    assert main(args) == 0
    for name in ("observations.csv", "subjects.csv", "truth.csv"):
        got, want = pd.read_csv(tmp_path / "example" / name), pd.read_csv(example / name)
        assert list(got.columns) == list(want.columns) and len(got) == len(want), name
        for col in want.columns:
            if pd.api.types.is_float_dtype(want[col]):
                np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=f"{name} {col}")
            else:
                pd.testing.assert_series_equal(got[col], want[col], obj=f"{name} {col}")


def test_multifate_cohort_phenotyped_at_the_scheduled_visits_only(tmp_path: Path) -> None:
    """Flow phenotypes (memory and exhausted shares) come only where the schedule asks for them
    and the visit's CAR T result was quantified; they are shares (at most 1, unit fraction) that
    the data contract accepts, and a schedule without phenotype days gives none."""
    days = (7, 14, 28, 90, 180)
    design = CohortDesign(schedule=VisitSchedule(phenotype_days=days))
    obs, subjects, _ = simulate_tables("multifate", "gompertz", 6, 11, design=design)
    pheno = obs[obs["analyte"].isin(["car_t_memory_fraction", "car_t_exhausted_fraction"])]
    assert set(pheno["analyte"]) == {"car_t_memory_fraction", "car_t_exhausted_fraction"}
    assert set(pheno["unit"]) == {"fraction"} and (pheno["value"].dropna() <= 1.0).all()
    car_t = obs[obs["analyte"] == "car_t"]
    quantified = car_t.loc[car_t["blq"] == 0, ["subject", "time"]]
    pairs = pheno[["subject", "time"]].merge(quantified, how="left", indicator=True)
    assert (pairs["_merge"] == "both").all()
    # each phenotyped time is within the jitter of a scheduled day (±10 % of the gap before it)
    gaps = dict(zip(design.schedule.days[1:], np.diff(design.schedule.days), strict=True))
    assert all(min(abs(t - d) - 0.1 * gaps[d] for d in days) <= 0.01 for t in pheno["time"])
    cohort = write_cohort(tmp_path / "c", obs, subjects)
    assert set(load_cohort(cohort).observations["analyte"]) >= {"car_t_memory_fraction"}
    plain, _, _ = simulate_tables("multifate", "gompertz", 6, 11)
    assert not plain["analyte"].str.startswith("car_t_").any()
    with pytest.raises(ValueError, match="phenotype days"):
        VisitSchedule(phenotype_days=(8,))


def test_a_share_has_log_odds_noise_with_the_true_share_as_median() -> None:
    from cartfit.simulate.measurement import measure

    assay = Assay("car_t_memory_fraction", "fraction", 1.0, log_sd=0.2, lloq=0.001, upper=1.0)
    rng = np.random.default_rng(1)
    for share in (0.02, 0.5, 0.95):
        value, blq = measure(assay, np.full(4000, np.log(share)), rng)
        assert not blq.any() and value.max() < 1.0
        # the median of 4000 draws has SE about 1.25 sigma_share / sqrt(4000): < 2 % relative
        assert abs(np.median(value) / share - 1) < 0.05
        # relative error sigma (1 - x) to first order in sigma (sample SD of 4000: within 10 %)
        assert abs(np.log(value).std() / (0.2 * (1 - share)) - 1) < 0.1


def test_simulate_command_phenotypes_and_records_itself(tmp_path: Path) -> None:
    out = tmp_path / "pheno"
    argv = ["simulate", "--model", "multifate", "--growth", "gompertz", "--subjects", "3"]
    assert main([*argv, "--seed", "4", "--phenotype-days", "14,28", "--out", str(out)]) == 0
    obs = load_cohort(out).observations
    pheno = obs[obs["analyte"] == "car_t_exhausted_fraction"]
    assert len(pheno) > 0 and pheno["time"].between(12.0, 30.0).all()
    truth = yaml.safe_load((out / "truth.yaml").read_text())
    assert "--phenotype-days 14,28" in truth["command"]
    assert truth["schedule"]["phenotype_days"] == [14, 28]

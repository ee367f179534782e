"""The PyMC model's log density against hand computations (lognormal, Student-t, M3 censoring)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cartfit.data import load_cohort
from cartfit.inference import build_model, prepare
from cartfit.inference.predict import observation_means, pointwise_loglik
from cartfit.io import write_cohort
from cartfit.models import get_model


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    """One subject, four rows: two CAR T (one BLQ), one pre-infusion and one post tumour row."""
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    obs = pd.DataFrame(
        {
            "subject": ["P1"] * 4,
            "time": [-7.0, 7.0, 7.0, 60.0],
            "analyte": ["tumor", "tumor", "car_t", "car_t"],
            "value": [50.0, 20.0, 3000.0, np.nan],
            "unit": ["mm2", "mm2", "copies/ug", "copies/ug"],
            "lloq": [1.0, 1.0, 5.0, 5.0],
            "blq": [0, 0, 0, 1],
        }
    )
    subjects = pd.DataFrame({"subject": ["P1"], "dose": [2e8], "costim": ["CD28"]})
    write_cohort(out, obs, subjects)
    return load_cohort(out)


@pytest.mark.parametrize("likelihood", ["lognormal", "student_t"])
def test_pointwise_loglik_matches_pymc(tiny_cohort, likelihood):
    """The numpy log-likelihood written into fit files equals PyMC's observed log density at
    random points, including the censored (M3) row. The file's values come from the solve
    without sensitivities, which takes its own steps (the sampled model's steps also control
    the sensitivities' error), so the two agree to the solver's tolerance (rtol 1e-5 on the
    log states), not to rounding."""
    model = get_model("predator_prey", "logistic")
    data = prepare(tiny_cohort, model)
    pm_model = build_model(model, data, likelihood=likelihood)
    logp_y = pm_model.compile_fn(
        pm_model.logp(vars=[pm_model["y"]], sum=False)[0],
        inputs=pm_model.value_vars,
        mode="FAST_COMPILE",
        on_unused_input="ignore",
    )
    rng = np.random.default_rng(1)
    ip = pm_model.initial_point()
    for _ in range(3):
        point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
        expected = logp_y(point)
        outs = pm_model.replace_rvs_by_values(
            [pm_model["theta"], pm_model["log_y0"], pm_model["sigma"]]
        )
        fn = pm_model.compile_fn(
            outs, inputs=pm_model.value_vars, mode="FAST_COMPILE", on_unused_input="ignore"
        )
        theta, log_y0, sigma = fn(point)
        obs = data.obs
        mu = observation_means(
            model,
            theta[None],
            log_y0[None],
            obs["subject_idx"].to_numpy(),
            obs["time"].to_numpy(),
            obs["analyte"].to_numpy(),
        )
        got = pointwise_loglik(
            mu,
            sigma[obs["analyte_idx"].to_numpy()][None],
            obs["log_value"].to_numpy(),
            obs["blq"].to_numpy(),
            likelihood,
        )[0]
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


def test_censored_term_is_beal_m3():
    """A BLQ row contributes log Phi((log LLOQ - mu)/sigma), as scipy computes it."""
    mu = np.array([[0.3, -2.0]])
    sigma = np.array([[0.5, 0.5]])
    log_lloq = np.array([-1.0, -1.0])
    got = pointwise_loglik(mu, sigma, log_lloq, np.array([True, True]))
    np.testing.assert_allclose(got[0], stats.norm.logcdf((log_lloq - mu[0]) / 0.5))


def test_lognormal_density_by_hand():
    """An observed row contributes the normal log density of ln(y/scale)."""
    got = pointwise_loglik(np.array([[1.0]]), np.array([[0.4]]), np.array([1.2]), np.array([False]))
    assert got[0, 0] == pytest.approx(
        -0.5 * (0.2 / 0.4) ** 2 - np.log(0.4) - 0.5 * np.log(2 * np.pi)
    )


def test_model_graph_names_and_shapes(tiny_cohort):
    model = get_model("predator_prey", "gompertz")
    data = prepare(tiny_cohort, model)
    pm_model = build_model(model, data)
    names = {v.name for v in pm_model.free_RVs}
    assert names == {"z", "z0", "sigma"}
    assert pm_model.named_vars_to_dims["theta"] == ("subject", "parameter")
    assert list(pm_model.coords["parameter"]) == list(model.parameter_names)
    assert len(pm_model.coords["obs"]) == 4
    # pre-infusion row is predicted by the closed form, the rest by the ODE
    assert data.obs["pre"].sum() == 1


def test_solver_failure_gives_minus_inf_not_a_crash(tiny_cohort):
    """A draw whose solve fails (absurd proliferation) has log density -inf."""
    model = get_model("predator_prey", "exponential")
    data = prepare(tiny_cohort, model)
    pm_model = build_model(model, data)
    logp = pm_model.compile_logp()
    point = pm_model.initial_point()
    assert np.isfinite(logp(point))
    point["z"] = np.array([[0.0, 40.0, 40.0, 0.0]])  # kill and proliferation rates ~e^40
    assert logp(point) == -np.inf


def test_lymphodepletion_depth_is_fixed_by_the_covariate(tmp_path):
    """The multifate model's lymphodepletion depth comes from subjects.csv, not the prior."""
    obs = pd.DataFrame({
        "subject": ["P1", "P1"], "time": [7.0, 14.0], "analyte": ["car_t", "car_t"],
        "value": [3000.0, 800.0], "unit": ["copies/ug"] * 2, "lloq": [5.0, 5.0], "blq": [0, 0],
    })  # fmt: skip
    subjects = pd.DataFrame({"subject": ["P1"], "dose": [2e8], "lymphodepletion": [0.7]})
    write_cohort(tmp_path / "c", obs, subjects)
    model = get_model("multifate", "gompertz")
    data = prepare(load_cohort(tmp_path / "c"), model)
    pm_model = build_model(model, data)
    theta_fn = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model["theta"]])[0],
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
    )
    j = model.parameter_names.index("lymphodepletion")
    for shift in (0.0, 1.0):
        point = {k: v + shift for k, v in pm_model.initial_point().items()}
        assert theta_fn(point)[0, j] == pytest.approx(0.7)


def test_phenotype_fractions_are_shares_of_the_multifate_car_t_states(tmp_path):
    """A memory fraction in % and an exhausted fraction (0-1) are predicted as ln M/(E+M+X) and
    ln X/(E+M+X) of the ODE solve (scale 100 and 1: the whole in each unit), and observed as
    ln(value / whole); the SciPy reference solve of the same parameters agrees to 1e-5."""
    from cartfit.simulate import solve_reference

    obs = pd.DataFrame({
        "subject": ["P1"] * 4, "time": [7.0, 14.0, 28.0, 28.0],
        "analyte": ["car_t", "car_t", "car_t_memory_fraction", "car_t_exhausted_fraction"],
        "value": [3000.0, 800.0, 12.0, 0.3], "unit": ["copies/ug", "copies/ug", "%", "fraction"],
        "lloq": [5.0, 5.0, None, None], "blq": [0, 0, 0, 0],
    })  # fmt: skip
    write_cohort(tmp_path / "c", obs, pd.DataFrame({"subject": ["P1"], "dose": [2e8]}))
    model = get_model("multifate", "gompertz")
    data = prepare(load_cohort(tmp_path / "c"), model)
    assert data.scales["car_t_memory_fraction"] == 100.0
    assert data.scales["car_t_exhausted_fraction"] == 1.0
    rows = data.obs.set_index("analyte")
    assert rows.loc["car_t_memory_fraction", "log_value"] == pytest.approx(np.log(0.12))
    assert rows.loc["car_t_exhausted_fraction", "log_value"] == pytest.approx(np.log(0.3))
    pm_model = build_model(model, data)
    outs = pm_model.replace_rvs_by_values([pm_model["mu_obs"], pm_model["theta"],
                                           pm_model["log_y0"]])  # fmt: skip
    fn = pm_model.compile_fn(outs, inputs=pm_model.value_vars, on_unused_input="ignore")
    mu, theta, log_y0 = fn(pm_model.initial_point())
    ly = solve_reference(model, theta[0], log_y0[0], np.array([28.0]))[0]
    total = np.logaddexp.reduce(ly[:3])
    analytes = list(data.obs["analyte"])
    assert mu[analytes.index("car_t_memory_fraction")] == pytest.approx(ly[1] - total, abs=1e-5)
    assert mu[analytes.index("car_t_exhausted_fraction")] == pytest.approx(ly[2] - total, abs=1e-5)
    # models without the phenotype states leave the rows out
    other = prepare(load_cohort(tmp_path / "c"), get_model("predator_prey", "gompertz"))
    assert set(other.analytes) == {"car_t"} and len(other.dropped) == 2


def _two_subject_cohort(tmp_path, analytes):
    rows = []
    for s in ("P1", "P2"):
        for t in (7.0, 14.0, 28.0):
            rows += [(s, t, a, 100.0 / t, "u", 0.01, 0) for a in analytes]
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "unit", "lloq", "blq"])
    subjects = pd.DataFrame({"subject": ["P1", "P2"], "dose": [1e8, 3e8]})
    write_cohort(tmp_path / "c", obs, subjects)
    return load_cohort(tmp_path / "c")


def test_population_centres_car_t_kinetics_only_when_car_t_is_measured(tmp_path):
    """Subject effects start centred (weight 1) for CAR T expansion/contraction and tumour
    growth when CAR T is measured, non-centred (weight 0) for the rest; without CAR T data all
    start non-centred. For any weights a, eta ~ N(a m, omega^a) and
    ln theta = m + omega^(1-a) (eta - a m): the same theta at eta's image, the same density."""
    model = get_model("predator_prey", "gompertz")
    data = prepare(_two_subject_cohort(tmp_path, ["tumor", "car_t"]), model)
    pm_model = build_model(model, data, population=True)
    assert list(pm_model.coords["varying_parameter"]) == [
        "growth_rate", "kill_rate", "proliferation_rate", "death_rate",
    ]  # fmt: skip
    weights = pm_model.cartfit_centring.weights
    np.testing.assert_array_equal(weights.get_value(), [[1, 0, 1, 1], [1, 0, 1, 1]])
    theta_fn = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model["theta"]])[0],
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
    )
    logp = pm_model.compile_logp(vars=[pm_model["eta"]], sum=True)
    point = pm_model.initial_point()
    point["mu"] = np.log([0.01, 2.0, 0.5, 3.0, 0.1])
    omega = np.array([0.2, 0.3, 0.4, 0.5])  # growth, kill, prolif, death
    point["omega_free_log__"] = np.log(omega)
    m = np.log([0.01, 0.5, 3.0, 0.1])
    log_theta = np.array([[-4.0, -0.9, 1.2, -2.0], [-5.0, -0.1, 0.9, -2.5]])
    expected = stats.norm.logpdf(log_theta, m, omega)
    for a in ([1.0, 0.0, 1.0, 1.0], [0.3, 0.7, 1.0, 0.0]):
        a = np.tile(a, (2, 1))
        weights.set_value(a)
        point["eta"] = a * m + omega**a * (log_theta - m) / omega
        theta = theta_fn(point)
        np.testing.assert_allclose(np.log(theta[:, 1]), np.log(2.0))  # carrying capacity shared
        np.testing.assert_allclose(np.log(theta[:, [0, 2, 3, 4]]), log_theta)
        # the density of eta is that of ln theta times |d ln theta / d eta| = omega^(1 - a)
        jacobian = np.log(omega ** (1.0 - a))
        assert logp(point) == pytest.approx((expected + jacobian).sum())

    tumour_only = prepare(_two_subject_cohort(tmp_path / "t", ["tumor"]), model)
    pm_model = build_model(model, tumour_only, population=True)
    assert not pm_model.cartfit_centring.weights.get_value().any()


def test_divergences_are_located_at_the_observation_whose_term_jumps(tiny_cohort):
    """A fake divergent step that moves only the initial CAR T level: the located observation is
    the one whose log-likelihood term changes most (computed here by hand), the steepest
    direction is a named coordinate, and non-divergent draws are ignored. The change agrees to
    the solver's tolerance: the located one comes from the solve without sensitivities."""
    from pymc.blocking import DictToArrayBijection

    from cartfit.inference.divergences import divergence_note, locate_divergences

    model = get_model("predator_prey", "gompertz")
    data = prepare(tiny_cohort, model)
    pm_model = build_model(model, data)
    ip = pm_model.initial_point()
    names = [v.name for v in pm_model.value_vars]
    x0 = DictToArrayBijection.map({n: ip[n] for n in names})
    moved = dict(ip)
    moved["z0"] = ip["z0"].copy()
    moved["z0"][0, 1] += 2.0  # initial CAR T up by two prior SDs
    x1 = DictToArrayBijection.map({n: moved[n] for n in names})
    stats_ = {
        "diverging": np.array([[False, True]]),
        "divergence_start": np.array([[None, x0.data]], dtype=object),
        "divergence_end": np.array([[None, x1.data]], dtype=object),
    }
    located = locate_divergences(pm_model, stats_, data.obs)
    assert len(located) == 1 and located.loc[0, "draw"] == 1
    terms = pm_model.compile_fn(pm_model.logp(vars=[pm_model["y"]], sum=False)[0],
                                inputs=pm_model.value_vars, on_unused_input="ignore")  # fmt: skip
    delta = terms(moved) - terms(ip)
    j = int(np.argmax(np.abs(delta)))
    assert located.loc[0, "delta_loglik"] == pytest.approx(delta[j], rel=1e-5)
    assert located.loc[0, "time"] == data.obs["time"].iloc[j]
    assert located.loc[0, "steepest"].split("[")[0] in names
    note = divergence_note(located, 1)
    assert note.startswith("divergences located (1 of 1)") and located.loc[0, "subject"] in note
    row = data.obs.iloc[j]
    mu = pm_model.compile_fn(pm_model["mu_obs"], inputs=pm_model.value_vars,
                             on_unused_input="ignore")(ip)  # fmt: skip
    if row["blq"]:  # how far below its LLOQ the prediction was where the step began
        assert located.loc[0, "below_lloq"] == pytest.approx(row["log_lloq"] - mu[j])
    else:
        assert np.isnan(located.loc[0, "below_lloq"])
    # the terms are evaluated without sensitivities; a given log density + gradient (the
    # sampler's, in the same raveled layout) gives the same answer
    from pytensor.graph.traversal import ancestors

    from cartfit.inference.divergences import without_sensitivities
    from cartfit.inference.op import SolveOp

    values = without_sensitivities(pm_model.logp(vars=[pm_model["y"]], sum=False)[0])
    ops = [v.owner.op for v in ancestors([values])
           if v.owner is not None and isinstance(v.owner.op, SolveOp)]  # fmt: skip
    assert ops and not any(op.sensitivities for op in ops)
    fn = pm_model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    again = locate_divergences(pm_model, stats_, data.obs, fn)
    pd.testing.assert_frame_equal(again, located)


def test_divergence_note_explains_divergences_at_censored_readings():
    """Divergences located at censored readings are summarised by how far below the LLOQ the
    prediction was and how much the reading's term changed; quantified ones add nothing."""
    from cartfit.inference.divergences import divergence_note

    rows = [("S12", "car_t", 356.74, True, -30.0, 95.0),
            ("S12", "car_t", 356.74, True, -10.0, 85.0),
            ("S16", "tumor", 7.0, False, -4.0, np.nan)]  # fmt: skip
    located = pd.DataFrame(
        [dict(chain=0, draw=i, subject=s, analyte=a, time=t, blq=b, delta_loglik=dl,
              below_lloq=bl, steepest="eta[S12, death_rate]")
         for i, (s, a, t, b, dl, bl) in enumerate(rows)]
    )  # fmt: skip
    note = divergence_note(located, 3)
    assert "S12 car_t day 356.74 (BLQ) ×2, S16 tumor day 7 ×1" in note
    assert "2 of them at censored readings" in note
    assert "prediction there lay 90 log units below the LLOQ (median)" in note
    assert "changed that reading's term by -20" in note
    assert "censored readings" not in divergence_note(located.iloc[2:], 1)
    above = located.assign(below_lloq=[-5.0, -6.0, np.nan])
    assert "lay 5.5 log units above the LLOQ" in divergence_note(above, 3)


def _rich_cohort(path, analytes_extra=()):
    """Two subjects with pre-infusion tumour, BLQ CAR T and tumour rows, and optional extra
    analytes (phenotype fractions, antigen-negative tumour)."""
    rows = []
    for sid, scale in (("P1", 1.0), ("P2", 3.0)):
        rows += [(sid, -14.0, "tumor", 40.0 * scale, "mm2", 1.0, 0),
                 (sid, -3.0, "tumor", 55.0 * scale, "mm2", 1.0, 0),
                 (sid, 0.0, "car_t", np.nan, "copies/ug", 5.0, 1),
                 (sid, 7.0, "car_t", 4000.0 / scale, "copies/ug", 5.0, 0),
                 (sid, 14.0, "car_t", 900.0, "copies/ug", 5.0, 0),
                 (sid, 14.0, "tumor", 20.0, "mm2", 1.0, 0),
                 (sid, 60.0, "tumor", np.nan, "mm2", 1.0, 1),
                 (sid, 90.0, "car_t", 30.0 * scale, "copies/ug", 5.0, 0)]  # fmt: skip
        for analyte, unit, value in analytes_extra:
            rows += [(sid, 14.0, analyte, value, unit, 0.001, 0),
                     (sid, 28.0, analyte, 0.8 * value, unit, 0.001, 0)]  # fmt: skip
    obs = pd.DataFrame(rows, columns=["subject", "time", "analyte", "value", "unit", "lloq", "blq"])
    subjects = pd.DataFrame({"subject": ["P1", "P2"], "dose": [2e8, 5e8],
                             "costim": ["CD28", "4-1BB"]})  # fmt: skip
    write_cohort(path, obs, subjects)
    return load_cohort(path)


@pytest.mark.parametrize(
    ("name", "growth", "population", "extra"),
    [("predator_prey", "gompertz", False, ()),
     ("predator_prey", "logistic", True, ()),
     ("predator_prey", "exponential", True, ()),
     ("escape", "gompertz", True, (("tumor_antigen_neg", "mm2", 5.0),)),
     ("multifate", "logistic", True, (("car_t_memory_fraction", "fraction", 0.3),))],
)  # fmt: skip
def test_compiled_likelihood_equals_the_pytensor_graph(tmp_path, name, growth, population, extra):
    """The compiled likelihood Op (the default) and the PyTensor graph of the same density
    (``fused=False``: gathers, observables, closed form, ``pm.Censored``) agree on the log
    density, its gradient, the per-row terms and the predictions at random points: pre-infusion
    rows, BLQ rows, several subjects, and observables that are sums (escape's total tumour,
    multi-fate CAR T) and ratios (a phenotype fraction). Both read the same solve, so the
    predictions agree to rounding."""
    model = get_model(name, growth)
    data = prepare(_rich_cohort(tmp_path / "c", extra), model)
    fused = build_model(model, data, population=population)
    graph = build_model(model, data, population=population, fused=False)
    fns = []
    for m in (fused, graph):
        rows = m.logp(vars=[m["y"]], sum=False)[0]
        mu = m.replace_rvs_by_values([m["mu_obs"]])[0]
        kw = {"mode": "FAST_COMPILE"}
        fns.append((m.compile_logp(**kw), m.compile_dlogp(**kw),
                    m.compile_fn([rows, mu], inputs=m.value_vars, on_unused_input="ignore",
                                 **kw)))  # fmt: skip
    rng = np.random.default_rng(3)
    ip = fused.initial_point()
    for _ in range(4):
        point = {k: v + 0.4 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
        (lp_f, dlp_f, rows_f), (lp_g, dlp_g, rows_g) = fns
        assert np.isfinite(lp_f(point))
        assert lp_f(point) == pytest.approx(lp_g(point), rel=1e-9)
        np.testing.assert_allclose(dlp_f(point), dlp_g(point), rtol=1e-7, atol=1e-8)
        rows, mu = rows_f(point)
        rows_ref, mu_ref = rows_g(point)
        np.testing.assert_allclose(mu, mu_ref, rtol=1e-12, atol=1e-12)
        # PyTensor's log-CDF loses digits where Phi is close to 1 (1.5e-6 relative at
        # log Phi = -1.3e-20, where this Op and scipy.special.log_ndtr agree to 1e-14)
        np.testing.assert_allclose(rows, rows_ref, rtol=1e-5, atol=1e-10)


def test_log_ndtr_and_mills_ratio_match_scipy():
    """The censored term's log Phi and its derivative's inverse Mills ratio, across the
    erfc / log1p / asymptotic-series branches."""
    from scipy import special

    from cartfit.inference.likelihood import log_ndtr_mills

    for z in np.concatenate([np.linspace(-80, 10, 901), [-20.0, -19.999, 0.0, 1e-9]]):
        log_phi, mills = log_ndtr_mills(z)
        assert log_phi == pytest.approx(special.log_ndtr(z), rel=1e-10, abs=1e-15)
        want = np.exp(stats.norm.logpdf(z) - special.log_ndtr(z))
        assert mills == pytest.approx(want, rel=1e-9)


def test_prior_predictive_draws_censor_at_the_lloq(tiny_cohort):
    """One call draws the observations from the prior: BLQ rows at or below their LLOQ."""
    from cartfit.inference import prior_predictive

    model = get_model("predator_prey", "gompertz")
    data = prepare(tiny_cohort, model)
    prior = prior_predictive(build_model(model, data), draws=20, seed=1)
    y = prior["prior_predictive"]["y"].values.reshape(20, -1)
    blq = data.obs["blq"].to_numpy()
    assert np.all(np.isfinite(y))
    assert np.all(y[:, blq] <= data.obs["log_lloq"].to_numpy()[blq] + 1e-12)

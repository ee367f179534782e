"""Cohort-level prior overrides (``priors:`` in cohort.yaml): validated at their line, used by
the builder and recorded in the fit attributes."""

import numpy as np
import pandas as pd
import pytest

from cartfit.data import load_cohort
from cartfit.errors import CartfitError, ValidationError
from cartfit.inference import build_model, prepare
from cartfit.inference.priors import parameter_priors
from cartfit.io import write_cohort
from cartfit.models import get_model


def _cohort(tmp_path, yaml_text: str):
    obs = pd.DataFrame({
        "subject": ["W1"] * 3, "time": [0.5, 1.0, 2.0], "analyte": ["tumor"] * 3,
        "value": [1.0, 1.5, 0.5], "unit": ["cell index"] * 3, "lloq": [0.1] * 3, "blq": [0] * 3,
    })  # fmt: skip
    subjects = pd.DataFrame({"subject": ["W1"], "dose": [2500.0]})
    write_cohort(tmp_path / "c", obs, subjects)
    (tmp_path / "c" / "cohort.yaml").write_text(yaml_text)
    return tmp_path / "c"


def test_override_replaces_the_model_default_in_the_log_density(tmp_path):
    """ln r ~ N(ln 1.0, 1.5) instead of N(ln 0.03, 1.0): the non-centred z = 0 gives r = 1.0."""
    path = _cohort(tmp_path, "priors:\n  growth_rate: {median: 1.0, log_sd: 1.5}\n")
    model = get_model("predator_prey", "logistic")
    data = prepare(load_cohort(path), model)
    priors = parameter_priors(model, data)
    assert priors["growth_rate"]["median"] == 1.0 and priors["growth_rate"]["log_sd"] == 1.5
    assert priors["kill_rate"]["median"] == model.parameters[2].median  # untouched
    pm_model = build_model(model, data)
    theta_fn = pm_model.compile_fn(
        pm_model.replace_rvs_by_values([pm_model["theta"]])[0],
        inputs=pm_model.value_vars,
        on_unused_input="ignore",
    )
    point = pm_model.initial_point()
    point["z"] = np.zeros_like(point["z"])
    point["z"][0, 0] = 1.0
    assert theta_fn(point)[0, 0] == pytest.approx(1.0 * np.exp(1.5))


def test_unknown_parameter_is_refused_when_the_fit_is_built(tmp_path):
    path = _cohort(tmp_path, "priors:\n  growth_rat: {median: 1.0}\n")
    model = get_model("predator_prey", "logistic")
    with pytest.raises(CartfitError, match="growth_rat is not a parameter of predator_prey"):
        build_model(model, prepare(load_cohort(path), model))


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("priors: 3\n", 1, "priors"),
        ("name: x\npriors:\n  growth_rate: {median: -1.0}\n", 3, "priors.growth_rate.median"),
        ("priors:\n  growth_rate: {median: 1.0, sd: 2}\n", 2, "priors.growth_rate"),
    ],
)
def test_bad_priors_are_located(tmp_path, text, line, column):
    with pytest.raises(ValidationError) as err:
        load_cohort(_cohort(tmp_path, text))
    problems = err.value.problems
    assert any(
        p.file.endswith("cohort.yaml") and p.row == line and p.column == column for p in problems
    )


def test_initial_car_t_per_dose_centres_the_initial_level_on_the_dose(tmp_path):
    """``initial_car_t: {median: f, log_sd: s}``: ln C0 ~ N(ln(f dose / car_t scale), s) in
    scaled units, instead of the clinical C0_RELATIVE rule; refused without car_t data."""
    from cartfit.inference.priors import initial_state_prior

    obs = pd.DataFrame({
        "subject": ["W1", "W1", "W2", "W2"], "time": [1.0, 5.0, 1.0, 5.0],
        "analyte": ["tumor", "car_t", "tumor", "car_t"], "value": [1.0, 4000.0, 1.2, 1000.0],
        "unit": ["cell index", "cells"] * 2, "lloq": [0.1, 50.0] * 2, "blq": [0] * 4,
    })  # fmt: skip
    subjects = pd.DataFrame({"subject": ["W1", "W2"], "dose": [2500.0, 500.0]})
    write_cohort(tmp_path / "c", obs, subjects)
    (tmp_path / "c" / "cohort.yaml").write_text(
        "priors:\n  initial_car_t: {median: 0.8, log_sd: 0.3}\n"
    )
    model = get_model("predator_prey", "logistic")
    data = prepare(load_cohort(tmp_path / "c"), model)
    mean, sd = initial_state_prior(model, data)
    j = model.states.index("log_car_t")
    scale = data.scales["car_t"]  # median of the subjects' largest readings: 2500
    np.testing.assert_allclose(mean[:, j], np.log(0.8 * np.array([2500.0, 500.0]) / scale))
    np.testing.assert_allclose(sd[:, j], 0.3)

    tumour_only = _cohort(tmp_path / "t", "priors:\n  initial_car_t: {median: 1.0}\n")
    data = prepare(load_cohort(tumour_only), model)
    with pytest.raises(CartfitError, match="initial_car_t needs car_t measurements"):
        initial_state_prior(model, data)


def _costim_cohort(tmp_path, costims):
    n = len(costims)
    subs = [f"P{i}" for i in range(n)]
    obs = pd.DataFrame({
        "subject": np.repeat(subs, 2), "time": [1.0, 7.0] * n,
        "analyte": ["car_t", "tumor"] * n, "value": [100.0, 20.0] * n,
        "unit": ["copies/ug", "% blasts"] * n, "lloq": [1.0, 0.01] * n, "blq": [0] * (2 * n),
    })  # fmt: skip
    subjects = pd.DataFrame({"subject": subs, "dose": [1e8] * n, "costim": costims})
    return load_cohort(write_cohort(tmp_path / "c", obs, subjects))


@pytest.mark.parametrize(
    ("costims", "preset"), [(["CD28"], "CD28"), (["4-1BB", "4-1BB"], "4-1BB"),
                            (["CD28", "4-1BB"], "4-1BB"), (["other"], None)],
)  # fmt: skip
def test_multifate_priors_follow_the_costim_preset(tmp_path, costims, preset):
    """One domain: its preset's medians; mixed domains: the 4-1BB reference (CD28 enters as a
    covariate); no preset for the domain: the model defaults."""
    from cartfit.models.multifate_priors import COSTIM_PRESETS, PARAMETERS

    model = get_model("multifate", "gompertz")
    priors = parameter_priors(model, prepare(_costim_cohort(tmp_path, costims), model))
    defaults = {p.name: (p.median, p.log_sd) for p in PARAMETERS}
    expected = COSTIM_PRESETS[preset] if preset else {}
    for name, (median, log_sd) in (defaults | expected).items():
        assert (priors[name]["median"], priors[name]["log_sd"]) == (median, log_sd)
    assert priors["exhaustion_rate"].get("source") == (f"{preset} preset" if preset else None)


def test_multifate_population_has_subject_effects_only_where_the_data_inform_them(tmp_path):
    """Population multifate: subject effects on growth, expansion, contraction and killing;
    co-stimulation (Normal(0, 1.5)) on the preset parameters and killing only; the
    lymphodepletion column sets D directly and is not also a covariate."""
    from cartfit.inference.builder import covariate_matrix

    cohort = _costim_cohort(tmp_path, ["CD28", "4-1BB", "CD28"])
    model = get_model("multifate", "gompertz")
    data = prepare(cohort, model)
    pm_model = build_model(model, data, population=True)
    varying = list(pm_model.coords["varying_parameter"])
    assert varying == ["growth_rate", "effector_proliferation", "effector_death", "kill_rate"]
    weights = pm_model.cartfit_centring.weights.get_value()  # before the data set them
    np.testing.assert_array_equal(weights, np.tile([1.0, 1.0, 1.0, 0.0], (3, 1)))
    cov = list(pm_model.coords["covariate_parameter"])
    assert "kill_rate" in cov and "cytokine_consumption_ratio" not in cov and len(cov) == 7
    beta = pm_model["beta_costim_cd28_free"]
    assert np.all(beta.owner.inputs[-1].eval() == 1.5)  # sigma of the Normal
    data.covariates["lymphodepletion"] = [0.5, 0.9, 0.7]
    assert list(covariate_matrix(data, model).columns) == ["costim_cd28"]
    assert "lymphodepletion" in covariate_matrix(data).columns


def test_multifate_population_holds_the_cytokine_constants_at_their_prior_medians(tmp_path):
    """Population multifate: K_C, rho, tau and D are not random variables; the typical values
    ``mu`` carry their prior medians (D: the lymphodepletion column per subject in theta); a
    one-subject fit still estimates them."""
    from cartfit.models.multifate import POPULATION_FIXED

    cohort = _costim_cohort(tmp_path, ["CD28", "4-1BB", "CD28"])
    model = get_model("multifate", "gompertz")
    data = prepare(cohort, model)
    data.covariates["lymphodepletion"] = [0.5, 0.9, 0.7]
    pm_model = build_model(model, data, population=True)
    estimated = list(pm_model.coords["estimated_parameter"])
    assert not set(POPULATION_FIXED) & set(estimated)
    assert len(estimated) == model.n_params - len(POPULATION_FIXED)
    point = pm_model.initial_point()
    point["mu_free"] = point["mu_free"] + 0.3  # move every estimated typical value
    names = pm_model.replace_rvs_by_values([pm_model["mu"], pm_model["theta"]])
    fn = pm_model.compile_fn(names, inputs=pm_model.value_vars, on_unused_input="ignore")
    mu, theta = fn(point)
    priors = parameter_priors(model, data)
    for name in POPULATION_FIXED:
        j = model.parameter_names.index(name)
        assert mu[j] == pytest.approx(np.log(priors[name]["median"]))
    j = model.parameter_names.index("lymphodepletion")
    np.testing.assert_allclose(theta[:, j], [0.5, 0.9, 0.7])
    j = model.parameter_names.index("cytokine_half_saturation")
    np.testing.assert_allclose(theta[:, j], priors["cytokine_half_saturation"]["median"])
    single = build_model(model, data, population=False)
    assert "mu_free" not in single.named_vars and "estimated_parameter" not in single.coords

"""cartfit.workflow_api: the decisions the workflow's rules and scripts rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cartfit.errors import CartfitError
from cartfit.workflow_api import (
    cohort_plan,
    cohort_settings,
    coverage_summary,
    fit_units,
    recovery_table,
    sampler_settings,
    trial_settings,
)

CONFIG = {
    "models": ["predator_prey", "escape"],
    "growth_laws": ["gompertz"],
    "fit_mode": "population",
    "preset": "quick",
    "presets": {"quick": {"chains": 2, "tune": 5, "draws": 5, "target_accept": 0.9},
                "full": {"chains": 4, "tune": 50, "draws": 50, "target_accept": 0.95}},
    "seed": 11,
    "likelihood": "lognormal",
    "trials": {"subjects": 30, "scenarios": [{"name": "as-observed"},
                                              {"name": "CD28", "costim": "CD28"}]},
    "cohort_overrides": {"wells": {"models": ["predator_prey"], "fit_mode": "subjects"}},
}


def _subjects(folder: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subjects.csv").write_text("subject,dose\n" + "".join(f"{i},1\n" for i in ids))
    return folder


def test_cohort_settings_apply_overrides_and_drop_trials_without_population():
    plain = cohort_settings(CONFIG, "example")
    assert plain["models"] == ["predator_prey", "escape"] and len(plain["scenarios"]) == 2
    wells = cohort_settings(CONFIG, "wells")
    assert wells["models"] == ["predator_prey"] and wells["fit_mode"] == "subjects"
    assert wells["scenarios"] == []  # trials need a population posterior


def test_trial_contrasts_need_two_known_scenarios():
    config = {**CONFIG, "trials": {**CONFIG["trials"],
                                   "contrasts": [{"arm": "CD28", "reference": "as-observed"}]}}
    assert cohort_settings(config, "example")["contrasts"] == ["CD28_vs_as-observed"]
    assert cohort_settings(config, "wells")["contrasts"] == []  # no trials per subject
    for entry, message in (({"arm": "CD28", "reference": "4-1BB"}, r"contrasts\[0\]\.reference"),
                           ({"arm": "CD28", "reference": "CD28"}, "against itself")):
        bad = {**CONFIG, "trials": {**CONFIG["trials"], "contrasts": [entry]}}
        with pytest.raises(CartfitError, match=message):
            cohort_settings(bad, "example")


def test_cohort_settings_refuse_an_override_of_other_keys():
    bad = {**CONFIG, "cohort_overrides": {"x": {"seed": 3}}}
    with pytest.raises(CartfitError, match="cohort_overrides.x.seed"):
        cohort_settings(bad, "x")


def test_fit_units_population_subjects_and_unreadable(tmp_path: Path):
    assert fit_units("population", tmp_path / "nothing") == ["population"]
    folder = _subjects(tmp_path / "c", ["S02", "S01", "S02"])
    assert fit_units("subjects", folder) == ["S01", "S02"]
    assert fit_units("subjects", tmp_path / "missing") == []  # the validate job reports it
    clash = _subjects(tmp_path / "d", ["population", "S1"])
    with pytest.raises(CartfitError, match="population"):
        fit_units("subjects", clash)


def test_cohort_plan_lists_wildcard_values(tmp_path: Path):
    _subjects(tmp_path / "wells", ["W1", "W2"])
    plan = cohort_plan(CONFIG, "wells", tmp_path)
    assert plan["unit"] == ["W1", "W2"] and plan["population"] == [] and plan["scenario"] == []
    plan = cohort_plan(CONFIG, "example", tmp_path)
    assert plan["unit"] == ["population"] and plan["scenario"] == ["as-observed", "CD28"]
    assert plan["growth"] == ["gompertz"]


def test_cohort_plan_lists_costim_growth_laws_for_mixed_multifate_populations(tmp_path: Path):
    """Contrasts need a multifate population fit of a cohort with CD28 and 4-1BB subjects."""
    config = {**CONFIG, "models": ["predator_prey", "multifate"],
              "growth_laws": ["gompertz", "logistic"]}  # fmt: skip
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "subjects.csv").write_text("subject,dose,costim\nA,1,CD28\nB,1,4-1BB\n")
    assert cohort_plan(config, "mixed", tmp_path)["costim"] == ["gompertz", "logistic"]
    (folder / "subjects.csv").write_text("subject,dose,costim\nA,1,CD28\nB,1,CD28\n")
    assert cohort_plan(config, "mixed", tmp_path)["costim"] == []
    (folder / "subjects.csv").write_text("subject,dose,costim\nA,1,CD28\nB,1,4-1BB\n")
    assert cohort_plan(CONFIG, "mixed", tmp_path)["costim"] == []  # no multifate fit
    per_subject = {**config, "fit_mode": "subjects"}
    assert cohort_plan(per_subject, "mixed", tmp_path)["costim"] == []


def test_sampler_and_trial_settings():
    assert sampler_settings(CONFIG) == {"chains": 2, "tune": 5, "draws": 5, "target_accept": 0.9,
                                        "seed": 11, "likelihood": "lognormal"}
    assert sampler_settings({**CONFIG, "preset": "full"})["draws"] == 50
    # a model's own settings replace the preset's for its fits only
    config = {**CONFIG, "model_sampler": {"escape": {"max_treedepth": 7, "large_cohort": True}}}
    escape = sampler_settings(config, "escape")
    assert escape == {**sampler_settings(CONFIG), "max_treedepth": 7, "large_cohort": True}
    assert sampler_settings(config, "predator_prey") == sampler_settings(CONFIG)
    assert sampler_settings({**config, "preset": "full"}, "escape")["draws"] == 50
    # a model with one growth law: over the model's own settings, for that law only
    config["model_sampler"]["escape/logistic"] = {"max_treedepth": 8, "draws": 20}
    logistic = sampler_settings(config, "escape", "logistic")
    assert logistic == {**escape, "max_treedepth": 8, "draws": 20}
    assert sampler_settings(config, "escape", "gompertz") == escape
    assert sampler_settings(config, "predator_prey", "logistic") == sampler_settings(CONFIG)
    # a model's own settings raise the preset's effort and never lower it (preset=full keeps
    # its 50 draws and target accept 0.95 where the quick-minded override asks for less)
    config["model_sampler"]["escape/logistic"] |= {"target_accept": 0.9, "chains": 8}
    full = sampler_settings({**config, "preset": "full"}, "escape", "logistic")
    assert (full["draws"], full["target_accept"], full["chains"]) == (50, 0.95, 8)
    assert full["max_treedepth"] == 8 and full["large_cohort"] is True
    trial = trial_settings(CONFIG, "example", "CD28")
    assert trial == {"scenario": {"name": "CD28", "costim": "CD28"}, "n_subjects": 30,
                     "n_draws": None, "per_draw": None, "seed": 11}  # fmt: skip
    with_draws = {**CONFIG, "trials": {**CONFIG["trials"], "draws": 10, "per_draw": 8}}
    trial = trial_settings(with_draws, "example", "CD28")
    assert (trial["n_draws"], trial["per_draw"]) == (10, 8)
    with pytest.raises(CartfitError, match="no trial scenario 'x'"):
        trial_settings(CONFIG, "example", "x")


SCRIPT = """
import sys
from cartfit.errors import CartfitError
from cartfit.workflow_api import logged
with logged(sys.argv[1]):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    if sys.argv[2] == "user":
        raise CartfitError("data/x/observations.csv:3:value: -1 is negative")
    if sys.argv[2] == "bug":
        raise KeyError("oops")
print("after the block")
"""


@pytest.mark.parametrize(("mode", "code", "expected"), [
    ("ok", 0, "to stderr"),
    ("user", 2, "error: data/x/observations.csv:3:value: -1 is negative"),
    ("bug", 1, "KeyError: 'oops'"),
])
def test_logged_sends_output_and_errors_to_the_log(tmp_path: Path, mode, code, expected):
    log = tmp_path / "logs" / "step.log"
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode], capture_output=True,
                         text=True, check=False)
    assert run.returncode == code
    text = log.read_text()
    assert "to stdout" in text and expected in text
    assert ("Traceback" in text) == (mode == "bug")  # user errors carry no traceback
    assert "to stdout" not in run.stdout  # nothing leaks to the console while logged
    assert ("after the block" in run.stdout) == (mode == "ok")


def test_recovery_and_coverage(tmp_path: Path):
    cohort = tmp_path / "sim"
    cohort.mkdir()
    pd.DataFrame({"subject": ["S1", "S2"], "cmax": [10.0, 50.0], "tmax": [5.0, None],
                  "other": [1, 2]}).to_csv(cohort / "truth.csv", index=False)
    exposure = tmp_path / "exposure.csv"
    pd.DataFrame({
        "subject": ["S1", "S2", "S1", "S2"], "metric": ["cmax", "cmax", "tmax", "tmax"],
        "mean": [11, 20, 5, 6], "median": [11, 20, 5, 6], "q05": [8, 15, 4, 5],
        "q95": [14, 25, 6, 7], "unit": ["u", "u", "day", "day"],
    }).to_csv(exposure, index=False)
    table = recovery_table(exposure, cohort)
    assert list(table["covered"]) == [True, False, True]  # S2 cmax 50 outside 15-25; no S2 tmax
    path = tmp_path / "recovery.csv"
    table.to_csv(path, index=False)
    summary = coverage_summary([path, path]).set_index("metric")
    assert summary.loc["cmax", "n"] == 4 and summary.loc["cmax", "covered"] == 2
    assert summary.loc["cmax", "lower"] < 0.5 < summary.loc["cmax", "upper"]
    assert summary.loc["tmax", "coverage"] == 1.0 and summary.loc["tmax", "upper"] <= 1.0


def test_recovery_needs_truth(tmp_path: Path):
    with pytest.raises(CartfitError, match="truth.csv"):
        recovery_table(tmp_path / "exposure.csv", tmp_path)

"""The workflow's config schema: defaults, every key described, bad configs named and refused."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from wfhelpers import REPO, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "workflow" / "config" / "config.yaml").read_text())


def checked(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def test_shipped_config_is_valid_and_complete():
    config = checked(DEFAULT)
    assert config["cohorts"] == ["example"]
    assert config["presets"]["quick"]["target_accept"] == 0.98
    assert config["presets"]["quick"]["max_treedepth"] == 6
    assert config["presets"]["full"]["max_treedepth"] == 10  # default filled in
    assert config["presets"]["quick"]["large_cohort"] is None  # geometry chosen by cohort size
    assert config["model_sampler"]["escape"] == {"large_cohort": True, "max_treedepth": 7}
    # the exponential fit runs at the preset (its depth-8 settings put make run over 15 min)
    assert "predator_prey/exponential" not in config["model_sampler"]
    assert config["model_sampler"]["predator_prey/gompertz"] == {"target_accept": 0.99,
                                                                 "draws": 1500}  # fmt: skip
    assert config["exposure"]["window"] == 28


def test_defaults_fill_a_minimal_config():
    config = checked({"cohorts": ["example"]})
    assert config["models"] and config["growth_laws"] == ["exponential", "logistic", "gompertz"]
    assert config["fit_mode"] == "population" and config["preset"] == "quick"
    assert config["presets"]["full"]["draws"] >= config["presets"]["quick"]["draws"]
    assert config["relapse"]["horizons"] == [90, 180, 365]
    assert config["trials"]["scenarios"][0]["name"] == "as-observed"
    assert config["validation"]["replicates"] >= 1


def _described(node: dict, where: str, defs: dict) -> list[str]:
    missing = []
    for key, sub in node.get("properties", {}).items():
        target = defs.get(sub.get("$ref", "").rsplit("/", 1)[-1], {}) if "$ref" in sub else sub
        if "description" not in sub and "description" not in target:
            missing.append(f"{where}{key}")
        missing += _described(target, f"{where}{key}.", defs)
    return missing


def test_every_key_is_described():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert _described(schema, "", schema["$defs"]) == []


BAD = [
    (
        {
            "presets": {
                "quick": {"chains": 0, "tune": 10, "draws": 10},
                "full": {"chains": 4, "tune": 10, "draws": 10},
            }
        },
        "chains",
        "minimum of 1",
    ),
    ({"models": ["predator_prey", "lotka"]}, "lotka", "is not one of"),
    ({"growth_laws": []}, "growth_laws", "non-empty"),
    ({"cohorts": ["../etc"]}, "cohorts", "does not match"),
    ({"exposure": {"window": 0}}, "window", "minimum of 0"),
    ({"relapse": {"horizons": [0, 90]}}, "horizons", "minimum of 1"),
    ({"fit_mode": "pooled"}, "fit_mode", "is not one of"),
    ({"preset": "fast"}, "preset", "is not one of"),
    ({"seed": -1}, "seed", "minimum of 0"),
    ({"trials": {"scenarios": [{"name": "low_dose"}]}}, "name", "does not match"),
    ({"trials": {"scenarios": [{"name": "x", "costim": "CD3"}]}}, "costim", "is not one of"),
    ({"cohort_overrides": {"carrgo": {"seed": 1}}}, "seed", "unexpected"),
    ({"sampler": {"chains": 4}}, "sampler", "unexpected"),
    ({"model_sampler": {"lotka": {"max_treedepth": 7}}}, "lotka", "does not match"),
    ({"model_sampler": {"escape/linear": {"max_treedepth": 7}}}, "escape/linear", "does not match"),
    ({"model_sampler": {"escape": {"depth": 7}}}, "depth", "unexpected"),
    ({"model_sampler": {"escape": {"max_treedepth": 20}}}, "max_treedepth", "maximum of 15"),
    (
        {
            "presets": {
                "quick": {"chains": 4, "tune": 10, "draws": 10, "large_cohort": "yes"},
                "full": {"chains": 4, "tune": 10, "draws": 10},
            }
        },
        "large_cohort",
        "is not of type",
    ),
]


@pytest.mark.parametrize(("change", "key", "reason"), BAD, ids=[b[1] for b in BAD])
def test_bad_config_names_key_and_reason(change, key, reason):
    with pytest.raises(WorkflowError) as err:
        checked({**DEFAULT, **change})
    message = str(err.value)
    assert key in message and reason in message, message


def test_bad_config_stops_the_run_before_any_job(workflow_copy: Path):
    bad = workflow_copy / "bad.yaml"
    bad.write_text(
        "presets:\n  quick: {chains: 0, tune: 10, draws: 10}\n"
        "  full: {chains: 4, tune: 10, draws: 10}\n"
    )
    run = snakemake(workflow_copy, "--cores", "1", "--configfile", str(bad))
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "['presets']['quick']['chains']" in out and "0 is less than the minimum of 1" in out
    assert not (workflow_copy / "results").exists()

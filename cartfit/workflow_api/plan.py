"""What the workflow runs for a cohort: its settings, fitted units and wildcard values."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cartfit.errors import CartfitError

#: the fitted unit of a population fit (any other unit is a subject id)
POPULATION = "population"
#: keys of the config that ``cohort_overrides`` may replace for one cohort
OVERRIDABLE = ("models", "growth_laws", "model_growth_laws", "fit_mode", "scenarios")

def cohort_settings(config: Mapping[str, Any], cohort: str) -> dict[str, Any]:
    """Models, growth laws, fit mode and trial scenarios that apply to ``cohort``.

    The top-level keys of the (validated) config, with ``cohort_overrides[cohort]`` replacing
    any of :data:`OVERRIDABLE`; ``scenarios`` defaults to ``config["trials"]["scenarios"]``.
    Trials need a population posterior, so a cohort fitted per subject has no scenarios.
    """
    settings = {
        "models": list(config["models"]),
        "growth_laws": list(config["growth_laws"]),
        "model_growth_laws": dict(config.get("model_growth_laws", {})),
        "fit_mode": config["fit_mode"],
        "scenarios": list(config.get("trials", {}).get("scenarios", [])),
    }
    for key, value in config.get("cohort_overrides", {}).get(cohort, {}).items():
        if key not in OVERRIDABLE:
            raise CartfitError(
                f"config: cohort_overrides.{cohort}.{key}: cannot be overridden per cohort "
                f"(expected one of {', '.join(OVERRIDABLE)})"
            )
        settings[key] = list(value) if isinstance(value, list) else value
    settings["fits"] = [
        (model, growth)
        for model in settings["models"]
        for growth in settings["model_growth_laws"].get(model, settings["growth_laws"])
    ]
    if settings["fit_mode"] != POPULATION:
        settings["scenarios"] = []
    settings["contrasts"] = trial_contrasts(config, [s["name"] for s in settings["scenarios"]])
    return settings


def trial_contrasts(config: Mapping[str, Any], scenarios: list[str]) -> list[str]:
    """The paired contrasts ``<arm>_vs_<reference>`` of ``config["trials"]["contrasts"]``
    whose two arms are among a cohort's ``scenarios``. A contrast naming a scenario that the
    run's ``trials.scenarios`` lacks is an error (caught before any job runs)."""
    trials = config.get("trials", {})
    known = {s["name"] for s in trials.get("scenarios", [])}
    out = []
    for k, entry in enumerate(trials.get("contrasts", [])):
        for role in ("arm", "reference"):
            if entry[role] not in known:
                raise CartfitError(f"config: trials.contrasts[{k}].{role}: {entry[role]!r} "
                                   f"is not a trial scenario (scenarios: {sorted(known)})")
        if entry["arm"] == entry["reference"]:
            raise CartfitError(f"config: trials.contrasts[{k}]: an arm against itself")
        if entry["arm"] in scenarios and entry["reference"] in scenarios:
            out.append(f"{entry['arm']}_vs_{entry['reference']}")
    return out


def cohort_plan(
    config: Mapping[str, Any], cohort: str, data_dir: str | os.PathLike[str] = "data"
) -> dict[str, Any]:
    """Wildcard values of one cohort's jobs: ``model``, ``growth``, ``unit``, ``scenario``.

    Lists for :func:`snakemake.io.expand` (``population`` is ``["population"]`` or empty;
    ``model_comparison`` is ``["models"]`` when several models are fitted, else empty), the
    fitted ``(model, growth)`` pairs as ``fits`` (each model with its ``model_growth_laws``
    or else every growth law), plus the cohort's ``fit_mode``. Units are read by
    :func:`fit_units` from ``data_dir/cohort``. ``costim`` lists the growth laws of the
    multifate population fits whose CD28 − 4-1BB contrasts the run computes: only when the
    cohort's subjects.csv has both domains (:func:`costim_domains`).
    """
    settings = cohort_settings(config, cohort)
    both = {"CD28", "4-1BB"} <= costim_domains(Path(data_dir) / cohort / "subjects.csv")
    population = settings["fit_mode"] == POPULATION
    return {
        "costim": [g for m, g in settings["fits"] if m == "multifate"] if population and both
        else [],  # fmt: skip
        "model": settings["models"],
        "growth": list(dict.fromkeys(g for _, g in settings["fits"])),
        "fits": settings["fits"],
        "model_comparison": ["models"] if len(settings["models"]) > 1 else [],
        "unit": fit_units(settings["fit_mode"], Path(data_dir) / cohort),
        "scenario": [s["name"] for s in settings["scenarios"]],
        "contrast": settings["contrasts"],
        "population": [POPULATION] if settings["fit_mode"] == POPULATION else [],
        "fit_mode": settings["fit_mode"],
    }


def trial_settings(config: Mapping[str, Any], cohort: str, scenario: str) -> dict[str, Any]:
    """The trial scenario called ``scenario`` of a cohort, with the run's size and seed.

    Returns ``{"scenario": {...}, "n_subjects": int, "n_draws": int | None, "per_draw":
    int | None, "seed": int}`` (``None``: the defaults of :func:`cartfit.analysis.virtual_trial`).
    """
    for entry in cohort_settings(config, cohort)["scenarios"]:
        if entry["name"] == scenario:
            trials = config.get("trials", {})
            return {"scenario": dict(entry), "n_subjects": int(trials.get("subjects", 200)),
                    "n_draws": trials.get("draws"), "per_draw": trials.get("per_draw"),
                    "seed": int(config["seed"])}
    raise CartfitError(f"config: cohort {cohort!r} has no trial scenario {scenario!r}")


#: sampler settings where more is more careful: a model's own value raises the preset's and
#: never lowers it, so that e.g. ``preset=full`` keeps its draws and tree depth for every fit
EFFORT = ("chains", "tune", "draws", "max_treedepth", "target_accept")


def sampler_settings(
    config: Mapping[str, Any], model: str | None = None, growth: str | None = None
) -> dict[str, Any]:
    """The sampler settings of the chosen ``preset``, with ``model_sampler[model]`` over them
    when ``model`` is given and ``model_sampler["model/growth"]`` over those when ``growth`` is
    too, and the run's ``seed`` and ``likelihood``.

    A model's own :data:`EFFORT` settings take the larger of its value and the preset's (where
    the preset states one); its other settings (``large_cohort``) replace the preset's."""
    preset = dict(config["presets"][config["preset"]])
    own = config.get("model_sampler", {})
    keys = [model] if model is not None else []
    if model is not None and growth is not None:
        keys.append(f"{model}/{growth}")
    for key in keys:
        for name, value in own.get(key, {}).items():
            raise_only = name in EFFORT and name in preset
            preset[name] = max(preset[name], value) if raise_only else value
    preset.update(seed=int(config["seed"]), likelihood=config["likelihood"])
    return preset


def costim_domains(path: Path) -> set[str]:
    """The values of a subjects.csv's ``costim`` column (empty without the file or column)."""
    return set(_column(path, "costim"))


def _column(path: Path, name: str) -> list[str]:
    """The non-empty cells of column ``name`` of a subjects.csv, read without validating
    anything else (empty when the file or the column is missing or unreadable)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [row[name].strip() for row in csv.DictReader(f) if row.get(name)]
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return []


def fit_units(fit_mode: str, cohort_dir: str | os.PathLike[str]) -> list[str]:
    """The units fitted for a cohort: ``["population"]``, or every subject id (sorted).

    Subject ids are read from ``subjects.csv`` without validation (the workflow's validate job
    reports problems); an unreadable file gives no unit, so the run stops at that job.

    Raises
    ------
    CartfitError
        In subjects mode, when a subject is called ``population`` (the name of the other mode).
    """
    if fit_mode == POPULATION:
        return [POPULATION]
    ids = sorted(set(_column(Path(cohort_dir) / "subjects.csv", "subject")))
    if POPULATION in ids:
        raise CartfitError(
            f"{cohort_dir}/subjects.csv: a subject is called {POPULATION!r}, which names the "
            "population fit in result files; rename it to fit subjects one by one"
        )
    return ids

r"""``cartfit simulate``: a clinical-style virtual cohort with known truth.

The folder written by :func:`simulate_cohort` is a valid cohort (DESIGN.md section 2) plus

* ``truth.csv`` — one row per subject: true parameters in scaled units (``scaled_<name>``) and
  measured units (``measured_<name>``), true log states at infusion (``init_<state>``, scaled
  units), true levels at infusion in measured units (``<analyte>_day0``), the noise-free
  exposure metrics of :func:`cartfit.analysis.metrics.exposure_metrics`, whether the product
  is in the low-fitness class (``low_fitness``), the true (noise-free, continuous time) and the
  observed (at visits) response and relapse, and for the escape model the antigen-negative cells
  present at infusion (``antigen_neg_cells_day0``) and the day a clone was established
  (``escape_day``, negative if before infusion);
* ``truth.yaml`` — the scales between scaled and measured units, the population model
  (typical values, between-subject SDs, costim effects), the assays and the schedule;
* ``README.md`` — what the cohort is, the exact command that regenerates it, and its content.

Subjects are simulated independently by :func:`cartfit.simulate.subject.simulate_subject`
with one child of ``numpy.random.SeedSequence(seed)`` each, so the same seed gives
byte-identical files and subject ``i`` is the same in cohorts of any size.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cartfit import __version__
from cartfit.data.schema import FRACTION_ANALYTES
from cartfit.errors import CartfitError
from cartfit.io import atomic_path, write_cohort
from cartfit.models import get_model
from cartfit.simulate.design import CohortDesign
from cartfit.simulate.population import PopulationSpec
from cartfit.simulate.readme import cohort_readme
from cartfit.simulate.schedule import VisitSchedule
from cartfit.simulate.subject import simulate_subject
from cartfit.simulate.typical_values import population_for

FLOAT_FORMAT = "%.10g"


def simulate_tables(
    model: str,
    growth: str,
    n_subjects: int,
    seed: int,
    design: CohortDesign | None = None,
    population: PopulationSpec | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Observations, subjects and truth tables of a virtual cohort (nothing is written).

    ``population`` replaces the registry's spec (:func:`population_for`), e.g. with
    ``dataclasses.replace(spec, costim_effect={})`` for a cohort without a co-stimulation
    difference; its parameter names must be the model's.

    Raises
    ------
    CartfitError
        For an unknown model or growth law, no population for it, ``n_subjects < 1`` or a
        negative seed.
    """
    if n_subjects < 1:
        raise CartfitError(f"--subjects {n_subjects}: expected at least 1 subject")
    if seed < 0:
        raise CartfitError(f"--seed {seed}: expected a seed >= 0")
    try:
        ode = get_model(model, growth)
        spec = population_for(ode) if population is None else population
    except ValueError as err:
        raise CartfitError(f"cartfit simulate: {err}") from None
    if set(spec.typical) != set(ode.parameter_names):
        raise CartfitError(f"cartfit simulate: the population's parameters differ from those "
                           f"of {model} with {growth}")  # fmt: skip
    design = design or CohortDesign()
    width = max(2, len(str(n_subjects)))
    children = np.random.SeedSequence(seed).spawn(n_subjects)
    subjects = [
        simulate_subject(ode, spec, design, f"S{i + 1:0{width}d}", i, child)
        for i, child in enumerate(children)
    ]
    observations = pd.concat([s.observations for s in subjects], ignore_index=True)
    return (
        observations,
        pd.DataFrame([s.subject for s in subjects]),
        pd.DataFrame([s.truth for s in subjects]),
    )


def command_line(
    model: str, growth: str, n_subjects: int, seed: int, out: Path, phenotype_days=()
) -> str:
    """The ``cartfit simulate`` command that writes this cohort."""
    days = ",".join(f"{d:g}" for d in phenotype_days)
    return (
        f"cartfit simulate --model {model} --growth {growth} --subjects {n_subjects} "
        f"--seed {seed}"
        + (f" --phenotype-days {days}" if days else "")
        + f" --out {Path(out).as_posix()}"
    )


def _design(model: str, growth: str, phenotype_days) -> CohortDesign:
    """The default design, with CAR T phenotyped at ``phenotype_days`` (a model with the
    phenotype observables only, i.e. multifate)."""
    if not phenotype_days:
        return CohortDesign()
    if not set(FRACTION_ANALYTES) <= set(get_model(model, growth).observables):
        raise CartfitError(
            f"--phenotype-days: model {model} has no CAR T phenotypes (only multifate has)"
        )
    try:
        schedule = VisitSchedule(phenotype_days=tuple(sorted(phenotype_days)))
    except ValueError:
        days = VisitSchedule().days
        raise CartfitError(
            f"--phenotype-days {','.join(f'{d:g}' for d in phenotype_days)}: expected visit "
            f"days of the schedule ({', '.join(f'{d:g}' for d in days if d > 0)})"
        ) from None
    return CohortDesign(schedule=schedule)


def _truth_yaml(
    model: str, growth: str, design: CohortDesign, command: str, analytes: set[str]
) -> dict[str, Any]:
    """truth.yaml: the command, scales, population model, the assays of ``analytes`` (those
    in the cohort), the schedule and the design."""
    spec = population_for(get_model(model, growth))
    return {
        "command": command,
        "cartfit_version": __version__,
        "model": model,
        "growth": growth,
        "scales": {
            "car_t": {"unit": design.assays["car_t"].unit, "per_scaled_unit": design.car_t_scale},
            "tumor": {"unit": design.assays["tumor"].unit, "per_scaled_unit": design.tumor_scale},
            "rule": "measured = scaled * car_t_scale**a * tumor_scale**b, (a, b) from dims",
        },
        "population": {
            "typical_4-1BB": dict(spec.typical),
            "omega": dict(spec.omega),
            "costim_effect": {c: dict(e) for c, e in spec.costim_effect.items()},
            "dims": {k: list(v) for k, v in spec.dims.items()},
            "low_fitness_fraction": spec.low_fitness_fraction,
            "low_fitness_effect": dict(spec.low_fitness_effect),
        },
        "assays": {k: asdict(a) for k, a in design.assays.items() if k in analytes},
        "schedule": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(design.schedule).items()
        },
        "design": {
            "dose_range": list(design.dose_range),
            "car_t_per_cell_infused": design.car_t_per_cell_infused,
            "relapse_threshold": design.relapse_threshold,
            "response_day": design.response_day,
            "antigen_neg_fraction": design.antigen_neg_fraction,
            "clone_birth_rate": design.clone_birth_rate,
            "established_cells": design.established_cells,
            "clone_history_days": design.clone_history_days,
        },
    }


def simulate_cohort(
    model: str, growth: str, n_subjects: int, seed: int, out: Path, phenotype_days=()
) -> Path:
    """Simulate a clinical-style cohort with known truth and write it to ``out``.

    Parameters
    ----------
    model
        Model name (``predator_prey``, ``escape``, ``multifate``).
    growth
        Tumour growth law (``exponential``, ``logistic``, ``gompertz``).
    n_subjects
        Number of virtual subjects (>= 1).
    seed
        Seed of all random draws (>= 0); the same seed gives byte-identical files.
    out
        Cohort folder to create or replace (atomically: a failure leaves it untouched).
    phenotype_days
        Visit days at which blood CAR T is phenotyped (memory and exhausted fractions by flow;
        multi-fate model only); none by default.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    out = Path(out)
    design = _design(model, growth, phenotype_days)
    observations, subjects, truth = simulate_tables(model, growth, n_subjects, seed, design)
    command = command_line(model, growth, n_subjects, seed, out, design.schedule.phenotype_days)
    meta = {
        "name": out.name,
        "description": (
            f"Simulated virtual cohort: {n_subjects} {design.disease} subjects treated with CD19 "
            f"CAR T (4-1BB and CD28 products), model {model} with {growth} tumour growth. "
            "Not patient data."
        ),
        "source": command,
        "license": "CC0-1.0 (simulated data)",
        "notes": (
            f"Simulated with cartfit {__version__}: {command}. True parameters and noise-free "
            "exposure metrics are in truth.csv; scales and the population model in truth.yaml."
        ),
        "car_t_cells_per_unit": design.car_t_cells_per_unit,
        "tumor_cells_per_unit": design.tumor_cells_per_unit,
        "relapse_threshold": design.relapse_threshold,
    }
    observations = _tidy(observations)
    with atomic_path(out) as tmp:
        write_cohort(tmp, observations, subjects, meta)
        truth.to_csv(tmp / "truth.csv", index=False, float_format=FLOAT_FORMAT)
        (tmp / "truth.yaml").write_text(
            yaml.safe_dump(
                _truth_yaml(model, growth, design, command, set(observations["analyte"])),
                sort_keys=False,
                allow_unicode=True,
                width=100,
            ),
            encoding="utf-8",
        )
        (tmp / "README.md").write_text(
            cohort_readme(command, model, growth, seed, design, observations, subjects),
            encoding="utf-8",
        )
    return out


def _tidy(observations: pd.DataFrame) -> pd.DataFrame:
    """Contract column order; values are already rounded by the assay."""
    return observations[["subject", "time", "analyte", "value", "unit", "lloq", "blq"]]


__all__ = ["command_line", "simulate_cohort", "simulate_tables"]

# Settings and input functions shared by the rule files. The decisions behind them (which
# settings apply to a cohort, which units are fitted) are cartfit.workflow_api functions.
import os
import re

from cartfit.workflow_api import cohort_plan, sampler_settings, trial_settings

# Sampler settings of the chosen preset, with the run's seed and likelihood.
SAMPLER = sampler_settings(config)

# Every rule's software when Snakemake manages it (--sdm conda); otherwise the rules run in
# the Python environment that runs Snakemake.
CONDA_ENV = "../envs/cartfit.yaml"


wildcard_constraints:
    cohort=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    model=r"predator_prey|multifate|escape",
    growth=r"exponential|logistic|gompertz",
    unit=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    scenario=r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}",
    arm=r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}",
    reference=r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}",


def plan(cohort):
    """Wildcard values of a cohort: model, growth, unit, scenario (and its fit_mode)."""
    return cohort_plan(config, cohort, "data")


def over(*patterns, needs=None):
    """Input function: each pattern with the job's wildcards filled in and expanded over the
    cohort's values of its other wildcards (none when the cohort's plan has no `needs`, e.g.
    no population fit or no trial scenario). Model and growth law run over the fitted
    (model, growth) pairs that agree with the job's wildcards."""

    def files(wildcards):
        values = plan(wildcards.cohort)
        if needs is not None and not values[needs]:
            return []
        fixed = dict(wildcards.items())
        pairs = [
            {"model": m, "growth": g}
            for m, g in values["fits"]
            if fixed.get("model", m) == m and fixed.get("growth", g) == g
        ]
        out = []
        for pattern in patterns:
            free = (
                set(re.findall(r"{(\w+)}", pattern)) - set(fixed) - {"model", "growth"}
            )
            for pair in pairs:
                out += expand(pattern, **(fixed | pair), **{k: values[k] for k in free})
        return list(dict.fromkeys(out))

    return files


def combine(*functions):
    """Input function: the files of several input functions, in order."""
    return lambda wildcards: [f for function in functions for f in function(wildcards)]


def cohort_files(wildcards):
    """The cohort's data files that exist (validation reports the missing ones)."""
    names = ("observations.csv", "subjects.csv", "cohort.yaml")
    files = [f"data/{wildcards.cohort}/{name}" for name in names]
    return [f for f in files if os.path.isfile(f)]


def published_outputs(wildcards):
    """The published comparison of a cohort, when its folder holds the authors' estimates."""
    source = f"data/{wildcards.cohort}/published_fit_parameters.csv"
    if not os.path.isfile(source) or plan(wildcards.cohort)["population"]:
        return []
    return [
        f"results/{wildcards.cohort}/published/comparison.csv",
        f"results/{wildcards.cohort}/figures/published_comparison.png",
    ]


def costim_outputs(wildcards):
    """The co-stimulation tables and figure of each multifate population fit of a cohort
    with CD28 and 4-1BB subjects (none otherwise)."""
    out = []
    for growth in plan(wildcards.cohort)["costim"]:
        stem = f"results/{wildcards.cohort}/costim/multifate_{growth}"
        out += [f"{stem}.csv", f"{stem}_homeostatic.csv", f"{stem}_rechallenge.csv"]
        out.append(f"results/{wildcards.cohort}/figures/costim_multifate_{growth}.png")
    return out

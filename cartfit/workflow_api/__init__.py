"""Thin functions behind the Snakemake workflow (``Snakefile``, ``workflow/``).

The workflow's rule files only declare files; its scripts call one function each. The few
decisions the workflow needs (which settings apply to a cohort, which units are fitted, how a
script's output reaches its log) live here, where they are unit-tested.
"""

from cartfit.workflow_api.plan import (
    OVERRIDABLE,
    POPULATION,
    cohort_plan,
    cohort_settings,
    fit_units,
    sampler_settings,
    trial_settings,
)
from cartfit.workflow_api.recovery import coverage_summary, recovery_table
from cartfit.workflow_api.steps import (
    compile_unit,
    fit_unit,
    logged,
    trial_scenario,
    validate_cohort,
)

__all__ = [
    # what runs for a cohort
    "OVERRIDABLE",
    "POPULATION",
    "cohort_plan",
    "cohort_settings",
    "fit_units",
    "sampler_settings",
    "trial_settings",
    # what the scripts call
    "fit_unit",
    "logged",
    "trial_scenario",
    "compile_unit",
    "validate_cohort",
    # validation targets
    "coverage_summary",
    "recovery_table",
]

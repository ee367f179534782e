"""Static checks of the workflow: lint, format, and the jobs a run plans (dry runs only)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from wfhelpers import REPO, TEST_CONFIG, job_counts, snakemake

from cartfit.workflow_api import cohort_plan

SUBJECTS = ["S01", "S02", "S03"]


def _tiny_cohort(workdir: Path, subjects=SUBJECTS) -> None:
    """A cohort folder with just enough for planning: subjects.csv (ids are read at parse time)."""
    folder = workdir / "data" / "tiny"
    folder.mkdir(parents=True)
    (folder / "subjects.csv").write_text("subject,dose\n" + "".join(f"{s},1e8\n" for s in subjects))
    (folder / "observations.csv").write_text("subject,time,analyte,value,unit\n")


def test_snakemake_lint_is_clean():
    run = snakemake(REPO, "--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Lints for" not in run.stdout + run.stderr


def test_snakefmt_check_passes():
    files = [str(REPO / "Snakefile"), str(REPO / "workflow" / "rules")]
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_default_run_plans_every_model_and_growth_law(workflow_copy: Path):
    run = snakemake(workflow_copy, "-n", "--cores", "2")
    assert run.returncode == 0, run.stderr
    config = yaml.safe_load((REPO / "workflow" / "config" / "config.yaml").read_text())
    n_fits = len(cohort_plan(config, "example", REPO / "data")["fits"])
    counts = job_counts(run.stdout)
    assert counts["validate"] == 1 and counts["report"] == 1
    assert counts["fit"] == n_fits
    assert counts["compile"] == n_fits  # one per model structure, one unit each here
    assert counts["compare"] == len(config["models"])
    assert counts["trial"] == n_fits * len(config["trials"]["scenarios"])
    assert counts["trial_contrast"] == n_fits * len(config["trials"]["contrasts"]) > 0
    assert counts["figure_vpc"] == n_fits
    assert "results/example/report.html" in run.stdout


def test_test_config_plans_one_job_per_population_fit(workflow_copy: Path):
    _tiny_cohort(workflow_copy)
    run = snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(TEST_CONFIG))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["fit"] == 2 and counts["compare"] == 1 and counts["trial"] == 4
    assert counts["trial_contrast"] == 2 and counts["figure_contrast"] == 2
    assert counts["compile"] == 2
    assert "results/tiny/fits/predator_prey_logistic_population.nc" in run.stdout


def test_model_growth_laws_restrict_a_model_and_add_the_model_comparison(workflow_copy: Path):
    """multifate with Gompertz only next to predator-prey with two laws: three fits, their
    downstream jobs, a growth-law table per model and one table comparing all three fits."""
    _tiny_cohort(workflow_copy)
    run = snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(TEST_CONFIG),
                    "--config", "models=[predator_prey,multifate]",
                    "model_growth_laws={multifate: [gompertz]}")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    counts = job_counts(run.stdout)
    assert counts["fit"] == 3 and counts["exposure"] == 3 and counts["figure_vpc"] == 3
    assert counts["compare"] == 2 and counts["compare_models"] == 1
    assert counts["figure_compare_models"] == 1
    assert "results/tiny/fits/multifate_gompertz_population.nc" in run.stdout
    assert "multifate_logistic" not in run.stdout
    assert "results/tiny/compare/models_population.csv" in run.stdout
    assert "costim" not in counts  # the tiny cohort has no co-stimulation column


def test_mixed_costim_cohort_plans_the_multifate_contrasts(workflow_copy: Path):
    """CD28 and 4-1BB subjects with a multifate population fit: one costim job and its figure,
    and the report waits for both."""
    _tiny_cohort(workflow_copy)
    subjects = workflow_copy / "data" / "tiny" / "subjects.csv"
    rows = subjects.read_text().splitlines()
    body = [f"{row},{('CD28', '4-1BB')[i % 2]}" for i, row in enumerate(rows[1:])]
    subjects.write_text("\n".join([rows[0] + ",costim", *body]) + "\n")
    run = snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(TEST_CONFIG),
                    "--config", "models=[predator_prey,multifate]",
                    "model_growth_laws={multifate: [gompertz]}")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    counts = job_counts(run.stdout)
    assert counts["costim"] == 1 and counts["figure_costim"] == 1
    assert "results/tiny/costim/multifate_gompertz_rechallenge.csv" in run.stdout


def test_subjects_mode_plans_one_fit_per_subject_and_no_trial(workflow_copy: Path):
    _tiny_cohort(workflow_copy)
    run = snakemake(workflow_copy, "-n", "--cores", "2", "--configfile", str(TEST_CONFIG),
                    "--config", "fit_mode=subjects")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["fit"] == 2 * len(SUBJECTS)  # two growth laws
    assert counts["compile"] == 2  # a structure is compiled once for all its subjects
    assert counts["compare"] == len(SUBJECTS)  # growth laws compared per subject
    assert "trial" not in counts and "figure_vpc" not in counts
    assert counts["figure_exposure"] == 2  # all subjects of a model and growth law together
    for s in SUBJECTS:
        assert f"results/tiny/fits/predator_prey_gompertz_{s}.nc" in run.stdout


def test_several_cohorts_in_one_run(workflow_copy: Path):
    shutil.copytree(REPO / "data" / "carrgo", workflow_copy / "data" / "carrgo")
    run = snakemake(workflow_copy, "-n", "--cores", "2", "--config", "cohorts=[example,carrgo]")
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    config = yaml.safe_load((REPO / "workflow" / "config" / "config.yaml").read_text())
    wells = len((REPO / "data" / "carrgo" / "subjects.csv").read_text().splitlines()) - 1
    override = config["cohort_overrides"]["carrgo"]
    n_example = len(cohort_plan(config, "example", REPO / "data")["fits"])
    n_carrgo = len(override["models"]) * len(config["growth_laws"]) * wells
    assert counts["validate"] == 2 and counts["report"] == 2
    assert counts["fit"] == n_example + n_carrgo
    for cohort in ("example", "carrgo"):
        assert f"results/{cohort}/report.html" in run.stdout


def test_slurm_profile_maps_resources_and_plans_one_job_per_fit(workflow_copy: Path):
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    fit = profile["set-resources"]["fit"]
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(fit)
    assert fit["cpus_per_task"] == profile["set-threads"]["fit"]
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    _tiny_cohort(workflow_copy)
    run = snakemake(workflow_copy, "-n", "--profile", str(REPO / "workflow/profiles/slurm"),
                    "--configfile", str(TEST_CONFIG), "--config", "fit_mode=subjects")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Using profile" in run.stdout + run.stderr
    counts = job_counts(run.stdout)
    assert counts["fit"] == 2 * len(SUBJECTS)
    assert "group" not in (workflow_copy / "workflow" / "rules" / "fit.smk").read_text()


def test_default_profile_resumes_incomplete_runs():
    profile = yaml.safe_load(
        (REPO / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True and profile["cores"] == 2


def test_validation_targets_are_separate_from_the_default_run(workflow_copy: Path):
    settings = workflow_copy / "validation.yaml"
    settings.write_text("validation: {model: predator_prey, growth: logistic, subjects: 4, "
                        "replicates: 3}\n")
    run = snakemake(workflow_copy, "validation_all", "-n", "--cores", "2", "--configfile",
                    str(settings))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    assert counts["validation_simulate"] == counts["validation_fit"] == 3
    assert counts["validation_coverage"] == 1 and "fit" not in counts
    assert "results/validation/predator_prey_logistic/seed3/fit.nc" in run.stdout
    default = job_counts(snakemake(workflow_copy, "-n", "--cores", "2").stdout)
    assert not any(rule.startswith("validation") for rule in default)

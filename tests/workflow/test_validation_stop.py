"""A cohort that fails the data contract stops the run at its validate job, message in the log."""

from __future__ import annotations

import shutil
from pathlib import Path

from wfhelpers import REPO, TEST_CONFIG, snakemake


def test_invalid_cohort_stops_at_validate_with_the_problems_in_its_log(workflow_copy: Path):
    folder = workflow_copy / "data" / "tiny"
    shutil.copytree(REPO / "data" / "example", folder)
    obs = (folder / "observations.csv").read_text().splitlines()
    header, first = obs[0], obs[1].split(",")
    first[3] = "-5"  # a negative measurement on line 2
    (folder / "observations.csv").write_text("\n".join([header, ",".join(first), *obs[2:]]) + "\n")
    run = snakemake(workflow_copy, "--profile", "workflow/profiles/default", "--cores", "1",
                    "--configfile", str(TEST_CONFIG), timeout=300)
    assert run.returncode != 0
    log = (workflow_copy / "results" / "tiny" / "logs" / "validate.log").read_text()
    assert "observations.csv:2:value" in log, log
    assert "Traceback" not in log
    assert "Error in rule validate" in run.stdout + run.stderr
    assert not (workflow_copy / "results" / "tiny" / "validation.txt").exists()
    assert not (workflow_copy / "results" / "tiny" / "fits").exists()  # no fit was started

"""Rule validate: check a cohort folder against the data contract and write its summary."""

from cartfit.workflow_api import logged, validate_cohort

with logged(snakemake.log[0]):
    validate_cohort(snakemake.params.cohort_dir, snakemake.output.summary)

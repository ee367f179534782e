"""Rule trial_contrast: the paired difference between two scenarios of one fit."""

from cartfit.analysis.trial_contrast import trial_contrast
from cartfit.io import write_table
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    table = trial_contrast(
        snakemake.input.arm,
        snakemake.input.reference,
        n_subjects=snakemake.params.n_subjects,
        seed=snakemake.params.seed,
        arm=snakemake.wildcards.arm,
        reference=snakemake.wildcards.reference,
    )
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

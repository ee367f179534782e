"""Rule trial: one virtual-trial scenario simulated from a population posterior."""

from cartfit.workflow_api import logged, trial_scenario

with logged(snakemake.log[0]):
    trial_scenario(
        snakemake.input.fit,
        out=snakemake.output.table,
        subjects_out=snakemake.output.subjects,
        **snakemake.params.trial,
    )

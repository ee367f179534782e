"""Rule fit: one Bayesian ODE fit of one subject or of the population of a cohort."""

from cartfit.workflow_api import fit_unit, logged

with logged(snakemake.log[0]):
    fit_unit(
        snakemake.params.cohort_dir,
        model=snakemake.wildcards.model,
        growth=snakemake.wildcards.growth,
        unit=snakemake.wildcards.unit,
        out=snakemake.output.fit,
        sampler=snakemake.params.sampler,
        threads=snakemake.threads,
    )

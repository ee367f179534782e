"""Rule validation_fit: population fit of a simulated cohort."""

from cartfit.workflow_api import POPULATION, fit_unit, logged

with logged(snakemake.log[0]):
    fit_unit(
        snakemake.input.cohort,
        model=snakemake.wildcards.model,
        growth=snakemake.wildcards.growth,
        unit=POPULATION,
        out=snakemake.output.fit,
        sampler=snakemake.params.sampler,
        threads=snakemake.threads,
    )

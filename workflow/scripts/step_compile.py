"""Rule compile: a fit's log density compiled into the compile caches, one core, before the
fits (which then load it) sample on all cores."""

from cartfit.workflow_api import compile_unit, logged

with logged(snakemake.log[0]):
    compile_unit(
        snakemake.params.cohort_dir,
        model=snakemake.wildcards.model,
        growth=snakemake.wildcards.growth,
        unit=snakemake.params.unit,
        out=snakemake.output.note,
        sampler=snakemake.params.sampler,
    )

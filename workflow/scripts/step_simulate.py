"""Rule validation_simulate: a virtual cohort with known truth (truth.csv)."""

from cartfit.simulate import simulate_cohort
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    simulate_cohort(
        model=snakemake.wildcards.model,
        growth=snakemake.wildcards.growth,
        n_subjects=snakemake.params.subjects,
        seed=int(snakemake.wildcards.seed),
        out=snakemake.output.cohort,
    )

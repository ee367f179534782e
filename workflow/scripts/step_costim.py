"""Rule costim: the CD28 - 4-1BB, homeostatic-share and rechallenge tables of a multifate fit."""

from cartfit.analysis.costim_tables import write_costim_tables
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    write_costim_tables(
        snakemake.input.fit,
        snakemake.output.table,
        horizon=snakemake.params.costim["horizon"],
        rechallenge_day=snakemake.params.costim["rechallenge_day"],
        antigen=snakemake.params.costim["antigen"],
    )

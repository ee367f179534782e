"""Rule relapse: relapse and antigen-escape probabilities of one fit."""

from cartfit.analysis import relapse_table
from cartfit.io import write_table
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    table = relapse_table(snakemake.input.fit, horizons=list(snakemake.params.horizons))
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

"""Rule exposure: posterior-predictive exposure metrics of one fit."""

from cartfit.analysis import exposure_table
from cartfit.io import write_table
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    table = exposure_table(snakemake.input.fit, window=snakemake.params.window)
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

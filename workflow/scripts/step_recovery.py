"""Rule validation_recovery: true exposure metrics against their posterior intervals."""

from cartfit.io import write_table
from cartfit.workflow_api import logged, recovery_table

with logged(snakemake.log[0]):
    table = recovery_table(snakemake.input.exposure, snakemake.input.cohort)
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

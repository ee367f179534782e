"""Rule validation_coverage: interval coverage per metric over the simulated cohorts."""

from cartfit.io import write_table
from cartfit.workflow_api import coverage_summary, logged

with logged(snakemake.log[0]):
    table = coverage_summary(list(snakemake.input.tables))
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

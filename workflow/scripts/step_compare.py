"""Rule compare: PSIS-LOO comparison of the growth laws of one model on the same data."""

from cartfit.analysis import compare_fits
from cartfit.io import write_table
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    table = compare_fits(list(snakemake.input.fits))
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

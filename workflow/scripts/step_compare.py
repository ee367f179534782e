"""Rule compare: PSIS-LOO comparison of the growth laws of one model on the same data, with
exact refits (on the job's threads) for the observations whose Pareto k is bad."""

from cartfit.analysis import compare_fits
from cartfit.io import write_table
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    settings = snakemake.config.get("compare", {})
    table = compare_fits(
        list(snakemake.input.fits),
        max_refits=settings.get("max_refits", 10),
        refit_settings={"cores": snakemake.threads},
    )
    write_table(table, snakemake.output.table)
    print(table.to_string(index=False))

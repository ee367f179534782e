"""Rule published: per-well posterior estimates next to the published least-squares fits."""

from cartfit.analysis import published_comparison_table
from cartfit.io import write_table
from cartfit.report import make_figure
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    table = published_comparison_table(
        list(snakemake.input.fits), snakemake.input.published, snakemake.input.subjects
    )
    write_table(table, snakemake.output.table)
    make_figure("published", [snakemake.output.table], snakemake.output.figure)
    print(table.to_string(index=False))

"""Rules figure_*: draw one report figure of the given kind from its input files."""

from cartfit.report import make_figure
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    make_figure(
        snakemake.params.kind,
        list(snakemake.input),
        snakemake.output.figure,
        cohort_dir=snakemake.params.get("cohort_dir"),
    )

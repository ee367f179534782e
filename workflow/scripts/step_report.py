"""Rule report: the self-contained HTML report of one cohort's results."""

from pathlib import Path

from cartfit.report import build_report
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    build_report(Path(snakemake.output.html).parent, files=list(snakemake.input))

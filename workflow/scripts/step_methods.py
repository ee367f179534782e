"""Rule methods: the methods page (models, priors, likelihood, sampler, software, data)."""

from cartfit.report import write_methods
from cartfit.workflow_api import logged

with logged(snakemake.log[0]):
    write_methods(list(snakemake.input.fits), snakemake.output.page,
                  validation=snakemake.input.validated)

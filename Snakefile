# cartfit workflow: from cohort folders under data/ to results/<cohort>/report.html.
#
#   snakemake --cores 2                                  # data/example, quick sampler preset
#   snakemake --cores 2 --config preset=full             # publication-grade sampler settings
#   snakemake --profile workflow/profiles/slurm          # the same run on a SLURM cluster
#   snakemake --report report.html                      # Snakemake's report of the last run
#
# The settings are in workflow/config/config.yaml (commented) and described, with their
# defaults, in workflow/schemas/config.schema.yaml.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "workflow/config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/exposure.smk"
include: "workflow/rules/relapse.smk"
include: "workflow/rules/trial.smk"
include: "workflow/rules/costim.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/published.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/validation.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        expand("results/{cohort}/report.html", cohort=config["cohorts"]),

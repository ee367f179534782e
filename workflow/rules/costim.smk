# Multifate population fits of a cohort with CD28 and 4-1BB subjects: the co-stimulation
# contrasts, homeostatic share and rechallenge tables, and their forest figure.


rule costim:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_population.nc",
    output:
        table=report(
            "results/{cohort}/costim/{model}_{growth}.csv",
            caption="../report/costim_table.rst",
            category="{cohort}",
            subcategory="CD28 versus 4-1BB",
            labels={"model": "{model}", "growth": "{growth}", "item": "contrasts"},
        ),
        homeostatic="results/{cohort}/costim/{model}_{growth}_homeostatic.csv",
        rechallenge="results/{cohort}/costim/{model}_{growth}_rechallenge.csv",
    log:
        "results/{cohort}/logs/costim/{model}_{growth}.log",
    wildcard_constraints:
        model="multifate",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        costim=config["costim"],
    message:
        "CD28 versus 4-1BB, homeostatic share and rechallenge: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_costim.py"


rule figure_costim:
    input:
        table="results/{cohort}/costim/{model}_{growth}.csv",
    output:
        figure=report(
            "results/{cohort}/figures/costim_{model}_{growth}.png",
            caption="../report/costim.rst",
            category="{cohort}",
            subcategory="CD28 versus 4-1BB",
            labels={"model": "{model}", "growth": "{growth}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/costim_{model}_{growth}.log",
    wildcard_constraints:
        model="multifate",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="costim",
    message:
        "CD28 versus 4-1BB figure: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"

localrules:
    methods,
    report,


rule methods:
    input:
        validated="results/{cohort}/validation.txt",
        fits=over("results/{cohort}/fits/{model}_{growth}_{unit}.nc"),
    output:
        page=report(
            "results/{cohort}/methods.html",
            caption="../report/methods.rst",
            category="{cohort}",
            subcategory="Methods",
        ),
    log:
        "results/{cohort}/logs/methods.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    message:
        "Methods page of {wildcards.cohort}"
    script:
        "../scripts/step_methods.py"


rule report:
    input:
        validated="results/{cohort}/validation.txt",
        methods="results/{cohort}/methods.html",
        fits=over("results/{cohort}/fits/{model}_{growth}_{unit}.nc"),
        figures=combine(
            over(
                "results/{cohort}/figures/compare_{model}_{unit}.png",
                "results/{cohort}/figures/bands_{model}_{growth}_{unit}.png",
                "results/{cohort}/figures/exposure_{model}_{growth}.png",
                "results/{cohort}/figures/relapse_{model}_{growth}.png",
                "results/{cohort}/figures/diagnostics_{model}_{growth}_{unit}.png",
            ),
            over(
                "results/{cohort}/figures/vpc_{model}_{growth}_population.png",
                needs="population",
            ),
            over(
                "results/{cohort}/figures/trial_{model}_{growth}.png", needs="scenario"
            ),
            over(
                "results/{cohort}/figures/contrast_{model}_{growth}.png",
                needs="contrast",
            ),
            over(
                "results/{cohort}/figures/compare_models_{unit}.png",
                needs="model_comparison",
            ),
        ),
        tables=combine(
            over(
                "results/{cohort}/compare/{model}_{unit}.csv",
                "results/{cohort}/exposure/{model}_{growth}_{unit}.csv",
                "results/{cohort}/relapse/{model}_{growth}_{unit}.csv",
                "results/{cohort}/trials/{model}_{growth}_{scenario}.csv",
            ),
            over(
                "results/{cohort}/trials/contrasts/{model}_{growth}_{contrast}.csv",
                needs="contrast",
            ),
            over(
                "results/{cohort}/compare/models_{unit}.csv", needs="model_comparison"
            ),
        ),
        published=published_outputs,
        costim=costim_outputs,
    output:
        html="results/{cohort}/report.html",
    log:
        "results/{cohort}/logs/report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    message:
        "Writing results/{wildcards.cohort}/report.html"
    script:
        "../scripts/step_report.py"

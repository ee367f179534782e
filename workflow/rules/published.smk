# Our per-well fits against the authors' published least-squares fits, for a cohort whose
# folder holds their `published_fit_parameters.csv` (data/carrgo) and is fitted per subject.


rule published:
    input:
        fits=over("results/{cohort}/fits/predator_prey_logistic_{unit}.nc"),
        published="data/{cohort}/published_fit_parameters.csv",
        subjects="data/{cohort}/subjects.csv",
    output:
        table=report(
            "results/{cohort}/published/comparison.csv",
            caption="../report/published_table.rst",
            category="{cohort}",
            subcategory="Published fits",
            labels={"model": "predator_prey", "growth": "logistic", "item": "table"},
        ),
        figure=report(
            "results/{cohort}/figures/published_comparison.png",
            caption="../report/published.rst",
            category="{cohort}",
            subcategory="Published fits",
            labels={"model": "predator_prey", "growth": "logistic", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/published.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sampler=SAMPLER,
    message:
        "Our fits against the published ones: {wildcards.cohort}"
    script:
        "../scripts/step_published.py"

rule compare:
    input:
        fits=over("results/{cohort}/fits/{model}_{growth}_{unit}.nc"),
    output:
        table=report(
            "results/{cohort}/compare/{model}_{unit}.csv",
            caption="../report/compare_table.rst",
            category="{cohort}",
            subcategory="Growth-law comparison",
            labels={"model": "{model}", "fitted": "{unit}", "item": "table"},
        ),
    log:
        "results/{cohort}/logs/compare/{model}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    message:
        "Comparing growth laws of {wildcards.model} on {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_compare.py"

rule relapse:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_{unit}.nc",
    output:
        table=report(
            "results/{cohort}/relapse/{model}_{growth}_{unit}.csv",
            caption="../report/relapse_table.rst",
            category="{cohort}",
            subcategory="Relapse probabilities",
            labels={
                "model": "{model}",
                "growth": "{growth}",
                "fitted": "{unit}",
                "item": "table",
            },
        ),
    log:
        "results/{cohort}/logs/relapse/{model}_{growth}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        horizons=config["relapse"]["horizons"],
    message:
        "Relapse probabilities of {wildcards.model} / {wildcards.growth}, {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_relapse.py"

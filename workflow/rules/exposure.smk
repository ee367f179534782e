rule exposure:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_{unit}.nc",
    output:
        table=report(
            "results/{cohort}/exposure/{model}_{growth}_{unit}.csv",
            caption="../report/exposure_table.rst",
            category="{cohort}",
            subcategory="Exposure metrics",
            labels={
                "model": "{model}",
                "growth": "{growth}",
                "fitted": "{unit}",
                "item": "table",
            },
        ),
    log:
        "results/{cohort}/logs/exposure/{model}_{growth}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        window=config["exposure"]["window"],
    message:
        "Exposure metrics of {wildcards.model} / {wildcards.growth}, {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_exposure.py"

rule trial:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_population.nc",
    output:
        table=report(
            "results/{cohort}/trials/{model}_{growth}_{scenario}.csv",
            caption="../report/trial_table.rst",
            category="{cohort}",
            subcategory="Virtual trials",
            labels={
                "model": "{model}",
                "growth": "{growth}",
                "scenario": "{scenario}",
                "item": "table",
            },
        ),
    log:
        "results/{cohort}/logs/trial/{model}_{growth}_{scenario}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        trial=lambda wildcards: trial_settings(
            config, wildcards.cohort, wildcards.scenario
        ),
    message:
        "Virtual trial {wildcards.scenario} from {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_trial.py"

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
        subjects="results/{cohort}/trials/subjects/{model}_{growth}_{scenario}.csv",
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


rule trial_contrast:
    input:
        arm="results/{cohort}/trials/subjects/{model}_{growth}_{arm}.csv",
        reference="results/{cohort}/trials/subjects/{model}_{growth}_{reference}.csv",
    output:
        table=report(
            "results/{cohort}/trials/contrasts/{model}_{growth}_{arm}_vs_{reference}.csv",
            caption="../report/trial_contrast.rst",
            category="{cohort}",
            subcategory="Virtual trials",
            labels={
                "model": "{model}",
                "growth": "{growth}",
                "scenario": "{arm} vs {reference}",
                "item": "paired contrast",
            },
        ),
    log:
        "results/{cohort}/logs/trial/{model}_{growth}_{arm}_vs_{reference}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        n_subjects=config["trials"]["subjects"],
        seed=config["seed"],
    message:
        "Paired contrast {wildcards.arm} - {wildcards.reference} from {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_trial_contrast.py"

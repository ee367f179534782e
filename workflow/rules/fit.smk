rule compile:
    input:
        validated="results/{cohort}/validation.txt",
    output:
        note=temp("results/{cohort}/compiled/{model}_{growth}.txt"),
    log:
        "results/{cohort}/logs/compile/{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        cohort_dir="data/{cohort}",
        unit=lambda wildcards: plan(wildcards.cohort)["unit"][0],
        sampler=lambda wildcards: sampler_settings(
            config, wildcards.model, wildcards.growth
        ),
    message:
        "Compiling the log density of {wildcards.model} / {wildcards.growth} for {wildcards.cohort}"
    script:
        "../scripts/step_compile.py"


rule fit:
    input:
        validated="results/{cohort}/validation.txt",
        compiled="results/{cohort}/compiled/{model}_{growth}.txt",
    output:
        fit="results/{cohort}/fits/{model}_{growth}_{unit}.nc",
    log:
        "results/{cohort}/logs/fit/{model}_{growth}_{unit}.log",
    benchmark:
        "results/{cohort}/benchmarks/fit/{model}_{growth}_{unit}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads_per_fit"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        cohort_dir="data/{cohort}",
        sampler=lambda wildcards: sampler_settings(
            config, wildcards.model, wildcards.growth
        ),
    message:
        "Fitting {wildcards.model} / {wildcards.growth} growth to {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_fit.py"

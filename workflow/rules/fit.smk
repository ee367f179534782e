rule fit:
    input:
        validated="results/{cohort}/validation.txt",
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

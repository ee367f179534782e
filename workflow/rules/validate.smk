localrules:
    validate,


rule validate:
    input:
        cohort_files,
    output:
        summary="results/{cohort}/validation.txt",
    log:
        "results/{cohort}/logs/validate.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        cohort_dir="data/{cohort}",
    message:
        "Checking data/{wildcards.cohort} against the data contract"
    script:
        "../scripts/step_validate.py"

# Validation targets, not part of `all`: simulate cohorts with known truth, fit them, and check
# that the 90 % intervals of the exposure metrics cover the true values about 90 % of the time.
#   snakemake --cores 2 validation_all


rule validation_all:
    input:
        coverage=expand(
            "results/validation/{model}_{growth}/coverage.csv",
            model=config["validation"]["model"],
            growth=config["validation"]["growth"],
        ),


rule validation_simulate:
    output:
        cohort=directory("results/validation/{model}_{growth}/seed{seed}/cohort"),
    log:
        "results/validation/{model}_{growth}/seed{seed}/simulate.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        subjects=config["validation"]["subjects"],
    message:
        "Simulating {wildcards.model} / {wildcards.growth}, seed {wildcards.seed}"
    script:
        "../scripts/step_simulate.py"


rule validation_fit:
    input:
        cohort="results/validation/{model}_{growth}/seed{seed}/cohort",
    output:
        fit="results/validation/{model}_{growth}/seed{seed}/fit.nc",
    log:
        "results/validation/{model}_{growth}/seed{seed}/fit.log",
    benchmark:
        "results/validation/{model}_{growth}/seed{seed}/fit_benchmark.tsv"
    conda:
        CONDA_ENV
    threads: config["threads_per_fit"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        sampler=SAMPLER,
    message:
        "Fitting the simulated {wildcards.model} / {wildcards.growth} cohort, seed {wildcards.seed}"
    script:
        "../scripts/step_validation_fit.py"


rule validation_exposure:
    input:
        fit="results/validation/{model}_{growth}/seed{seed}/fit.nc",
    output:
        table="results/validation/{model}_{growth}/seed{seed}/exposure.csv",
    log:
        "results/validation/{model}_{growth}/seed{seed}/exposure.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        window=config["exposure"]["window"],
    message:
        "Exposure metrics of the simulated cohort, seed {wildcards.seed}"
    script:
        "../scripts/step_exposure.py"


rule validation_recovery:
    input:
        exposure="results/validation/{model}_{growth}/seed{seed}/exposure.csv",
        cohort="results/validation/{model}_{growth}/seed{seed}/cohort",
    output:
        table="results/validation/{model}_{growth}/seed{seed}/recovery.csv",
    log:
        "results/validation/{model}_{growth}/seed{seed}/recovery.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    message:
        "True exposure against its posterior interval, seed {wildcards.seed}"
    script:
        "../scripts/step_recovery.py"


rule validation_coverage:
    input:
        tables=expand(
            "results/validation/{{model}}_{{growth}}/seed{seed}/recovery.csv",
            seed=range(1, config["validation"]["replicates"] + 1),
        ),
    output:
        table="results/validation/{model}_{growth}/coverage.csv",
    log:
        "results/validation/{model}_{growth}/coverage.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    message:
        "Coverage of the 90 % exposure intervals over the simulated cohorts"
    script:
        "../scripts/step_coverage.py"

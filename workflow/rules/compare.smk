MAX_REFITS = int(config.get("compare", {}).get("max_refits", 0))


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
    threads: lambda wildcards: 1 + (config["threads_per_fit"] - 1) * bool(MAX_REFITS)
    resources:
        mem_mb=lambda wildcards: 2000 + 2000 * bool(MAX_REFITS),
        # each exact refit (Pareto k > 0.7) costs about one fit, for every growth law
        runtime=lambda wildcards: 10 + 30 * MAX_REFITS * len(config["growth_laws"]),
    message:
        "Comparing growth laws of {wildcards.model} on {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_compare.py"


rule compare_models:
    input:
        fits=over("results/{cohort}/fits/{model}_{growth}_{unit}.nc"),
    output:
        table=report(
            "results/{cohort}/compare/models_{unit}.csv",
            caption="../report/compare_models_table.rst",
            category="{cohort}",
            subcategory="Model comparison",
            labels={"fitted": "{unit}", "item": "table"},
        ),
    log:
        "results/{cohort}/logs/compare/models_{unit}.log",
    conda:
        CONDA_ENV
    threads: lambda wildcards: 1 + (config["threads_per_fit"] - 1) * bool(MAX_REFITS)
    resources:
        mem_mb=lambda wildcards: 2000 + 2000 * bool(MAX_REFITS),
        runtime=lambda wildcards: 10
        + 30 * MAX_REFITS * len(plan(wildcards.cohort)["fits"]),
    message:
        "Comparing every fitted model and growth law on {wildcards.cohort}: {wildcards.unit}"
    script:
        "../scripts/step_compare.py"

# One figure per job; every figure is a labelled item of the Snakemake report and is embedded
# in results/<cohort>/report.html. All rules call workflow/scripts/step_figure.py with a `kind`.


rule figure_bands:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_{unit}.nc",
    output:
        figure=report(
            "results/{cohort}/figures/bands_{model}_{growth}_{unit}.png",
            caption="../report/bands.rst",
            category="{cohort}",
            subcategory="Data and posterior predictive bands",
            labels={"model": "{model}", "growth": "{growth}", "fitted": "{unit}"},
        ),
    log:
        "results/{cohort}/logs/figures/bands_{model}_{growth}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        kind="bands",
        sampler=SAMPLER,
    message:
        "Posterior predictive bands: {wildcards.model} / {wildcards.growth}, {wildcards.unit}"
    script:
        "../scripts/step_figure.py"


rule figure_diagnostics:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_{unit}.nc",
    output:
        figure=report(
            "results/{cohort}/figures/diagnostics_{model}_{growth}_{unit}.png",
            caption="../report/diagnostics.rst",
            category="{cohort}",
            subcategory="Sampler diagnostics",
            labels={"model": "{model}", "growth": "{growth}", "fitted": "{unit}"},
        ),
    log:
        "results/{cohort}/logs/figures/diagnostics_{model}_{growth}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind="diagnostics",
        sampler=SAMPLER,
    message:
        "Sampler diagnostics: {wildcards.model} / {wildcards.growth}, {wildcards.unit}"
    script:
        "../scripts/step_figure.py"


rule figure_vpc:
    input:
        fit="results/{cohort}/fits/{model}_{growth}_population.nc",
    output:
        figure=report(
            "results/{cohort}/figures/vpc_{model}_{growth}_population.png",
            caption="../report/vpc.rst",
            category="{cohort}",
            subcategory="Visual predictive checks",
            labels={"model": "{model}", "growth": "{growth}"},
        ),
    log:
        "results/{cohort}/logs/figures/vpc_{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind="vpc",
        sampler=SAMPLER,
    message:
        "Visual predictive check: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"


rule figure_compare:
    input:
        table="results/{cohort}/compare/{model}_{unit}.csv",
    output:
        figure=report(
            "results/{cohort}/figures/compare_{model}_{unit}.png",
            caption="../report/compare.rst",
            category="{cohort}",
            subcategory="Growth-law comparison",
            labels={"model": "{model}", "fitted": "{unit}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/compare_{model}_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="compare",
    message:
        "Growth-law comparison figure: {wildcards.model}, {wildcards.unit}"
    script:
        "../scripts/step_figure.py"


rule figure_compare_models:
    input:
        table="results/{cohort}/compare/models_{unit}.csv",
    output:
        figure=report(
            "results/{cohort}/figures/compare_models_{unit}.png",
            caption="../report/compare_models.rst",
            category="{cohort}",
            subcategory="Model comparison",
            labels={"fitted": "{unit}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/compare_models_{unit}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="compare",
    message:
        "Model comparison figure: {wildcards.unit}"
    script:
        "../scripts/step_figure.py"


rule figure_exposure:
    input:
        tables=over("results/{cohort}/exposure/{model}_{growth}_{unit}.csv"),
    output:
        figure=report(
            "results/{cohort}/figures/exposure_{model}_{growth}.png",
            caption="../report/exposure.rst",
            category="{cohort}",
            subcategory="Exposure metrics",
            labels={"model": "{model}", "growth": "{growth}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/exposure_{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="exposure",
        cohort_dir="data/{cohort}",
        window=config["exposure"]["window"],
    message:
        "Exposure forest plot: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"


rule figure_relapse:
    input:
        tables=over("results/{cohort}/relapse/{model}_{growth}_{unit}.csv"),
    output:
        figure=report(
            "results/{cohort}/figures/relapse_{model}_{growth}.png",
            caption="../report/relapse.rst",
            category="{cohort}",
            subcategory="Relapse probabilities",
            labels={"model": "{model}", "growth": "{growth}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/relapse_{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="relapse",
        horizons=config["relapse"]["horizons"],
    message:
        "Relapse curves: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"


rule figure_trial:
    input:
        tables=over("results/{cohort}/trials/{model}_{growth}_{scenario}.csv"),
    output:
        figure=report(
            "results/{cohort}/figures/trial_{model}_{growth}.png",
            caption="../report/trial.rst",
            category="{cohort}",
            subcategory="Virtual trials",
            labels={"model": "{model}", "growth": "{growth}", "item": "figure"},
        ),
    log:
        "results/{cohort}/logs/figures/trial_{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="trial",
        subjects=config["trials"]["subjects"],
        draws=config["trials"]["draws"],
        per_draw=config["trials"]["per_draw"],
    message:
        "Virtual trial summary: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"


rule figure_contrast:
    input:
        tables=over("results/{cohort}/trials/contrasts/{model}_{growth}_{contrast}.csv"),
    output:
        figure=report(
            "results/{cohort}/figures/contrast_{model}_{growth}.png",
            caption="../report/trial_contrast_figure.rst",
            category="{cohort}",
            subcategory="Virtual trials",
            labels={
                "model": "{model}",
                "growth": "{growth}",
                "item": "paired contrasts",
            },
        ),
    log:
        "results/{cohort}/logs/figures/contrast_{model}_{growth}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        kind="contrast",
        subjects=config["trials"]["subjects"],
    message:
        "Paired trial contrasts: {wildcards.model} / {wildcards.growth}, {wildcards.cohort}"
    script:
        "../scripts/step_figure.py"

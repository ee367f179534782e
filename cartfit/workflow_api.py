"""Thin functions behind the Snakemake workflow (``Snakefile``, ``workflow/``).

The workflow's rule files only declare files; its scripts call one function each. The few
decisions the workflow needs (which settings apply to a cohort, which units are fitted, how a
script's output reaches its log) live here, where they are unit-tested.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartfit.errors import CartfitError

if TYPE_CHECKING:
    import pandas as pd

#: the fitted unit of a population fit (any other unit is a subject id)
POPULATION = "population"
#: keys of the config that ``cohort_overrides`` may replace for one cohort
OVERRIDABLE = ("models", "growth_laws", "fit_mode", "scenarios")

__all__ = [
    "OVERRIDABLE",
    "POPULATION",
    "cohort_plan",
    "cohort_settings",
    "coverage_summary",
    "fit_unit",
    "fit_units",
    "logged",
    "recovery_table",
    "sampler_settings",
    "trial_scenario",
    "trial_settings",
    "validate_cohort",
]


def cohort_settings(config: Mapping[str, Any], cohort: str) -> dict[str, Any]:
    """Models, growth laws, fit mode and trial scenarios that apply to ``cohort``.

    The top-level keys of the (validated) config, with ``cohort_overrides[cohort]`` replacing
    any of :data:`OVERRIDABLE`; ``scenarios`` defaults to ``config["trials"]["scenarios"]``.
    Trials need a population posterior, so a cohort fitted per subject has no scenarios.
    """
    settings = {
        "models": list(config["models"]),
        "growth_laws": list(config["growth_laws"]),
        "fit_mode": config["fit_mode"],
        "scenarios": list(config.get("trials", {}).get("scenarios", [])),
    }
    for key, value in config.get("cohort_overrides", {}).get(cohort, {}).items():
        if key not in OVERRIDABLE:
            raise CartfitError(
                f"config: cohort_overrides.{cohort}.{key}: cannot be overridden per cohort "
                f"(expected one of {', '.join(OVERRIDABLE)})"
            )
        settings[key] = list(value) if isinstance(value, list) else value
    if settings["fit_mode"] != POPULATION:
        settings["scenarios"] = []
    return settings


def cohort_plan(
    config: Mapping[str, Any], cohort: str, data_dir: str | os.PathLike[str] = "data"
) -> dict[str, Any]:
    """Wildcard values of one cohort's jobs: ``model``, ``growth``, ``unit``, ``scenario``.

    Lists for :func:`snakemake.io.expand` (``population`` is ``["population"]`` or empty),
    plus the cohort's ``fit_mode``. Units are read by
    :func:`fit_units` from ``data_dir/cohort``.
    """
    settings = cohort_settings(config, cohort)
    return {
        "model": settings["models"],
        "growth": settings["growth_laws"],
        "unit": fit_units(settings["fit_mode"], Path(data_dir) / cohort),
        "scenario": [s["name"] for s in settings["scenarios"]],
        "population": [POPULATION] if settings["fit_mode"] == POPULATION else [],
        "fit_mode": settings["fit_mode"],
    }


def trial_settings(config: Mapping[str, Any], cohort: str, scenario: str) -> dict[str, Any]:
    """The trial scenario called ``scenario`` of a cohort, with the run's size and seed.

    Returns ``{"scenario": {...}, "n_subjects": int, "seed": int}``.
    """
    for entry in cohort_settings(config, cohort)["scenarios"]:
        if entry["name"] == scenario:
            trials = config.get("trials", {})
            return {"scenario": dict(entry), "n_subjects": int(trials.get("subjects", 200)),
                    "seed": int(config["seed"])}
    raise CartfitError(f"config: cohort {cohort!r} has no trial scenario {scenario!r}")


def sampler_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler settings of the chosen ``preset`` with the run's ``seed`` and ``likelihood``."""
    preset = dict(config["presets"][config["preset"]])
    preset.update(seed=int(config["seed"]), likelihood=config["likelihood"])
    return preset


def _subject_ids(path: Path) -> list[str]:
    """The ``subject`` column of a subjects.csv, read without validating anything else."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return [row["subject"].strip() for row in csv.DictReader(f) if row.get("subject")]
    except (OSError, UnicodeDecodeError, KeyError, csv.Error):
        return []


def fit_units(fit_mode: str, cohort_dir: str | os.PathLike[str]) -> list[str]:
    """The units fitted for a cohort: ``["population"]``, or every subject id (sorted).

    Subject ids are read from ``subjects.csv`` without validation (the workflow's validate job
    reports problems); an unreadable file gives no unit, so the run stops at that job.

    Raises
    ------
    CartfitError
        In subjects mode, when a subject is called ``population`` (the name of the other mode).
    """
    if fit_mode == POPULATION:
        return [POPULATION]
    ids = sorted(set(_subject_ids(Path(cohort_dir) / "subjects.csv")))
    if POPULATION in ids:
        raise CartfitError(
            f"{cohort_dir}/subjects.csv: a subject is called {POPULATION!r}, which names the "
            "population fit in result files; rename it to fit subjects one by one"
        )
    return ids


def validate_cohort(cohort_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Check a cohort folder against the data contract and write its summary to ``out``.

    Raises
    ------
    cartfit.errors.ValidationError
        Listing every problem (``FILE:ROW:COLUMN: what is wrong``); nothing is written.
    """
    from cartfit.data import load_cohort, summarize
    from cartfit.io import write_text

    cohort = load_cohort(cohort_dir)
    text = summarize(cohort)
    write_text(text + "\n", out)
    print(text)
    return Path(out)


def fit_unit(
    cohort_dir: str | os.PathLike[str],
    *,
    model: str,
    growth: str,
    unit: str,
    out: str | os.PathLike[str],
    sampler: Mapping[str, Any],
    threads: int = 1,
) -> bool:
    """Fit one unit of a cohort (a subject id, or ``population``) and write the fit file.

    ``sampler`` holds the :class:`cartfit.inference.FitSettings` fields of
    :func:`sampler_settings`; ``threads`` bounds the chains sampled at once. The convergence
    table is printed (into the job's log); returns whether every check passed. A fit that
    fails a check is still written: the report shows the failure at its top.
    """
    from cartfit.inference import FitSettings, fit_cohort

    settings = FitSettings(**dict(sampler), cores=max(1, int(threads)), progress=False)
    population = unit == POPULATION
    report = fit_cohort(
        cohort_dir, model=model, growth=growth, subject=None if population else unit,
        population=population, out=out, settings=settings,
    )
    print(report.table())
    return report.converged


def trial_scenario(
    fit: str | os.PathLike[str],
    scenario: Mapping[str, Any],
    *,
    n_subjects: int,
    seed: int,
    out: str | os.PathLike[str],
) -> Path:
    """Run one virtual-trial scenario from a population fit and write its table.

    ``scenario`` is one entry of the config's trial scenarios (``name`` and optional ``dose``,
    ``costim``, ``lymphodepletion``; ``None`` keeps the cohort's values). The table of
    :func:`cartfit.analysis.virtual_trial` is written with ``scenario`` as its first column.
    """
    from cartfit.analysis import virtual_trial
    from cartfit.io import write_table

    table = virtual_trial(
        fit, dose=scenario.get("dose"), costim=scenario.get("costim"),
        lymphodepletion=scenario.get("lymphodepletion"), n_subjects=n_subjects, seed=seed,
    )
    table = table.drop(columns="scenario", errors="ignore")
    table.insert(0, "scenario", str(scenario["name"]))
    write_table(table, out)
    print(table.to_string(index=False))
    return Path(out)


@contextlib.contextmanager
def logged(log: str | os.PathLike[str]) -> Iterator[None]:
    """Send everything a workflow script prints (Python and C level) to its rule's log file.

    A :class:`CartfitError` (bad data, bad settings) is written as its message, without a
    traceback, and ends the script with exit status 2; any other exception is written with its
    traceback and re-raised. Either way the job fails and Snakemake names the log.
    """
    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("w", encoding="utf-8", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                try:
                    yield
                except CartfitError as err:
                    print(f"error: {err}", file=f)
                    raise SystemExit(2) from None
                except Exception:
                    traceback.print_exc(file=f)
                    raise
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def recovery_table(exposure: str | os.PathLike[str], cohort_dir: str | os.PathLike[str]
                   ) -> pd.DataFrame:
    """True exposure metrics of a simulated cohort against their posterior 5–95 % intervals.

    Parameters
    ----------
    exposure
        A ``cartfit exposure`` table (``subject, metric, mean, median, q05, q95, unit``).
    cohort_dir
        The simulated cohort, whose ``truth.csv`` has one column per metric.

    Returns
    -------
    pandas.DataFrame
        ``subject, metric, truth, median, q05, q95, covered`` for every metric present in both
        (``covered``: ``q05 <= truth <= q95``); rows with a missing true value are left out.
    """
    import pandas as pd

    from cartfit.io import read_text

    truth_path = Path(cohort_dir) / "truth.csv"
    read_text(truth_path)  # a clear error when the cohort has no truth
    truth = pd.read_csv(truth_path)
    table = pd.read_csv(exposure)
    metrics = [m for m in dict.fromkeys(table["metric"]) if m in truth.columns]
    if not metrics:
        raise CartfitError(f"{truth_path}: no column for any metric of {exposure}")
    long = truth.melt(id_vars="subject", value_vars=metrics, var_name="metric",
                      value_name="truth").dropna(subset=["truth"])
    long["subject"] = long["subject"].astype(str)
    table["subject"] = table["subject"].astype(str)
    out = long.merge(table[["subject", "metric", "median", "q05", "q95"]],
                     on=["subject", "metric"], how="inner")
    out["covered"] = (out["q05"] <= out["truth"]) & (out["truth"] <= out["q95"])
    return out[["subject", "metric", "truth", "median", "q05", "q95", "covered"]]


def coverage_summary(tables: list[str | os.PathLike[str]], nominal: float = 0.9
                     ) -> pd.DataFrame:
    r"""Coverage of the posterior intervals per metric, pooled over recovery tables.

    Returns ``metric, n, covered, coverage, lower, upper, nominal`` where ``lower``–``upper``
    is the 95 % Wilson score interval of the coverage,

    .. math::

        \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n},
        \qquad z = 1.96,

    which should contain ``nominal`` (0.9 for 5–95 % intervals) when the intervals are
    calibrated. Subjects within one cohort share population parameters, so the pooled count
    is not fully independent and the interval is somewhat too narrow.
    """
    import numpy as np
    import pandas as pd

    frames = [pd.read_csv(t) for t in tables]
    if not frames:
        raise CartfitError("coverage: no recovery table given")
    pooled = pd.concat(frames, ignore_index=True)
    grouped = pooled.groupby("metric", sort=False)["covered"]
    out = pd.DataFrame({"n": grouped.size(), "covered": grouped.sum().astype(int)})
    z = 1.96
    n, p = out["n"].to_numpy(float), (out["covered"] / out["n"]).to_numpy(float)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    out["coverage"], out["lower"], out["upper"] = p, centre - half, centre + half
    out["nominal"] = nominal
    return out.reset_index()

"""The functions the workflow's scripts call, and the log redirection they run under."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cartfit.errors import CartfitError
from cartfit.workflow_api.plan import POPULATION


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


def _unit_arguments(unit: str, sampler: Mapping[str, Any], threads: int) -> dict[str, Any]:
    """``subject``, ``population`` and ``settings`` of the fit of one unit (a subject id, or
    ``population``) with the :func:`sampler_settings` ``sampler`` on ``threads`` cores."""
    from cartfit.inference import FitSettings

    population = unit == POPULATION
    return {"subject": None if population else unit, "population": population,
            "settings": FitSettings(**dict(sampler), cores=max(1, int(threads)),
                                    progress=False)}  # fmt: skip


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
    from cartfit.inference import fit_cohort

    report = fit_cohort(cohort_dir, model=model, growth=growth, out=out,
                        **_unit_arguments(unit, sampler, threads))  # fmt: skip
    print(report.table())
    return report.converged


def compile_unit(
    cohort_dir: str | os.PathLike[str],
    *,
    model: str,
    growth: str,
    unit: str,
    out: str | os.PathLike[str],
    sampler: Mapping[str, Any],
) -> Path:
    """Compile the log density of the fit :func:`fit_unit` would run with the same arguments
    into the compile caches (:func:`cartfit.inference.fit.compile_fit`) and write ``out``, a
    one-line note of the time it took, which the fit job waits for."""
    from cartfit.inference.fit import compile_fit
    from cartfit.io import write_text

    seconds = compile_fit(cohort_dir, model=model, growth=growth,
                          **_unit_arguments(unit, sampler, 1))  # fmt: skip
    note = f"{model} / {growth}, {unit}: compiled or loaded in {seconds:.1f} s\n"
    write_text(note, out)
    print(note, end="")
    return Path(out)


def trial_scenario(
    fit: str | os.PathLike[str],
    scenario: Mapping[str, Any],
    *,
    n_subjects: int,
    seed: int,
    out: str | os.PathLike[str],
    n_draws: int | None = None,
    per_draw: int | None = None,
    subjects_out: str | os.PathLike[str] | None = None,
) -> Path:
    """Run one virtual-trial scenario from a population fit and write its table.

    ``scenario`` is one entry of the config's trial scenarios (``name`` and optional ``dose``,
    ``costim``, ``lymphodepletion``; ``None`` keeps the cohort's values). The table of
    :func:`cartfit.analysis.virtual_trial` is written with ``scenario`` as its first column;
    ``subjects_out``, the virtual patients, for paired contrasts between scenarios.
    """
    from cartfit.analysis import virtual_trial
    from cartfit.io import write_table

    table = virtual_trial(
        fit, dose=scenario.get("dose"), costim=scenario.get("costim"),
        lymphodepletion=scenario.get("lymphodepletion"), n_subjects=n_subjects, seed=seed,
        n_draws=n_draws, per_draw=per_draw, subjects_out=subjects_out,
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

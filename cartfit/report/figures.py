"""The report's figures: which figure is drawn from which result files, and how.

A results folder (``results/<cohort>``) holds, per fitted unit (a subject id or ``population``),
``fits/<model>_<growth>_<unit>.nc``, ``exposure/…csv`` and ``relapse/…csv``; per model and unit
``compare/<model>_<unit>.csv``; per population fit and scenario
``trials/<model>_<growth>_<scenario>.csv``; a cohort compared with published fits
``published/comparison.csv``. Each figure kind below is drawn from some of these
files into ``figures/<kind>_<stem>.png`` — the same names in the workflow's rules
(``workflow/rules/figures.smk``) and in :func:`cartfit.report.build_report`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cartfit.errors import CartfitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: figure kinds, in the order the report shows them
FIGURE_KINDS = ("compare", "bands", "vpc", "exposure", "relapse", "trial", "contrast",
                "costim", "published", "diagnostics")
#: truth.csv columns of a simulated cohort that are exposure metrics
_TRUTH_ID = "subject"


def _one(inputs: Sequence[str | os.PathLike[str]], kind: str) -> Path:
    if len(inputs) != 1:
        raise CartfitError(f"figure {kind}: expects one input file, got {len(inputs)}")
    return Path(inputs[0])


def _tables(inputs: Sequence[str | os.PathLike[str]], kind: str) -> pd.DataFrame:
    if not inputs:
        raise CartfitError(f"figure {kind}: no input table")
    from cartfit.io import read_text

    frames = []
    for path in inputs:
        read_text(path)  # a clear error for a missing or unreadable file
        frames.append(pd.read_csv(path))
    return pd.concat(frames, ignore_index=True)


def exposure_truth(cohort_dir: str | os.PathLike[str] | None, metrics: Sequence[str]
                   ) -> pd.DataFrame | None:
    """True exposure metrics of a simulated cohort (``truth.csv``) as ``subject, metric, value``;
    ``None`` when the cohort has no truth file or it shares no metric with ``metrics``."""
    if cohort_dir is None or not (Path(cohort_dir) / "truth.csv").is_file():
        return None
    truth = pd.read_csv(Path(cohort_dir) / "truth.csv")
    shared = [m for m in metrics if m in truth.columns]
    if _TRUTH_ID not in truth.columns or not shared:
        return None
    long = truth.melt(id_vars=_TRUTH_ID, value_vars=shared, var_name="metric", value_name="value")
    long["subject"] = long["subject"].astype(str)
    return long.dropna(subset=["value"])


def _fit_figure(function_name: str) -> Callable[..., Figure]:
    def draw(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
        from cartfit import plotting
        from cartfit.inference.predict import load_fit

        return getattr(plotting, function_name)(load_fit(_one(inputs, function_name)))

    return draw


def _compare(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import growth_law_comparison

    return growth_law_comparison(_tables(inputs, "compare"))


def _exposure(inputs: Sequence[str | os.PathLike[str]],
              cohort_dir: str | os.PathLike[str] | None = None) -> Figure:
    from cartfit.plotting import exposure_forest

    table = _tables(inputs, "exposure")
    truth = exposure_truth(cohort_dir, list(dict.fromkeys(table["metric"])))
    if truth is not None:
        truth = truth[truth["subject"].isin(set(table["subject"].astype(str)))]
    return exposure_forest(table, truth=truth if truth is not None and len(truth) else None)


def _antigen_negative(inputs: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether the model of ``<model>_<growth>_<unit or scenario>.csv`` tables has an
    antigen-negative tumour (``True`` where a name does not say)."""
    from cartfit.models import get_model
    from cartfit.report.contents import FIT_STEM

    stems = [FIT_STEM.match(Path(p).stem) for p in inputs]
    return any(m is None or "escape" in get_model(m["model"], m["growth"]).extras
               for m in stems)  # fmt: skip


def _relapse(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import relapse_curves

    return relapse_curves(_tables(inputs, "relapse"), antigen_negative=_antigen_negative(inputs))


def _trial(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import trial_summary

    table = _tables(inputs, "trial")
    if not _antigen_negative(inputs):  # zero by construction, not a prediction: no panel
        table = table[~table["quantity"].str.startswith("p_relapse_antigen_neg")]
    return trial_summary(table)


def _contrast(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import contrast_forest

    table = _tables(inputs, "contrast")
    if not _antigen_negative(inputs):  # zero by construction, not a prediction: no row
        table = table[~table["quantity"].str.startswith("p_relapse_antigen_neg")]
    return contrast_forest(table)


def _costim(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import costim_forest

    return costim_forest(_tables([_one(inputs, "costim")], "costim"))


def _published(inputs: Sequence[str | os.PathLike[str]], cohort_dir: object = None) -> Figure:
    from cartfit.plotting import published_comparison

    return published_comparison(_tables(inputs, "published"))


_DRAW: dict[str, Callable[..., Figure]] = {
    "bands": _fit_figure("posterior_predictive_bands"),
    "diagnostics": _fit_figure("diagnostics_figure"),
    "vpc": _fit_figure("visual_predictive_check"),
    "compare": _compare,
    "exposure": _exposure,
    "relapse": _relapse,
    "trial": _trial,
    "contrast": _contrast,
    "costim": _costim,
    "published": _published,
}


def draw_figure(kind: str, inputs: Sequence[str | os.PathLike[str]],
                cohort_dir: str | os.PathLike[str] | None = None) -> Figure:
    """Draw the figure ``kind`` (one of :data:`FIGURE_KINDS`) from its input files.

    ``bands``, ``diagnostics`` and ``vpc`` take one fit file; ``compare`` and ``published`` one
    comparison table, ``costim`` one contrast table; ``exposure``, ``relapse`` and ``trial``
    the tables of every unit (or scenario) of one model and growth law, drawn together.
    ``cohort_dir`` lets ``exposure`` overlay the true values of a simulated cohort (its
    ``truth.csv``).
    """
    if kind not in _DRAW:
        expected = ", ".join(FIGURE_KINDS)
        raise CartfitError(f"unknown figure kind {kind!r} (expected one of {expected})")
    return _DRAW[kind](inputs, cohort_dir)


def make_figure(kind: str, inputs: Sequence[str | os.PathLike[str]],
                out: str | os.PathLike[str],
                cohort_dir: str | os.PathLike[str] | None = None) -> Path:
    """Draw the figure ``kind`` from ``inputs`` (see :func:`draw_figure`) and save it to ``out``
    (PNG, written atomically)."""
    from cartfit.plotting import save

    return save(draw_figure(kind, inputs, cohort_dir), out)

"""The three tables of a multi-fate population fit, computed together and then written:
CD28 − 4-1BB contrasts (:func:`~cartfit.analysis.costim.costim_contrast`), the homeostatic
share of early expansion (:func:`~cartfit.analysis.costim.homeostatic_share`) and re-expansion
on antigen rechallenge (:func:`~cartfit.analysis.rechallenge.rechallenge`).

Used by ``cartfit costim`` and by the workflow's ``costim`` rule. Nothing is written until all
three are computed, and each file is written atomically, so a failure leaves no partial set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from cartfit.analysis.costim import costim_contrast, homeostatic_share
from cartfit.analysis.rechallenge import rechallenge
from cartfit.io import write_table

#: file name suffixes of the two per-subject tables next to the contrast table
SUFFIXES = ("_homeostatic", "_rechallenge")


def costim_paths(out: str | os.PathLike[str]) -> list[Path]:
    """``[out, <stem>_homeostatic.csv, <stem>_rechallenge.csv]`` next to ``out``."""
    out = Path(out)
    return [out] + [out.with_name(f"{out.stem}{s}.csv") for s in SUFFIXES]


def write_costim_tables(
    fit_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    horizon: float = 90.0,
    rechallenge_day: float = 180.0,
    antigen: float | None = None,
) -> dict[Path, pd.DataFrame]:
    """Compute the three tables of a multifate population fit and write them to
    :func:`costim_paths` of ``out``; returns ``{path: table}``.

    Raises
    ------
    CartfitError
        For a fit that is not a multifate population fit with CD28 and 4-1BB subjects (checked
        before the other two tables are computed).
    """
    tables = [
        costim_contrast(fit_path, horizon=horizon),  # refuses unsuitable fits first
        homeostatic_share(fit_path),
        rechallenge(fit_path, day=rechallenge_day, dose_of_antigen=antigen),
    ]
    written = dict(zip(costim_paths(out), tables, strict=True))
    for path, df in written.items():
        write_table(df, path)
    return written

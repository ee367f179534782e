"""Validation of ``observations.csv`` (DESIGN.md section 2) into the standard long table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartfit.data import cells as c
from cartfit.data.csvfile import TextTable
from cartfit.data.schema import ANALYTES, OBSERVATION_COLUMNS
from cartfit.errors import Problem

STANDARD = ("subject", "time", "analyte", "value", "unit", "lloq", "blq", "line")


def _blq_flags(table: TextTable, problems: list[Problem]) -> pd.Series:
    """The explicit blq flags: 1.0, 0.0, or NaN where the cell is empty or the column absent."""
    cells = table.cells
    out = pd.Series(np.nan, index=cells.index)
    if "blq" not in cells.columns:
        return out
    for i, text, line in zip(cells.index, cells["blq"], cells["line"], strict=True):
        number, message = c.parse_number(text)
        if message is None and (np.isnan(number) or number in (0.0, 1.0)):
            out[i] = number
        else:
            problems.append(
                Problem(table.file, int(line), "blq", f"{text!r} is not a flag",
                        "1 = below LLOQ, 0 = quantified, or empty to derive it from value < lloq")
            )
    return out


def _check_censoring(obs: pd.DataFrame, explicit: pd.Series, file: str, problems: list[Problem]):
    """blq derived or checked against value and lloq; returns the final boolean flags."""
    derived = obs["value"] < obs["lloq"]  # False where either is NaN
    blq = explicit.where(explicit.notna(), derived.astype(float)) == 1.0
    for i in obs.index[obs["ok"]]:
        line, value, lloq = int(obs.at[i, "line"]), obs.at[i, "value"], obs.at[i, "lloq"]
        if np.isnan(value) and not blq[i]:
            problems.append(Problem(file, line, "value", "empty",
                                    "a number >= 0, or empty only with blq=1"))
        elif blq[i] and np.isnan(lloq):
            problems.append(Problem(file, line, "lloq", "blq=1 but lloq is empty",
                                    "the lower limit of quantification of a BLQ row"))
        elif blq[i] and value > lloq:
            problems.append(Problem(file, line, "value", f"{value:g} is above lloq {lloq:g} with blq=1",
                                    "value <= lloq, or empty, on a BLQ row"))
    return blq


def _check_duplicates(obs: pd.DataFrame, file: str, problems: list[Problem]) -> None:
    keyed = obs.dropna(subset=["subject", "time", "analyte"])
    first: dict[tuple[str, float, str], int] = {}
    for subject, time, analyte, line in keyed[["subject", "time", "analyte", "line"]].itertuples(
        index=False
    ):
        key = (subject, time, analyte)
        if key in first:
            problems.append(
                Problem(file, int(line), "", f"duplicate of line {first[key]} "
                        f"(subject {subject}, time {time:g}, analyte {analyte})",
                        "one measurement per subject, time and analyte")
            )
        else:
            first[key] = int(line)


def _check_units(obs: pd.DataFrame, file: str, problems: list[Problem]) -> dict[str, str]:
    """One unit per analyte: the most frequent one wins; other rows are problems."""
    units: dict[str, str] = {}
    known = obs.dropna(subset=["analyte"])
    known = known[known["unit"] != ""]
    for analyte, group in known.groupby("analyte", sort=False):
        counts = group["unit"].value_counts(sort=True)
        main = str(counts.index[0])
        units[str(analyte)] = main
        for unit, line in group.loc[group["unit"] != main, ["unit", "line"]].itertuples(index=False):
            problems.append(
                Problem(file, int(line), "unit",
                        f"unit {unit!r} differs from {main!r} used on {counts.iloc[0]} {analyte} rows",
                        "one unit per analyte in a cohort")
            )
    return units


def check_observations(
    table: TextTable, problems: list[Problem]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Typed, standardized observations and the unit of each analyte.

    Every bad cell, duplicate row, mixed unit and inconsistent BLQ row is appended to
    ``problems``; the returned table has an ``ok`` column that is False on rows with a problem
    in a key column (subject, time, analyte).
    """
    cells, file = table.cells, table.file
    before = len(problems)
    obs = pd.DataFrame(index=cells.index)
    obs["line"] = cells["line"].astype(int)
    obs["subject"] = c.ids(table, "subject", problems)
    obs["time"] = c.numbers(table, "time", problems, required=True, minimum=None,
                            expected="days since CAR T infusion, a finite number")
    obs["analyte"] = c.choices(table, "analyte", tuple(ANALYTES), problems, required=True,
                               what="analyte")
    obs["value"] = c.numbers(table, "value", problems, required=False, minimum=0.0,
                             expected="a number >= 0, or empty only with blq=1")
    obs["unit"] = cells["unit"] if "unit" in cells.columns else ""
    for line in obs.loc[obs["unit"] == "", "line"] if "unit" in cells.columns else []:
        problems.append(Problem(file, int(line), "unit", "empty", "the unit of the value"))
    obs["lloq"] = c.numbers(table, "lloq", problems, required=False, minimum=0.0, strict=True,
                            expected="a positive number, or empty when there is none")
    explicit = _blq_flags(table, problems)
    bad_value = {p.row for p in problems[before:] if p.column in ("value", "lloq", "blq")}
    obs["ok"] = ~obs["line"].isin(bad_value) & obs["subject"].notna()
    if "value" in cells.columns:
        obs["blq"] = _check_censoring(obs, explicit, file, problems)
    else:
        obs["blq"] = explicit == 1.0
    obs["ok"] &= obs[["subject", "time", "analyte"]].notna().all(axis=1)
    _check_duplicates(obs, file, problems)
    units = _check_units(obs, file, problems)
    standard = {col.name for col in OBSERVATION_COLUMNS}
    for extra in cells.columns:
        if extra not in standard and extra != "line":
            obs[extra] = c.covariate(cells[extra])
    return obs, units

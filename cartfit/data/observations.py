"""Validation of ``observations.csv`` (DESIGN.md section 2) into the standard long table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartfit.data import cells as c
from cartfit.data.csvfile import TextTable
from cartfit.data.report import Report
from cartfit.data.schema import ANALYTES, FRACTION_ANALYTES, FRACTION_UNITS, OBSERVATION_COLUMNS
from cartfit.errors import Problem

STANDARD = ("subject", "time", "analyte", "value", "unit", "lloq", "blq", "line")


def _blq_flags(table: TextTable, problems: list[Problem]) -> pd.Series:
    """The explicit blq flags: 1.0, 0.0, or NaN where the cell is empty or the column absent."""
    cells, report = table.cells, Report(table.file, problems)
    out = pd.Series(np.nan, index=cells.index)
    if "blq" not in cells.columns:
        return out
    expected = "1 = below LLOQ, 0 = quantified, or empty to derive it from value < lloq"
    for i, text, line in zip(cells.index, cells["blq"], cells["line"], strict=True):
        number, message = c.parse_number(text)
        if message is None and (np.isnan(number) or number in (0.0, 1.0)):
            out[i] = number
        else:
            report.add(line, "blq", f"{text!r} is not a flag", expected)
    return out


def _check_censoring(obs: pd.DataFrame, explicit: pd.Series, report: Report) -> pd.Series:
    """blq derived from value < lloq where not given, checked against value and lloq."""
    derived = obs["value"] < obs["lloq"]  # False where either is NaN
    blq = explicit.where(explicit.notna(), derived.astype(float)) == 1.0
    for i in obs.index[obs["ok"]]:
        line, value, lloq = obs.at[i, "line"], obs.at[i, "value"], obs.at[i, "lloq"]
        if np.isnan(value) and not blq[i]:
            report.add(line, "value", "empty", "a number >= 0, or empty only with blq=1")
        elif blq[i] and np.isnan(lloq):
            report.add(
                line,
                "lloq",
                "blq=1 but lloq is empty",
                "the lower limit of quantification of a BLQ row",
            )
        elif blq[i] and value > lloq:
            report.add(
                line,
                "value",
                f"{value:g} is above lloq {lloq:g} with blq=1",
                "value <= lloq, or empty, on a BLQ row",
            )
    return blq


def _check_duplicates(obs: pd.DataFrame, report: Report) -> None:
    keyed = obs.dropna(subset=["subject", "time", "analyte"])
    first: dict[tuple[str, float, str], int] = {}
    for row in keyed[["subject", "time", "analyte", "line"]].itertuples(index=False):
        key = (row.subject, row.time, row.analyte)
        if key not in first:
            first[key] = int(row.line)
            continue
        what = f"subject {row.subject}, time {row.time:g}, analyte {row.analyte}"
        report.add(
            row.line,
            "",
            f"duplicate of line {first[key]} ({what})",
            "one measurement per subject, time and analyte",
        )


def _check_fractions(obs: pd.DataFrame, report: Report) -> None:
    """Phenotype fractions: unit ``fraction`` (values up to 1) or ``%`` (up to 100)."""
    rows = obs[obs["analyte"].isin(FRACTION_ANALYTES)]
    for line, analyte, unit, value in rows[["line", "analyte", "unit", "value"]].to_numpy():
        whole = FRACTION_UNITS.get(str(unit))
        if whole is None:
            report.add(line, "unit", f"{unit!r} for {analyte}",
                       f"one of {', '.join(FRACTION_UNITS)} for a phenotype fraction")  # fmt: skip
        elif pd.notna(value) and value > whole:
            report.add(line, "value", f"{value:g} {unit} for {analyte}",
                       f"a share of the CAR T cells, at most {whole:g} {unit}")  # fmt: skip


def _check_units(obs: pd.DataFrame, report: Report) -> dict[str, str]:
    """One unit per analyte: the most frequent one wins; other rows are problems."""
    units: dict[str, str] = {}
    known = obs.dropna(subset=["analyte"])
    known = known[known["unit"] != ""]
    for analyte, group in known.groupby("analyte", sort=False):
        counts = group["unit"].value_counts(sort=True)
        main = str(counts.index[0])
        units[str(analyte)] = main
        used = f"used on {counts.iloc[0]} {analyte} rows"
        for unit, line in group.loc[group["unit"] != main, ["unit", "line"]].to_numpy():
            report.add(
                line,
                "unit",
                f"unit {unit!r} differs from {main!r} {used}",
                "one unit per analyte in a cohort",
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
    cells, report = table.cells, Report(table.file, problems)
    before = len(problems)
    obs = pd.DataFrame(index=cells.index)
    obs["line"] = cells["line"].astype(int)
    obs["subject"] = c.ids(table, "subject", problems)
    obs["time"] = c.numbers(
        table,
        "time",
        problems,
        required=True,
        minimum=None,
        expected="days since CAR T infusion, a finite number",
    )
    obs["analyte"] = c.choices(
        table, "analyte", tuple(ANALYTES), problems, required=True, what="analyte"
    )
    obs["value"] = c.numbers(
        table,
        "value",
        problems,
        required=False,
        minimum=0.0,
        expected="a number >= 0, or empty only with blq=1",
    )
    obs["unit"] = cells["unit"] if "unit" in cells.columns else ""
    for line in obs.loc[obs["unit"] == "", "line"] if "unit" in cells.columns else []:
        report.add(line, "unit", "empty", "the unit of the value")
    obs["lloq"] = c.numbers(
        table,
        "lloq",
        problems,
        required=False,
        minimum=0.0,
        strict=True,
        expected="a positive number, or empty when there is none",
    )
    explicit = _blq_flags(table, problems)
    bad_value = {p.row for p in problems[before:] if p.column in ("value", "lloq", "blq")}
    obs["ok"] = ~obs["line"].isin(bad_value) & obs["subject"].notna()
    has_value = "value" in cells.columns
    obs["blq"] = _check_censoring(obs, explicit, report) if has_value else explicit == 1.0
    obs["ok"] &= obs[["subject", "time", "analyte"]].notna().all(axis=1) & has_value
    _check_duplicates(obs, report)
    units = _check_units(obs, report)
    _check_fractions(obs, report)
    standard = {col.name for col in OBSERVATION_COLUMNS}
    for extra in cells.columns:
        if extra not in standard and extra != "line":
            obs[extra] = c.covariate(cells[extra])
    return obs, units

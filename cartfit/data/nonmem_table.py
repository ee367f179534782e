"""Read and check a NONMEM-style table (the columns are described in :mod:`cartfit.data.nonmem`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.data import cells as c
from cartfit.data.csvfile import TextTable, read_text_table
from cartfit.data.report import Report
from cartfit.data.schema import ID_EXPECTED, ID_PATTERN, Column
from cartfit.errors import Problem

COLUMNS = tuple(
    Column(name, name in ("ID", "TIME", "DV"), meaning)
    for name, meaning in (
        ("ID", "subject id"),
        ("TIME", "time in days"),
        ("DV", "observed value"),
        ("MDV", "missing-DV flag 0/1"),
        ("EVID", "event id 0-4"),
        ("AMT", "dose in cells"),
        ("CMT", "compartment"),
        ("DVID", "observation type"),
        ("BLQ", "censoring flag 0/1"),
        ("CENS", "censoring flag 0/1"),
        ("LLOQ", "limit of quantification"),
        ("UNIT", "unit"),
    )
)
STANDARD = {col.name for col in COLUMNS} | {"RATE", "II", "ADDL", "SS"}


@dataclass(frozen=True)
class NonmemTable:
    """Typed records of a NONMEM table.

    ``rows`` has ``line, id, time, dv, amt, evid, mdv, blq, lloq, unit, analyte`` (DV is NaN and
    LLOQ filled from DV on censored records); ``is_obs`` marks the observation records;
    ``extras`` holds the other columns as text; ``key`` and ``cens`` name the analyte and
    censoring columns that were used.
    """

    rows: pd.DataFrame
    is_obs: pd.Series
    extras: pd.DataFrame
    key: str | None
    cens: str


def _ids(table: TextTable, report: Report) -> pd.Series:
    """ID cells as safe ids; integral numbers lose a trailing ``.0`` (``1.0`` -> ``1``)."""
    out = []
    for text, line in zip(table.cells["ID"], table.cells["line"], strict=True):
        number, message = c.parse_number(text)
        if message is None and not np.isnan(number) and number == int(number):
            text = str(int(number))
        out.append(text if ID_PATTERN.match(text) else None)
        if out[-1] is None:
            report.add(line, "ID", "empty id" if not text else f"unsafe id {text!r}", ID_EXPECTED)
    return pd.Series(out, index=table.cells.index, dtype=object)


def _flags(
    table: TextTable,
    name: str,
    report: Report,
    default: pd.Series,
    allowed: tuple[float, ...],
    expected: str,
) -> pd.Series:
    if name not in table.cells.columns:
        return default
    values = c.numbers(
        table, name, report.problems, required=False, minimum=None, expected=expected
    )
    for i in values.index[values.notna() & ~values.isin(allowed)]:
        report.add(table.cells.at[i, "line"], name, f"{values[i]:g} is not supported", expected)
        values[i] = np.nan
    return values.where(values.notna(), default)


def _analytes(
    table: TextTable, key: str | None, dvid: dict[int, str], is_obs: pd.Series, report: Report
) -> list[str | None]:
    """Analyte of each record from its DVID/CMT code (the only one when there is no column)."""
    if key is None:
        if len(dvid) != 1 and is_obs.any():
            report.add(
                1,
                "DVID",
                "no DVID or CMT column",
                "a DVID or CMT column, or a dvid map with a single analyte",
            )
        return [next(iter(dvid.values())) if len(dvid) == 1 else None] * len(is_obs)
    mapping = ", ".join(f"{k}={v}" for k, v in dvid.items())
    out: list[str | None] = []
    for i, code, line in zip(table.cells.index, table.cells[key], table.cells["line"], strict=True):
        number, _ = c.parse_number(code)
        integral = np.isfinite(number) and number == int(number)
        out.append(dvid.get(int(number)) if integral else None)
        if out[-1] is None and is_obs[i]:
            report.add(
                line,
                key,
                f"{code!r} is not mapped to an analyte",
                f"one of {mapping}; pass --dvid {code or 'N'}=analyte",
            )
    return out


def read_nonmem_table(
    file: Path, dvid: dict[int, str], units: dict[str, str], problems: list[Problem]
) -> NonmemTable | None:
    """Parse and check ``file``; None when its shape or required columns prevent reading it."""
    table = read_text_table(file, str(file), COLUMNS, problems, upper_header=True, comment="#")
    if table is None or not {"ID", "TIME", "DV"} <= set(table.cells.columns):
        return None
    table = dataclasses.replace(table, cells=table.cells.replace(".", ""))  # '.' is missing
    cells, report = table.cells, Report(table.file, problems)
    number = {"required": False, "minimum": None, "expected": "a number"}
    rows = pd.DataFrame({"line": cells["line"], "id": _ids(table, report)})
    rows["time"] = c.numbers(
        table,
        "TIME",
        problems,
        required=True,
        minimum=None,
        expected="time in days, a finite number",
    )
    rows["dv"] = c.numbers(table, "DV", problems, **number)
    rows["amt"] = c.numbers(table, "AMT", problems, **number)
    rows["evid"] = _flags(
        table,
        "EVID",
        report,
        (rows["amt"] > 0).astype(float),
        (0, 1, 2, 3, 4),
        "EVID 0 (observation), 1 or 4 (dose), 2 or 3 (other)",
    )
    rows["mdv"] = _flags(
        table, "MDV", report, (rows["evid"] != 0).astype(float), (0, 1), "MDV 0 or 1"
    )
    cens = "BLQ" if "BLQ" in cells.columns else "CENS"
    rows["blq"] = (
        _flags(
            table,
            cens,
            report,
            pd.Series(0.0, index=cells.index),
            (0, 1),
            "0, or 1 = below LLOQ; upper censoring is not supported",
        )
        == 1
    )
    rows["lloq"] = c.numbers(
        table,
        "LLOQ",
        problems,
        required=False,
        minimum=0.0,
        strict=True,
        expected="a positive number",
    )
    # observations: EVID=0 with a DV, and censored EVID=0 records whatever their MDV
    is_obs = (rows["evid"] == 0) & ((rows["mdv"] == 0) | rows["blq"])
    key = "DVID" if "DVID" in cells.columns else "CMT" if "CMT" in cells.columns else None
    rows["analyte"] = _analytes(table, key, dvid, is_obs, report)
    rows["unit"] = (
        cells["UNIT"]
        if "UNIT" in cells.columns
        else [units.get(a or "", "unspecified") for a in rows["analyte"]]
    )
    for line in rows.loc[is_obs & ~rows["blq"] & (cells["DV"] == ""), "line"]:
        report.add(line, "DV", "empty on an observation record", "a number, or MDV=1")
    from_dv = rows["blq"] & rows["lloq"].isna()  # Beal M3 habit: DV holds the LLOQ
    rows.loc[from_dv, "lloq"] = rows.loc[from_dv, "dv"]
    rows.loc[rows["blq"], "dv"] = np.nan
    extras = [col for col in cells.columns if col not in STANDARD and col != "line"]
    return NonmemTable(rows, is_obs, cells[extras], key, cens)


def nonmem_subjects(nm: NonmemTable, report: Report) -> tuple[pd.DataFrame, list[str]]:
    """One row per ID (summed dose, first dose time ``t0``, first ``line``, constant
    covariates in lower case) and the extra columns that vary within an ID."""
    rows = nm.rows
    is_dose = rows["evid"].isin((1, 4))
    for line in rows.loc[is_dose & ~(rows["amt"] > 0), "line"]:
        report.add(line, "AMT", "no positive dose on a dose record", "CAR T cells infused, > 0")
    doses = rows[is_dose & (rows["amt"] > 0)].groupby("id")
    table = pd.DataFrame({"dose": doses["amt"].sum(), "t0": doses["time"].min()})
    first = rows.dropna(subset=["id"]).drop_duplicates("id").set_index("id")["line"]
    with_dose_record = set(rows.loc[is_dose, "id"])
    for subject, line in first.items():
        if subject not in with_dose_record:
            report.add(
                line,
                "ID",
                f"ID {subject} has no dose record",
                "an EVID=1 record with AMT = CAR T cells infused",
            )
    table["line"] = first
    varying = []
    for col in nm.extras.columns:
        values = nm.extras[col].replace("", np.nan).groupby(rows["id"])
        if (values.nunique() <= 1).all():
            table[col.lower()] = c.covariate(values.first().reindex(table.index).fillna(""))
        else:
            varying.append(col)
    return table, varying

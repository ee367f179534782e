"""Import a NONMEM-style table into a cohort folder (``cartfit import-nonmem``).

Recognised columns (any case; ``.`` or an empty cell is missing; a header starting with ``#``
and later rows starting with ``#`` are handled as NONMEM's ``IGNORE=#``):

======  ===========================================================================
ID      subject id
TIME    time in days; shifted so that the subject's first dose record is day 0
DV      observed value on the natural (not log) scale
MDV     1 = no observation on the row (default: 1 on dose records, else 0)
EVID    0 observation, 1 or 4 dose, 2 or 3 other (default: 1 where AMT > 0, else 0)
AMT     CAR T cells infused on a dose record; several dose records of a subject are summed
CMT     compartment, mapped to an analyte by ``dvid`` when there is no DVID column
DVID    observation type, mapped to an analyte by ``dvid``
BLQ     1 = below LLOQ (Beal M3); CENS is read the same way; -1 (above a limit) is refused
LLOQ    limit of quantification; on censored rows without it, DV is the limit (M3 habit)
UNIT    unit of DV (otherwise ``units`` or "unspecified")
======  ===========================================================================

Observations are the EVID=0 records with MDV=0, and the censored EVID=0 records whatever
their MDV (dropping them would bias the fit). Every other column becomes a covariate named in
lower case: a subject covariate when it is constant within each ID, else an observation column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cartfit.data import cells as c
from cartfit.data.cohort import Cohort
from cartfit.data.csvfile import TextTable, read_text_table
from cartfit.data.load import load_cohort
from cartfit.data.schema import ID_EXPECTED, ID_PATTERN, Column
from cartfit.errors import Problem, ValidationError

_COLUMNS = tuple(
    Column(name, name in ("ID", "TIME", "DV"), meaning)
    for name, meaning in (
        ("ID", "subject id"), ("TIME", "time in days"), ("DV", "observed value"),
        ("MDV", "missing-DV flag 0/1"), ("EVID", "event id 0-4"), ("AMT", "dose in cells"),
        ("CMT", "compartment"), ("DVID", "observation type"), ("BLQ", "censoring flag 0/1"),
        ("CENS", "censoring flag 0/1"), ("LLOQ", "limit of quantification"), ("UNIT", "unit"),
    )
)
_STANDARD = {col.name for col in _COLUMNS} | {"RATE", "II", "ADDL", "SS"}
# contract column -> NONMEM column, to locate problems found by the contract check
_SOURCE = {"subject": "ID", "time": "TIME", "value": "DV", "unit": "UNIT", "lloq": "LLOQ",
           "dose": "AMT"}


def _subject_ids(table: TextTable, problems: list[Problem]) -> pd.Series:
    """ID cells as safe ids; integral numbers lose a trailing ``.0`` (``1.0`` -> ``1``)."""
    out = []
    for text, line in zip(table.cells["ID"], table.cells["line"], strict=True):
        number, message = c.parse_number(text)
        if message is None and not np.isnan(number) and number == int(number):
            text = str(int(number))
        if ID_PATTERN.match(text):
            out.append(text)
        else:
            out.append(None)
            problems.append(Problem(table.file, int(line), "ID",
                                    "empty id" if text == "" else f"unsafe id {text!r}", ID_EXPECTED))
    return pd.Series(out, index=table.cells.index, dtype=object)


def _flags(table: TextTable, name: str, problems: list[Problem], default: pd.Series,
           allowed: tuple[float, ...], expected: str) -> pd.Series:
    if name not in table.cells.columns:
        return default
    values = c.numbers(table, name, problems, required=False, minimum=None, expected=expected)
    for i in values.index[values.notna() & ~values.isin(allowed)]:
        problems.append(Problem(table.file, int(table.cells.at[i, "line"]), name,
                                f"{values[i]:g} is not supported", expected))
        values[i] = np.nan
    return values.where(values.notna(), default)


def _read(file: Path, dvid: dict[int, str], units: dict[str, str], problems: list[Problem]):
    table = read_text_table(file, str(file), _COLUMNS, problems, upper_header=True, comment="#")
    if table is None or not {"ID", "TIME", "DV"} <= set(table.cells.columns):
        return None
    table = TextTable(table.file, table.cells.replace(".", ""), table.raw)
    cells, f = table.cells, table.file
    rows = pd.DataFrame({"line": cells["line"], "id": _subject_ids(table, problems)})
    rows["time"] = c.numbers(table, "TIME", problems, required=True, minimum=None,
                             expected="time in days, a finite number")
    rows["dv"] = c.numbers(table, "DV", problems, required=False, minimum=None, expected="a number")
    rows["amt"] = c.numbers(table, "AMT", problems, required=False, minimum=None, expected="a number")
    zero = pd.Series(0.0, index=cells.index)
    rows["evid"] = _flags(table, "EVID", problems, (rows["amt"] > 0).astype(float),
                          (0, 1, 2, 3, 4), "EVID 0 (observation), 1 or 4 (dose), 2 or 3 (other)")
    rows["mdv"] = _flags(table, "MDV", problems, (rows["evid"] != 0).astype(float), (0, 1),
                         "MDV 0 or 1")
    cens = "BLQ" if "BLQ" in cells.columns else "CENS"
    rows["blq"] = _flags(table, cens, problems, zero, (0, 1),
                         "0, or 1 = below LLOQ; upper censoring is not supported") == 1
    rows["lloq"] = c.numbers(table, "LLOQ", problems, required=False, minimum=0.0, strict=True,
                             expected="a positive number")
    key = "DVID" if "DVID" in cells.columns else "CMT" if "CMT" in cells.columns else None
    rows["unit"] = cells["UNIT"] if "UNIT" in cells.columns else None
    is_obs = (rows["evid"] == 0) & ((rows["mdv"] == 0) | rows["blq"])
    if key is None and len(dvid) != 1 and is_obs.any():
        problems.append(Problem(f, 1, "DVID", "no DVID or CMT column",
                                "a DVID or CMT column, or a dvid map with a single analyte"))
    mapping = ", ".join(f"{k}={v}" for k, v in dvid.items())
    analyte = []
    for i in rows.index:
        code, line = cells.at[i, key] if key else "", int(rows.at[i, "line"])
        number, _ = c.parse_number(code)
        name = dvid.get(int(number)) if key and np.isfinite(number) and number == int(number) else (
            next(iter(dvid.values())) if key is None and len(dvid) == 1 else None)
        analyte.append(name)
        if name is None and is_obs[i] and key is not None:
            problems.append(Problem(f, line, key, f"{code!r} is not mapped to an analyte",
                                    f"one of {mapping}; pass --dvid {code or 'N'}=analyte"))
    rows["analyte"] = analyte
    if rows["unit"].isna().all():
        rows["unit"] = [units.get(a or "", "unspecified") for a in analyte]
    for i in rows.index[is_obs & ~rows["blq"] & (cells["DV"] == "")]:
        problems.append(Problem(f, int(rows.at[i, "line"]), "DV", "empty on an observation record",
                                "a number, or MDV=1"))
    lloq_from_dv = rows["blq"] & rows["lloq"].isna()
    rows.loc[lloq_from_dv, "lloq"] = rows.loc[lloq_from_dv, "dv"]
    rows.loc[rows["blq"], "dv"] = np.nan
    extras = [col for col in cells.columns if col not in _STANDARD and col != "line"]
    return rows, is_obs, cells[extras], key, cens


def _subjects(rows: pd.DataFrame, extras: pd.DataFrame, file: str, problems: list[Problem]):
    """One row per ID: summed dose, dose time, constant covariates."""
    is_dose = rows["evid"].isin((1, 4))
    for i in rows.index[is_dose & ~(rows["amt"] > 0)]:
        problems.append(Problem(file, int(rows.at[i, "line"]), "AMT", "no positive dose on a dose record",
                                "CAR T cells infused, > 0"))
    doses = rows[is_dose & (rows["amt"] > 0)].groupby("id")
    table = pd.DataFrame({"dose": doses["amt"].sum(), "t0": doses["time"].min()})
    first = rows.dropna(subset=["id"]).drop_duplicates("id").set_index("id")["line"]
    has_dose_record = set(rows.loc[is_dose, "id"])
    for subject, line in first.items():
        if subject not in has_dose_record:
            problems.append(Problem(file, int(line), "ID", f"ID {subject} has no dose record",
                                    "an EVID=1 record with AMT = CAR T cells infused"))
    table["line"] = first
    varying = []
    for col in extras.columns:
        values = extras[col].replace("", np.nan).groupby(rows["id"])
        if (values.nunique() <= 1).all():
            table[col.lower()] = c.covariate(values.first().reindex(table.index).fillna(""))
        else:
            varying.append(col)
    return table, varying


def import_nonmem(
    file: str | os.PathLike[str], out: str | os.PathLike[str], dvid: dict[int, str],
    *, units: dict[str, str] | None = None,
) -> Cohort:
    """Convert a NONMEM-style table into a validated cohort folder (see the module docstring).

    Parameters
    ----------
    file
        Comma-separated NONMEM dataset.
    out
        Cohort folder to write (replaced atomically; nothing is written on error).
    dvid
        Map from DVID (or CMT) code to analyte, e.g. ``{1: "car_t", 2: "tumor"}``.
    units
        Unit of each analyte when the table has no UNIT column.

    Raises
    ------
    cartfit.errors.ValidationError
        Every problem, located in ``file`` (line and NONMEM column).
    """
    from cartfit.io import write_cohort

    problems: list[Problem] = []
    read = _read(Path(file), dvid, units or {}, problems)
    if read is None:
        raise ValidationError(problems)
    rows, is_obs, extras = read[:3]
    subjects, varying = _subjects(rows, extras, str(file), problems)
    if problems:
        raise ValidationError(sorted(problems, key=lambda p: p.row))
    obs = rows[is_obs].copy()
    obs["time"] = obs["time"] - subjects["t0"].reindex(obs["id"]).to_numpy()
    table = pd.DataFrame({"subject": obs["id"], "time": obs["time"], "analyte": obs["analyte"],
                          "value": obs["dv"], "unit": obs["unit"], "lloq": obs["lloq"],
                          "blq": obs["blq"].astype(int)})
    for col in varying:
        table[col.lower()] = extras.loc[obs.index, col]
    subj = subjects.drop(columns=["t0", "line"]).rename_axis("subject").reset_index()
    lines = {"observations.csv": obs["line"].tolist(), "subjects.csv": subjects["line"].tolist()}
    source = {**_SOURCE, "analyte": read[3] or "DVID", "blq": read[4]}
    meta = {"source": f"imported from the NONMEM table {Path(file).name}"}
    try:
        write_cohort(out, table, subj, meta)
    except ValidationError as err:
        raise ValidationError([_locate(p, str(file), lines, source) for p in err.problems]) from None
    return load_cohort(out)


def _locate(problem: Problem, file: str, lines: dict[str, list[int]], source: dict[str, str]
            ) -> Problem:
    """Move a problem found in the written cohort back to the NONMEM line and column."""
    rows = lines.get(Path(problem.file).name)
    column = source.get(problem.column, problem.column.upper())
    if rows is None or not 2 <= problem.row < len(rows) + 2:
        return Problem(file, 0, column, problem.message, problem.expected)
    message = re.sub(r"line (\d+)", lambda m: f"line {_row(rows, int(m.group(1)))}", problem.message)
    return Problem(file, rows[problem.row - 2], column, message, problem.expected)


def _row(rows: list[int], line: int) -> int | str:
    return rows[line - 2] if 2 <= line < len(rows) + 2 else "?"

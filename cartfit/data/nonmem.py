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

import pandas as pd

from cartfit.data.cohort import Cohort
from cartfit.data.load import load_cohort
from cartfit.data.nonmem_table import nonmem_subjects, read_nonmem_table
from cartfit.data.report import Report
from cartfit.errors import Problem, ValidationError

# contract column -> NONMEM column, to locate problems found by the contract check
_SOURCE = {"subject": "ID", "time": "TIME", "value": "DV", "unit": "UNIT", "lloq": "LLOQ"}


def import_nonmem(
    file: str | os.PathLike[str],
    out: str | os.PathLike[str],
    dvid: dict[int, str],
    *,
    units: dict[str, str] | None = None,
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

    Returns
    -------
    Cohort
        The cohort read back from ``out``.

    Raises
    ------
    cartfit.errors.ValidationError
        Every problem, located in ``file`` (line and NONMEM column).
    """
    from cartfit.io import write_cohort

    problems: list[Problem] = []
    nm = read_nonmem_table(Path(file), dvid, units or {}, problems)
    if nm is None:
        raise ValidationError(problems)
    subjects, varying = nonmem_subjects(nm, Report(str(file), problems))
    if problems:
        raise ValidationError(sorted(problems, key=lambda p: p.row))
    obs = nm.rows[nm.is_obs]
    table = pd.DataFrame(
        {
            "subject": obs["id"],
            "time": obs["time"] - subjects["t0"].reindex(obs["id"]).to_numpy(),
            "analyte": obs["analyte"],
            "value": obs["dv"],
            "unit": obs["unit"],
            "lloq": obs["lloq"],
            "blq": obs["blq"].astype(int),
        }
    )
    for col in varying:
        table[col.lower()] = nm.extras.loc[obs.index, col]
    subj = subjects.drop(columns=["t0", "line"]).rename_axis("subject").reset_index()
    lines = {"observations.csv": obs["line"].tolist(), "subjects.csv": subjects["line"].tolist()}
    source = {**_SOURCE, "analyte": nm.key or "DVID", "blq": nm.cens, "dose": "AMT"}
    try:
        write_cohort(out, table, subj, {"source": f"imported from {Path(file).name} (NONMEM)"})
    except ValidationError as err:
        located = [_locate(p, str(file), lines, source) for p in err.problems]
        raise ValidationError(located) from None
    return load_cohort(out)


def _locate(
    problem: Problem, file: str, lines: dict[str, list[int]], source: dict[str, str]
) -> Problem:
    """Move a problem found in the written cohort back to the NONMEM line and column."""
    rows = lines.get(Path(problem.file).name, [])
    column = source.get(problem.column, problem.column.upper())

    def nonmem_line(line: int) -> int:
        return rows[line - 2] if 2 <= line < len(rows) + 2 else 0

    message = re.sub(r"line (\d+)", lambda m: f"line {nonmem_line(int(m[1]))}", problem.message)
    return Problem(file, nonmem_line(problem.row), column, message, problem.expected)

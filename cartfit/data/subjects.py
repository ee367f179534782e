"""Validation of ``subjects.csv`` (DESIGN.md section 2): one row per subject with its dose."""

from __future__ import annotations

import pandas as pd

from cartfit.data import cells as c
from cartfit.data.csvfile import TextTable
from cartfit.data.schema import COSTIMS, RELAPSE_ANTIGENS, SUBJECT_COLUMNS
from cartfit.errors import Problem

_NUMERIC = {
    "dose": (True, 0.0, True, "CAR T cells infused, a positive number"),
    "baseline_tumor": (False, 0.0, False, "tumour burden at infusion, a number >= 0, or empty"),
    "relapse_day": (False, 0.0, False, "day of relapse, a number >= 0, or empty"),
}


def check_subjects(table: TextTable, problems: list[Problem]) -> pd.DataFrame:
    """Typed subject table indexed by ``subject`` with a ``line`` column.

    ``dose`` is a float, ``costim`` and ``relapse_antigen`` are one of their allowed strings or
    None, ``baseline_tumor`` and ``relapse_day`` floats (NaN when unknown); other columns are
    kept as covariates (numbers when every non-empty cell is a number). Rows with an unsafe or
    repeated id are left out; each problem is appended to ``problems``.
    """
    cells, file = table.cells, table.file
    out = pd.DataFrame(index=cells.index)
    out["subject"] = c.ids(table, "subject", problems)
    for name, (required, minimum, strict, expected) in _NUMERIC.items():
        if required or name in cells.columns:
            out[name] = c.numbers(
                table,
                name,
                problems,
                required=required,
                minimum=minimum,
                strict=strict,
                expected=expected,
            )
    if "costim" in cells.columns:
        out["costim"] = c.choices(
            table, "costim", COSTIMS, problems, required=False, what="co-stimulatory domain"
        )
    else:
        out["costim"] = None
    if "relapse_antigen" in cells.columns:
        out["relapse_antigen"] = c.choices(
            table,
            "relapse_antigen",
            RELAPSE_ANTIGENS,
            problems,
            required=False,
            what="relapse antigen status",
        )
    known = {col.name for col in SUBJECT_COLUMNS}
    for name in cells.columns:
        if name not in known and name != "line":
            out[name] = c.covariate(cells[name])
        elif name in ("product", "disease", "lymphodepletion"):
            out[name] = c.covariate(cells[name])
    out["line"] = cells["line"].astype(int)
    first: dict[str, int] = {}
    keep = []
    for i, subject, line in zip(out.index, out["subject"], out["line"], strict=True):
        if subject is None:
            continue
        if subject in first:
            problems.append(
                Problem(
                    file,
                    int(line),
                    "subject",
                    f"subject {subject} is listed again (first on line {first[subject]})",
                    "one row per subject",
                )
            )
            continue
        first[subject] = int(line)
        keep.append(i)
    return out.loc[keep].set_index("subject")

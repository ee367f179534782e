"""Column checks shared by the contract tables: each turns text cells into typed values and
records one located :class:`~cartfit.errors.Problem` per bad cell."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from cartfit.data.csvfile import TextTable, suggest
from cartfit.data.schema import ID_EXPECTED, ID_PATTERN
from cartfit.errors import Problem

_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def parse_number(text: str) -> tuple[float, str | None]:
    """Parse a cell as a float: ``(nan, None)`` when empty, ``(nan, message)`` when bad."""
    if text == "":
        return math.nan, None
    try:
        number = float(text)
    except ValueError:
        if _DECIMAL_COMMA.match(text):
            return math.nan, f"{text!r} uses a decimal comma"
        return math.nan, f"{text!r} is not a number"
    if not math.isfinite(number):
        return math.nan, f"{text!r} is not a finite number"
    return number, None


def numbers(
    table: TextTable,
    column: str,
    problems: list[Problem],
    *,
    required: bool,
    minimum: float | None,
    strict: bool = False,
    expected: str,
) -> pd.Series:
    """Float values of ``column`` (NaN where empty or bad); bad cells become problems.

    ``minimum`` is the smallest allowed value (exclusive when ``strict``); ``required`` makes
    an empty cell a problem.
    """
    cells = table.cells
    out = np.full(len(cells), np.nan)
    if column not in cells.columns:
        return pd.Series(out, index=cells.index)
    for i, (text, line) in enumerate(zip(cells[column], cells["line"], strict=True)):
        number, message = parse_number(text)
        if message is None and math.isnan(number) and required:
            message = "empty"
        if message is None and minimum is not None and not math.isnan(number):
            if number < 0 and minimum >= 0:
                message = f"{text} is negative"
            elif number < minimum or (strict and number == minimum):
                message = f"{text} is {'not positive' if minimum == 0 else 'too small'}"
        if message is None:
            out[i] = number
        else:
            problems.append(Problem(table.file, int(line), column, message, expected))
    return pd.Series(out, index=cells.index)


def ids(table: TextTable, column: str, problems: list[Problem]) -> pd.Series:
    """The id cells of ``column``, with None where the id is empty or unsafe."""
    cells = table.cells
    if column not in cells.columns:
        return pd.Series([None] * len(cells), index=cells.index, dtype=object)
    out: list[str | None] = []
    for text, line in zip(cells[column], cells["line"], strict=True):
        if ID_PATTERN.match(text):
            out.append(text)
            continue
        message = "empty id" if text == "" else f"unsafe id {text!r}"
        problems.append(Problem(table.file, int(line), column, message, ID_EXPECTED))
        out.append(None)
    return pd.Series(out, index=cells.index, dtype=object)


def choices(
    table: TextTable,
    column: str,
    allowed: tuple[str, ...],
    problems: list[Problem],
    *,
    required: bool,
    what: str,
) -> pd.Series:
    """Cells of ``column`` that are in ``allowed`` (None where empty or not allowed)."""
    cells = table.cells
    if column not in cells.columns:
        return pd.Series([None] * len(cells), index=cells.index, dtype=object)
    out: list[str | None] = []
    expected = "one of " + ", ".join(allowed)
    for text, line in zip(cells[column], cells["line"], strict=True):
        if text in allowed:
            out.append(text)
            continue
        out.append(None)
        if text == "" and not required:
            continue
        message = f"empty {what}" if text == "" else f"unknown {what} {text!r}"
        close = suggest(text, list(allowed)) if text else None
        hint = f"; did you mean {close!r}?" if close else ""
        problems.append(Problem(table.file, int(line), column, message, expected + hint))
    return pd.Series(out, index=cells.index, dtype=object)


def covariate(series: pd.Series) -> pd.Series:
    """A free covariate column: numbers when every non-empty cell is one, else text (NaN empty)."""
    values = series.replace("", np.nan)
    try:
        return pd.to_numeric(values)
    except (ValueError, TypeError):
        return values.astype(object)

"""Read one contract CSV file into text cells with their line numbers, locating every problem.

The reader is deliberately strict about the shape of the file (UTF-8, comma-separated, one
header line, the same number of fields on every row) and tolerant about what exports add
harmlessly: a byte-order mark, blank lines, rows of empty fields, spaces around cells.
A semicolon- or tab-separated file is rejected with a message that says so, rather than read:
such files usually come from spreadsheets that also write decimal commas, and guessing would
silently turn ``1,5`` into the wrong number.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cartfit.data.schema import Column
from cartfit.errors import Problem


@dataclass(frozen=True)
class TextTable:
    """The cells of a CSV file as stripped strings; ``line`` is the line number of each row."""

    file: str
    cells: pd.DataFrame
    raw: bytes


def _decode(raw: bytes, file: str, problems: list[Problem]) -> str | None:
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        problems.append(Problem(file, line, "", "binary content (NUL byte)", "a UTF-8 CSV text file"))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        byte = raw[err.start : err.start + 1].hex()
        problems.append(
            Problem(file, line, "", f"not UTF-8 text (byte 0x{byte})", "a file saved as UTF-8")
        )
        return None


def _records(
    text: str, file: str, problems: list[Problem], comment: str | None
) -> list[tuple[int, list[str]]]:
    """Split the text into CSV records, skipping blank rows and comment rows after the first
    record; each record comes with its first line number."""
    out: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for fields in reader:
            stripped = [f.strip() for f in fields]
            is_comment = bool(comment and out and stripped and stripped[0].startswith(comment))
            if any(stripped) and not is_comment:
                out.append((start, stripped))
            start = reader.line_num + 1
    except csv.Error as err:
        problems.append(Problem(file, reader.line_num, "", f"unreadable CSV ({err})", "valid CSV"))
    return out


def suggest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name`` (case-insensitive), or None when none is close."""
    lowered = {c.lower().strip(): c for c in candidates}
    if name.lower().strip() in lowered:
        return lowered[name.lower().strip()]
    hit = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[hit[0]] if hit else None


def _check_header(
    header: list[str], columns: tuple[Column, ...], file: str, problems: list[Problem]
) -> list[bool]:
    """Check the header; return, for each field, whether it is kept as a column."""
    keep = [True] * len(header)
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if not name:
            problems.append(Problem(file, 1, f"#{i + 1}", "column without a name", "a header name"))
            keep[i] = False
        elif name in seen:
            problems.append(
                Problem(file, 1, name, f"column appears twice (fields {seen[name] + 1} and {i + 1})",
                        "each column once")
            )
            keep[i] = False
        else:
            seen[name] = i
    known = {c.name for c in columns}
    extras = [h for h in seen if h not in known]
    for col in columns:
        if col.name in seen:
            continue
        close = suggest(col.name, extras)
        if col.required:
            hint = f"; rename {close!r} to {col.name!r}?" if close else ""
            problems.append(
                Problem(file, 1, col.name, "required column is missing", f"{col.meaning}{hint}")
            )
        elif close is not None and (
            close.lower() == col.name
            or difflib.SequenceMatcher(None, close.lower(), col.name).ratio() >= 0.85
        ):
            problems.append(
                Problem(file, 1, close, f"column name looks like a misspelt {col.name!r}",
                        f"exactly {col.name!r}; a covariate needs a name less close to it")
            )
    return keep


def read_text_table(
    path: Path,
    file: str,
    columns: tuple[Column, ...],
    problems: list[Problem],
    *,
    upper_header: bool = False,
    comment: str | None = None,
) -> TextTable | None:
    """Read ``path`` (shown as ``file`` in problems); None when no row can be checked.

    Rows whose number of fields differs from the header are reported and dropped; columns
    with a problem in the header are dropped; everything else is returned for validation.
    ``upper_header`` upper-cases the column names (NONMEM style); with ``comment``, a leading
    ``comment`` character is dropped from the header and later rows starting with it are
    skipped (NONMEM's ``IGNORE=#``).
    """
    if not path.exists():
        problems.append(Problem(file, 0, "", "file is missing", f"a file {path.name}"))
        return None
    if not path.is_file():
        problems.append(Problem(file, 0, "", "is not a regular file", "a CSV file"))
        return None
    try:
        raw = path.read_bytes()
    except OSError as err:
        problems.append(Problem(file, 0, "", f"cannot be read ({err.strerror})", "a readable file"))
        return None
    text = _decode(raw, file, problems)
    if text is None:
        return None
    records = _records(text, file, problems, comment)
    wanted = ",".join(c.name for c in columns if c.required)
    if not records:
        problems.append(Problem(file, 0, "", "file is empty", f"a header line {wanted}"))
        return None
    header_line, header = records[0]
    if comment is not None and header[0].startswith(comment):
        header[0] = header[0][len(comment) :].strip()
    if upper_header:
        header = [h.upper() for h in header]
    if len(header) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), (" ", "spaces")):
            if sep in header[0]:
                problems.append(
                    Problem(file, header_line, "", f"fields are separated by {label}",
                            "comma-separated values: export the sheet as CSV with ',' and '.'")
                )
                return None
    keep = _check_header(header, columns, file, problems)
    names = [h for h, k in zip(header, keep, strict=True) if k]
    rows: list[list[object]] = []
    for line, fields in records[1:]:
        if len(fields) != len(header):
            problems.append(
                Problem(file, line, "", f"row has {len(fields)} fields",
                        f"{len(header)} fields, as in the header")
            )
            continue
        rows.append([f for f, k in zip(fields, keep, strict=True) if k] + [line])
    if len(records) == 1:
        problems.append(Problem(file, 0, "", "no data rows after the header", "one row per record"))
        return None
    cells = pd.DataFrame(rows, columns=[*names, "line"], dtype=object)
    cells["line"] = cells["line"].astype(int)
    return TextTable(file, cells, raw)

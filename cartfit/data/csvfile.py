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
import stat
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cartfit.data.report import Report
from cartfit.data.schema import Column
from cartfit.errors import Problem


@dataclass(frozen=True)
class TextTable:
    """The cells of a CSV file as stripped strings; ``line`` is the line number of each row.

    ``ragged`` holds the rows left out because their number of fields differs from the header
    (already reported), so that cross-file checks do not report their subjects as absent.
    """

    file: str
    cells: pd.DataFrame
    header: tuple[str, ...] = ()
    ragged: tuple[tuple[str, ...], ...] = ()

    def ragged_values(self, column: str) -> set[str]:
        """Values of ``column`` in the ragged rows that are long enough to have it."""
        if column not in self.header:
            return set()
        i = self.header.index(column)
        return {row[i] for row in self.ragged if len(row) > i}


def _decode(raw: bytes, report: Report) -> str | None:
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        report.add(line, "", "binary content (NUL byte)", "a UTF-8 CSV text file")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        byte = raw[err.start : err.start + 1].hex()
        report.add(line, "", f"not UTF-8 text (byte 0x{byte})", "a file saved as UTF-8")
        return None


def _records(text: str, report: Report, comment: str | None) -> list[tuple[int, list[str]]]:
    """Split the text into CSV records, skipping blank rows and comment rows after the first
    record; each record comes with its first line number."""
    out: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    start = 1
    try:
        for fields in reader:
            stripped = [f.strip() for f in fields]
            is_comment = bool(comment and out and stripped and stripped[0].startswith(comment))
            if any(stripped) and not is_comment:
                out.append((start, stripped))
            start = reader.line_num + 1
    except csv.Error as err:
        report.add(reader.line_num, "", f"unreadable CSV ({err})", "valid CSV")
    return out


def path_kind(path: Path) -> str:
    """``"file"``, ``"folder"``, ``"missing"``, ``"other"`` (a device, a pipe) or, when the
    path cannot even be inspected, ``"unreadable (reason)"``; never raises."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"


def suggest(name: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``name`` (case-insensitive), or None when none is close."""
    lowered = {c.lower().strip(): c for c in candidates}
    if name.lower().strip() in lowered:
        return lowered[name.lower().strip()]
    hit = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[hit[0]] if hit else None


def _check_header(header: list[str], columns: tuple[Column, ...], report: Report) -> list[bool]:
    """Check the header; return, for each field, whether it is kept as a column.

    Columns without a name are dropped here; :func:`read_text_table` reports them only when
    they hold a value (spreadsheets export trailing empty columns).
    """
    keep = [bool(name) for name in header]
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            report.add(
                1,
                name,
                f"column appears twice (fields {seen[name] + 1} and {i + 1})",
                "each column once",
            )
            keep[i] = False
        elif name:
            seen[name] = i
    extras = [h for h in seen if h not in {c.name for c in columns}]
    for col in columns:
        close = suggest(col.name, extras) if col.name not in seen else None
        if col.required and col.name not in seen:
            hint = f"; rename {close!r} to {col.name!r}?" if close else ""
            report.add(1, col.name, "required column is missing", f"{col.meaning}{hint}")
        elif close and difflib.SequenceMatcher(None, close.lower(), col.name).ratio() >= 0.85:
            report.add(
                1,
                close,
                f"column name looks like a misspelt {col.name!r}",
                f"exactly {col.name!r}; a covariate needs a name less close to it",
            )
    return keep


def _describe(kind: str) -> str:
    named = {
        "missing": "file is missing",
        "folder": "is a folder",
        "other": "is not a regular file",
    }
    return named.get(kind, f"is {kind}")


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
    report = Report(file, problems)
    kind = path_kind(path)
    if kind != "file":
        report.add(0, "", _describe(kind), f"a CSV file {path.name}")
        return None
    try:
        raw = path.read_bytes()
    except OSError as err:
        report.add(0, "", f"cannot be read ({err.strerror})", "a readable file")
        return None
    text = _decode(raw, report)
    records = _records(text, report, comment) if text is not None else []
    if text is not None and not records:
        wanted = ",".join(c.name for c in columns if c.required)
        report.add(0, "", "file is empty", f"a header line {wanted}")
    if not records:
        return None
    header_line, header = records[0]
    if comment is not None and header[0].startswith(comment):
        header[0] = header[0][len(comment) :].strip()
    header = [h.upper() for h in header] if upper_header else header
    for sep, label in ((";", "semicolons"), ("\t", "tabs"), (" ", "spaces")):
        if len(header) == 1 and sep in header[0]:
            report.add(
                header_line,
                "",
                f"fields are separated by {label}",
                "comma-separated values: export the sheet as CSV with ',' and '.'",
            )
            return None
    keep = _check_header(header, columns, report)
    rows: list[list[object]] = []
    ragged: list[tuple[str, ...]] = []
    for line, fields in records[1:]:
        if len(fields) != len(header):
            report.add(
                line, "", f"row has {len(fields)} fields", f"{len(header)} fields, as in the header"
            )
            ragged.append(tuple(fields))
        else:
            rows.append([f for f, k in zip(fields, keep, strict=True) if k] + [line])
    for i in (i for i, name in enumerate(header) if not name):
        if any(row[i] for _, row in records[1:] if len(row) == len(header)):
            report.add(1, f"#{i + 1}", "column without a name holds values", "a header name")
    if len(records) == 1:
        report.add(0, "", "no data rows after the header", "one row per record")
        return None
    names = [h for h, k in zip(header, keep, strict=True) if k]
    cells = pd.DataFrame(rows, columns=[*names, "line"], dtype=object)
    cells["line"] = cells["line"].astype(int)
    return TextTable(file, cells, tuple(header), tuple(ragged))

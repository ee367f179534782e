"""Exceptions that carry a message for the user (printed without a traceback, exit 2)."""

from __future__ import annotations

from dataclasses import dataclass


class CartfitError(Exception):
    """An error caused by the user's input (data, options, files), not by a bug."""


@dataclass(frozen=True)
class Problem:
    """One located problem of an input file: ``FILE:ROW:COLUMN: message (expected)``.

    ``row`` is the 1-based line number in the file (the header is line 1); 0 when the problem
    concerns the whole file; ``column`` is empty when it concerns a whole row.
    """

    file: str
    row: int
    column: str
    message: str
    expected: str = ""

    def __str__(self) -> str:
        tail = f" ({self.expected})" if self.expected else ""
        return f"{self.file}:{self.row}:{self.column}: {self.message}{tail}"


class ValidationError(CartfitError):
    """Every problem found in an input, reported at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        super().__init__("\n".join([*lines, f"{len(lines)} problem(s) found"]))

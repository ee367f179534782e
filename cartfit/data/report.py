"""Collect located problems of one input file."""

from __future__ import annotations

from dataclasses import dataclass

from cartfit.errors import Problem


@dataclass(frozen=True)
class Report:
    """Appends ``FILE:ROW:COLUMN: message (expected)`` problems of one file to a shared list."""

    file: str
    problems: list[Problem]

    def add(self, row: int, column: str, message: str, expected: str = "") -> None:
        """Record one problem; ``row`` is the line in the file (0 for the whole file)."""
        self.problems.append(Problem(self.file, int(row), column, message, expected))

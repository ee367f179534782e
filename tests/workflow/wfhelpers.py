"""Helpers for the workflow tests: run Snakemake and the cartfit command line, read job plans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = Path(__file__).with_name("config.yaml")


def snakemake(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Snakemake (of this Python environment) in ``workdir``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def cartfit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``cartfit`` command line of this Python environment."""
    return subprocess.run(
        [sys.executable, "-m", "cartfit.cli", *args], capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def job_counts(output: str) -> dict[str, int]:
    """The ``Job stats`` table of a Snakemake (dry) run as rule -> number of jobs."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    counts: dict[str, int] = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts

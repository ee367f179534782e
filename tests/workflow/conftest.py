"""Fixtures of the workflow tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from wfhelpers import REPO


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """A working directory holding a copy of the Snakefile, workflow/ and data/example."""
    shutil.copy(REPO / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(REPO / "workflow", tmp_path / "workflow")
    shutil.copytree(REPO / "data" / "example", tmp_path / "data" / "example")
    return tmp_path

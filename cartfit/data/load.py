"""Read a cohort folder, check all of it, and return a :class:`Cohort` or every problem."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from cartfit.data.cohort import Cohort
from cartfit.data.csvfile import TextTable, path_kind, read_text_table
from cartfit.data.meta import check_meta
from cartfit.data.observations import STANDARD, check_observations
from cartfit.data.report import Report
from cartfit.data.schema import (
    META_FILE,
    OBSERVATION_COLUMNS,
    OBSERVATIONS_FILE,
    SUBJECT_COLUMNS,
    SUBJECTS_FILE,
)
from cartfit.data.subjects import check_subjects
from cartfit.errors import Problem, ValidationError

_FOLDER = f"a cohort folder with {OBSERVATIONS_FILE}, {SUBJECTS_FILE} and optionally {META_FILE}"


def _cross_check(
    obs: pd.DataFrame, subjects: pd.DataFrame, obs_table: TextTable, subj_report: Report
) -> None:
    """Subjects present in one file only, and subjects without a quantified measurement."""
    obs_report = Report(obs_table.file, subj_report.problems)
    valid = obs[obs["subject"].notna()]
    for subject, line in valid.drop_duplicates("subject")[["subject", "line"]].to_numpy():
        if subject not in subjects.index:
            obs_report.add(
                line,
                "subject",
                f"subject {subject} is not in {SUBJECTS_FILE}",
                f"every subject to have a row in {SUBJECTS_FILE}",
            )
    groups = dict(tuple(valid.groupby("subject", sort=False)))
    expected = "at least one quantified measurement per subject"
    for subject, line in subjects["line"].items():
        rows = groups.get(subject)
        if rows is None and subject not in obs_table.ragged_values("subject"):
            subj_report.add(
                line, "subject", f"subject {subject} has no row in {OBSERVATIONS_FILE}", expected
            )
        elif rows is not None and rows["ok"].all() and (rows["blq"] | rows["value"].isna()).all():
            subj_report.add(
                line,
                "subject",
                f"subject {subject} has no usable observation (all {len(rows)} are below LLOQ)",
                expected,
            )


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        data = p.read_bytes()
        h.update(f"{p.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def load_cohort(
    path: str | os.PathLike[str], *, display_path: str | os.PathLike[str] | None = None
) -> Cohort:
    """Read and validate a cohort folder (DESIGN.md section 2).

    Parameters
    ----------
    path
        Folder with ``observations.csv``, ``subjects.csv`` and optionally ``cohort.yaml``.
    display_path
        Folder name to use in problem messages instead of ``path`` (used when validating a
        temporary folder before it is moved into place).

    Returns
    -------
    Cohort
        The typed, sorted cohort.

    Raises
    ------
    cartfit.errors.ValidationError
        Listing every problem of every file at once, each as
        ``FILE:ROW:COLUMN: what is wrong (what was expected)``; ROW is the line in the file
        (header = 1; 0 for the whole file).
    """
    folder = Path(path)
    shown = Path(display_path) if display_path is not None else folder
    kind = path_kind(folder)
    if kind != "folder":
        message = {"missing": "no such folder", "file": "is a file"}.get(kind, f"is {kind}")
        message = "is not a folder" if kind == "other" else message
        raise ValidationError([Problem(str(shown), 0, "", message, _FOLDER)])
    names = {n: str(shown / n) for n in (OBSERVATIONS_FILE, SUBJECTS_FILE, META_FILE)}
    problems: list[Problem] = []
    obs_table = read_text_table(
        folder / OBSERVATIONS_FILE, names[OBSERVATIONS_FILE], OBSERVATION_COLUMNS, problems
    )
    subj_table = read_text_table(
        folder / SUBJECTS_FILE, names[SUBJECTS_FILE], SUBJECT_COLUMNS, problems
    )
    meta = check_meta(folder / META_FILE, names[META_FILE], problems)
    subjects = check_subjects(subj_table, problems) if subj_table is not None else None
    if obs_table is not None:
        obs, units = check_observations(obs_table, problems)
        if subjects is not None:
            _cross_check(obs, subjects, obs_table, Report(names[SUBJECTS_FILE], problems))
    if problems or obs_table is None or subjects is None:
        order = {name: i for i, name in enumerate(names.values())}
        problems.sort(key=lambda p: (order.get(p.file, 0), p.row))
        raise ValidationError(problems)
    extras = [col for col in obs.columns if col not in (*STANDARD, "ok")]
    obs = obs[[*STANDARD, *extras]].astype(
        {"subject": str, "analyte": str, "unit": str, "blq": bool, "line": int}
    )
    obs = obs.sort_values(["subject", "analyte", "time"], kind="stable").reset_index(drop=True)
    subjects = subjects.sort_index()
    subjects.index = subjects.index.astype(str)
    if meta["name"] is None:
        meta["name"] = shown.resolve().name
    files = [folder / n for n in (OBSERVATIONS_FILE, SUBJECTS_FILE, META_FILE)]
    return Cohort(
        path=folder,
        observations=obs,
        subjects=subjects,
        units=dict(sorted(units.items())),
        meta=meta,
        sha256=_digest([f for f in files if path_kind(f) == "file"]),
    )

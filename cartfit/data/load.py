"""Read a cohort folder, check all of it, and return a :class:`Cohort` or every problem."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from cartfit.data.cohort import Cohort
from cartfit.data.csvfile import read_text_table
from cartfit.data.meta import check_meta
from cartfit.data.observations import STANDARD, check_observations
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


def _cross_check(obs: pd.DataFrame, subjects: pd.DataFrame | None, obs_file: str,
                 subj_file: str, problems: list[Problem]) -> None:
    """Subjects present in one file only, and subjects without a quantified measurement."""
    valid = obs[obs["subject"].notna()]
    if subjects is not None:
        listed = set(subjects.index)
        firsts = valid.drop_duplicates("subject")
        for subject, line in firsts[["subject", "line"]].itertuples(index=False):
            if subject not in listed:
                problems.append(Problem(obs_file, int(line), "subject",
                                        f"subject {subject} is not in {SUBJECTS_FILE}",
                                        f"every subject to have a row in {SUBJECTS_FILE}"))
    groups = dict(tuple(valid.groupby("subject", sort=False)))
    for subject, line in zip(subjects.index if subjects is not None else [],
                             subjects["line"] if subjects is not None else [], strict=True):
        rows = groups.get(subject)
        if rows is None:
            problems.append(Problem(subj_file, int(line), "subject",
                                    f"subject {subject} has no row in {OBSERVATIONS_FILE}",
                                    "at least one quantified measurement per subject"))
        elif rows["ok"].all() and (rows["blq"] | rows["value"].isna()).all():
            problems.append(Problem(subj_file, int(line), "subject",
                                    f"subject {subject} has no usable observation "
                                    f"(all {len(rows)} are below LLOQ)",
                                    "at least one quantified measurement per subject"))


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        data = p.read_bytes()
        h.update(f"{p.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def load_cohort(path: str | os.PathLike[str], *, display_path: str | os.PathLike[str] | None = None
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
    if not folder.exists():
        raise ValidationError([Problem(str(shown), 0, "", "no such folder", _FOLDER)])
    if not folder.is_dir():
        raise ValidationError([Problem(str(shown), 0, "", "is not a folder", _FOLDER)])
    names = {n: str(shown / n) for n in (OBSERVATIONS_FILE, SUBJECTS_FILE, META_FILE)}
    problems: list[Problem] = []
    obs_table = read_text_table(folder / OBSERVATIONS_FILE, names[OBSERVATIONS_FILE],
                                OBSERVATION_COLUMNS, problems)
    subj_table = read_text_table(folder / SUBJECTS_FILE, names[SUBJECTS_FILE], SUBJECT_COLUMNS,
                                 problems)
    meta = check_meta(folder / META_FILE, names[META_FILE], problems)
    subjects = check_subjects(subj_table, problems) if subj_table is not None else None
    if obs_table is not None:
        obs, units = check_observations(obs_table, problems)
        _cross_check(obs, subjects, names[OBSERVATIONS_FILE], names[SUBJECTS_FILE], problems)
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
    return Cohort(path=folder, observations=obs, subjects=subjects, units=dict(sorted(units.items())),
                  meta=meta, sha256=_digest([f for f in files if f.is_file()]))

"""The validated cohort: what every model builder and analysis reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartfit.errors import CartfitError


@dataclass(frozen=True)
class SubjectSeries:
    """The measurements of one subject and analyte, sorted by time.

    Attributes
    ----------
    time
        Days since CAR T infusion.
    value
        Measured values in the analyte's unit (NaN allowed on BLQ rows).
    lloq
        Lower limit of quantification per row (NaN where none).
    blq
        True where the measurement is below LLOQ (censored).
    """

    time: np.ndarray
    value: np.ndarray
    lloq: np.ndarray
    blq: np.ndarray


@dataclass(frozen=True)
class Cohort:
    """A cohort folder read and checked against the data contract (DESIGN.md section 2).

    Attributes
    ----------
    path
        The cohort folder.
    observations
        Long table with columns ``subject`` (str), ``time`` (float, days since infusion),
        ``analyte`` (str), ``value`` (float, NaN allowed on BLQ rows), ``unit`` (str),
        ``lloq`` (float, NaN when none), ``blq`` (bool), ``line`` (int, line in
        ``observations.csv``) and any extra columns; sorted by subject, analyte, time.
    subjects
        One row per subject, indexed by ``subject``: ``dose`` (float, cells), ``costim``
        (``"CD28"``, ``"4-1BB"``, ``"other"`` or None), ``line``, and every other column.
    units
        Unit of each analyte.
    meta
        ``cohort.yaml`` with defaults for absent keys (see :data:`cartfit.data.schema.META_KEYS`).
    sha256
        Hex digest over the bytes of the input files (stable across reads and machines).
    """

    path: Path
    observations: pd.DataFrame = field(repr=False)
    subjects: pd.DataFrame = field(repr=False)
    units: dict[str, str]
    meta: dict[str, Any] = field(repr=False)
    sha256: str

    @property
    def subject_ids(self) -> tuple[str, ...]:
        """Subject ids in sorted order."""
        return tuple(self.subjects.index)

    @property
    def analytes(self) -> tuple[str, ...]:
        """Analytes present in the observations, sorted."""
        return tuple(sorted(self.units))

    @property
    def n_subjects(self) -> int:
        """Number of subjects."""
        return len(self.subjects)

    def select(self, subject_ids: str | Iterable[str]) -> Cohort:
        """A cohort restricted to the given subjects (same path, meta and sha256).

        Raises
        ------
        CartfitError
            When an id is not in the cohort.
        """
        wanted = [subject_ids] if isinstance(subject_ids, str) else list(subject_ids)
        missing = [s for s in wanted if s not in self.subjects.index]
        if missing:
            raise CartfitError(
                f"{self.path}: no subject {', '.join(map(repr, missing))} "
                f"(subjects are {', '.join(self.subject_ids[:10])}"
                f"{', ...' if self.n_subjects > 10 else ''})"
            )
        obs = self.observations[self.observations["subject"].isin(wanted)].reset_index(drop=True)
        units = {a: u for a, u in self.units.items() if a in set(obs["analyte"])}
        return replace(
            self, observations=obs, subjects=self.subjects.loc[sorted(set(wanted))], units=units
        )

    def series(self, subject: str, analyte: str) -> SubjectSeries:
        """Time-sorted measurements of one subject and analyte (empty arrays when none)."""
        obs = self.observations
        rows = obs[(obs["subject"] == subject) & (obs["analyte"] == analyte)]
        return SubjectSeries(
            time=rows["time"].to_numpy(float),
            value=rows["value"].to_numpy(float),
            lloq=rows["lloq"].to_numpy(float),
            blq=rows["blq"].to_numpy(bool),
        )

    def baseline(self, subject: str, analyte: str) -> float:
        """Last quantified value at or before day 0 (NaN when there is none).

        Subjects' ``baseline_tumor`` is not used here; it is a covariate in ``subjects``.
        """
        s = self.series(subject, analyte)
        usable = (s.time <= 0) & ~s.blq & np.isfinite(s.value)
        return float(s.value[usable][-1]) if usable.any() else float("nan")

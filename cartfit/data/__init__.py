"""The data contract (DESIGN.md section 2): read, validate, summarize and import cohorts."""

from cartfit.data.cohort import Cohort, SubjectSeries
from cartfit.data.load import load_cohort
from cartfit.data.nonmem import import_nonmem
from cartfit.data.schema import (
    ANALYTES,
    COSTIMS,
    ID_PATTERN,
    META_DEFAULTS,
    META_KEYS,
    OBSERVATION_COLUMNS,
    RELAPSE_ANTIGENS,
    SUBJECT_COLUMNS,
)
from cartfit.data.summary import summarize

__all__ = [
    "ANALYTES",
    "COSTIMS",
    "Cohort",
    "ID_PATTERN",
    "META_DEFAULTS",
    "META_KEYS",
    "OBSERVATION_COLUMNS",
    "RELAPSE_ANTIGENS",
    "SUBJECT_COLUMNS",
    "SubjectSeries",
    "import_nonmem",
    "load_cohort",
    "summarize",
]

"""The data contract of DESIGN.md section 2: file names, columns, allowed values, defaults.

Every rule a cohort folder must follow is declared here as data, so the readers only apply it
and the error messages can quote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

OBSERVATIONS_FILE = "observations.csv"
SUBJECTS_FILE = "subjects.csv"
META_FILE = "cohort.yaml"

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ID_EXPECTED = (
    "a safe id: letters, digits, '_', '.', '-', starting with a letter or digit, ≤ 64 characters"
)

ANALYTES: dict[str, str] = {
    "car_t": "CAR T cells in peripheral blood",
    "tumor": "total tumour burden",
    "tumor_antigen_neg": "antigen-negative tumour burden (e.g. CD19- blasts)",
    "il6": "interleukin-6 (cytokine)",
    "car_t_memory_fraction": "fraction of blood CAR T cells with a memory phenotype "
    "(e.g. CD45RO+ CCR7+), in 'fraction' (0-1) or '%'",
    "car_t_exhausted_fraction": "fraction of blood CAR T cells with an exhausted phenotype "
    "(e.g. PD-1+ TIM-3+ LAG-3+), in 'fraction' (0-1) or '%'",
}
#: phenotype analytes: a share of the blood CAR T cells, and the value of a whole in each unit
FRACTION_ANALYTES = ("car_t_memory_fraction", "car_t_exhausted_fraction")
FRACTION_UNITS = {"fraction": 1.0, "%": 100.0}
COSTIMS = ("CD28", "4-1BB", "other")
RELAPSE_ANTIGENS = ("pos", "neg")


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    Attributes
    ----------
    name
        Header spelling (case-sensitive).
    required
        Whether the header must contain it.
    meaning
        One line for error messages and the documentation.
    """

    name: str
    required: bool
    meaning: str


OBSERVATION_COLUMNS: tuple[Column, ...] = (
    Column("subject", True, "subject id"),
    Column("time", True, "days since CAR T infusion, negative before it"),
    Column("analyte", True, "one of " + ", ".join(ANALYTES)),
    Column("value", True, "measured value >= 0 in the row's unit, empty only when blq=1"),
    Column("unit", True, "unit of `value`, one per analyte"),
    Column("lloq", False, "lower limit of quantification, > 0"),
    Column("blq", False, "1 = below LLOQ, 0 = quantified; derived from value < lloq when absent"),
)

SUBJECT_COLUMNS: tuple[Column, ...] = (
    Column("subject", True, "subject id"),
    Column("dose", True, "CAR T cells infused, > 0"),
    Column("costim", False, "co-stimulatory domain: " + ", ".join(COSTIMS)),
    Column("product", False, "product name"),
    Column("disease", False, "disease"),
    Column("lymphodepletion", False, "lymphodepletion regimen or intensity"),
    Column("baseline_tumor", False, "tumour burden at infusion, >= 0, in the tumour unit"),
    Column("relapse_day", False, "observed relapse day, >= 0"),
    Column("relapse_antigen", False, "antigen status at relapse: pos or neg"),
)


@dataclass(frozen=True)
class MetaKey:
    """One key of ``cohort.yaml``: its default, whether it is a positive number, its meaning."""

    name: str
    default: Any
    positive_number: bool
    meaning: str


META_KEYS: tuple[MetaKey, ...] = (
    MetaKey("name", None, False, "short cohort name; the folder name by default"),
    MetaKey("description", "", False, "one paragraph on what the cohort is"),
    MetaKey("source", "", False, "provenance: paper, repository, commit"),
    MetaKey("license", "", False, "licence of the data"),
    MetaKey("notes", "", False, "free text"),
    MetaKey(
        "car_t_cells_per_unit",
        None,
        True,
        "CAR T cells per unit of the car_t measurement, used only to report in cells",
    ),
    MetaKey(
        "tumor_cells_per_unit",
        None,
        True,
        "tumour cells per unit of the tumor measurement, used only to report in cells",
    ),
    MetaKey(
        "relapse_threshold",
        None,
        True,
        "tumour level (tumor unit) above which a return of the tumour counts as relapse",
    ),
)
META_KEYS += (
    MetaKey(
        "priors",
        None,
        False,
        "prior overrides for this cohort, per model parameter: "
        "{name: {median: number > 0, log_sd: number > 0}} (e.g. in-vitro growth rates)",
    ),
)

META_DEFAULTS: dict[str, Any] = {k.name: k.default for k in META_KEYS}

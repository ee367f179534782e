r"""The clinical design of a simulated cohort: units, assays, doses, visits and outcome rules.

The virtual cohort is a CD19 CAR T study in relapsed/refractory B-cell acute lymphoblastic
leukaemia (B-ALL):

* CAR T in peripheral blood by qPCR, ``copies/ug`` (transgene copies per µg genomic DNA),
  LLOQ 5 copies/µg, log-scale SD 0.4;
* tumour burden as bone-marrow blasts, ``% marrow blasts`` (morphology/flow), with the
  antigen-negative (CD19−) blasts reported in the same unit; LLOQ 0.01 % (flow MRD,
  :math:`10^{-4}`), log-scale SD 0.2 (total) and 0.3 (CD19− fraction);
* relapse = return to at least 5 % blasts after a complete remission (< 5 %);
* dose log-uniform on :math:`[10^8, 6 \times 10^8]` cells (two significant digits), CAR T level
  at infusion :math:`C(0) = c_D \cdot \mathrm{dose}` with :math:`c_D` =
  :data:`CAR_T_PER_CELL_INFUSED` copies/µg per cell (so a typical dose gives a few copies/µg,
  about 4,000-fold below a typical peak);
* where the schedule phenotypes CAR T (multi-fate model only, ``phenotype_days``): the memory
  and exhausted shares of blood CAR T cells by flow cytometry, as a ``fraction``, SD 0.2 on the
  log-odds scale, LLOQ 0.001; only at visits whose CAR T result is quantified (too few cells
  to phenotype otherwise).

Conversion factors to cell numbers (used only to report in cells and to count antigen-negative
cells): one copy/µg ≈ 3.3×10⁴ circulating CAR T cells (one transgene copy per cell, 6.6 pg DNA
per cell, 5×10⁹ circulating leukocytes after lymphodepletion); 1 % marrow blasts ≈ 10¹⁰
leukaemic cells (about 10¹² nucleated marrow cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cartfit.data.schema import FRACTION_ANALYTES
from cartfit.simulate.measurement import Assay
from cartfit.simulate.population import CAR_T_SCALE, TUMOR_SCALE
from cartfit.simulate.schedule import VisitSchedule

CAR_T_UNIT = "copies/ug"
TUMOR_UNIT = "% marrow blasts"
PHENOTYPE_UNIT = "fraction"
CAR_T_PER_CELL_INFUSED = 1.0e-8
"""CAR T level at infusion (copies/µg) per CAR T cell infused."""


def _assays() -> dict[str, Assay]:
    return {
        "car_t": Assay("car_t", CAR_T_UNIT, CAR_T_SCALE, log_sd=0.4, lloq=5.0),
        "tumor": Assay("tumor", TUMOR_UNIT, TUMOR_SCALE, log_sd=0.2, lloq=0.01),
        "tumor_antigen_neg": Assay(
            "tumor_antigen_neg", TUMOR_UNIT, TUMOR_SCALE, log_sd=0.3, lloq=0.01
        ),
        **{
            a: Assay(a, PHENOTYPE_UNIT, 1.0, log_sd=0.2, lloq=0.001, upper=1.0)
            for a in FRACTION_ANALYTES
        },
    }


@dataclass(frozen=True)
class CohortDesign:
    """Everything about a simulated cohort that is not a model parameter.

    Attributes
    ----------
    schedule
        Visit schedule (nominal days, jitter, missed visits, pre-infusion assessments).
    assays
        Analyte -> assay (unit, scale, noise, LLOQ).
    dose_range
        Bounds of the log-uniform dose (cells).
    car_t_per_cell_infused
        CAR T level at infusion per cell infused (copies/µg per cell).
    car_t_cells_per_unit, tumor_cells_per_unit
        Cells per measured unit (``cohort.yaml``).
    relapse_threshold
        Tumour level (measured units) separating remission from relapse (``cohort.yaml``).
    response_day
        Latest nominal day at which a remission counts as response; a subject who is not in
        remission by then is a non-responder and leaves the study after that visit.
    antigen_neg_fraction
        A relapse is antigen-negative when the antigen-negative share of the tumour at the
        relapse visit is at least this fraction.
    clone_birth_rate, established_cells, clone_history_days
        Antigen-negative lineages (escape model only): division rate (1/day), size at which a
        clone is followed deterministically, and how long before infusion they start to arise.
    disease
        Written to ``subjects.csv``.
    products
        Costim -> product name written to ``subjects.csv``.
    """

    schedule: VisitSchedule = field(default_factory=VisitSchedule)
    assays: dict[str, Assay] = field(default_factory=_assays)
    dose_range: tuple[float, float] = (1.0e8, 6.0e8)
    car_t_per_cell_infused: float = CAR_T_PER_CELL_INFUSED
    car_t_cells_per_unit: float = 3.3e4
    tumor_cells_per_unit: float = 1.0e10
    relapse_threshold: float = 5.0
    response_day: float = 90.0
    antigen_neg_fraction: float = 0.5
    clone_birth_rate: float = 0.5
    established_cells: float = 1000.0
    clone_history_days: float = 365.0
    disease: str = "B-ALL"
    products: dict[str, str] = field(
        default_factory=lambda: {"4-1BB": "CAR19-BBz", "CD28": "CAR19-28z"}
    )

    @property
    def car_t_scale(self) -> float:
        """Measured CAR T units per scaled unit."""
        return self.assays["car_t"].scale

    @property
    def tumor_scale(self) -> float:
        """Measured tumour units per scaled unit."""
        return self.assays["tumor"].scale

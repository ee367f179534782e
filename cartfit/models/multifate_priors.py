"""Parameters, default priors and co-stimulation presets of the multi-fate model.

Every prior is ``log(value) ~ Normal(log(median), log_sd)``. Sources of the medians:

* Kirouac et al., Nat Biotechnol 41:1606 (2023): 36 fitted parameter sets of an
  effector/memory/exhausted model of tisagenlecleucel (a 4-1BB product) in CLL (12 complete,
  12 partial, 12 non-responders; ``shared/data/real/kirouac2023-fitted-parameter-sets``).
  Pooled medians (ranges): effector proliferation ``mu_e`` 0.55/day (0.06–1.0), effector death
  ``d_e2`` 0.10/day (0.001–1), exhaustion ``kex`` 0.15/day (0.002–1), exhausted death ``d_x``
  0.06/day (0.001–1), memory proliferation ``mu_m`` 0.38/day (0.001–1), antigen switch level
  ``B50`` 2.6e9 cells (1e6–1e10) against tumour burdens ``B_max`` of 1e8–1e12 cells, and
  phenotype fractions of the infused product ``f_Tm`` 4.7, ``f_Te1 + f_Te2`` 53,
  ``f_Tx`` 17 (relative units).
* Stein et al., CPT Pharmacometrics Syst Pharmacol 8:285 (2019), tisagenlecleucel in 90
  patients: 3,900-fold expansion to Tmax 9.3 days (net ≈ 0.9/day), initial decline
  0.16/day, a persisting fraction 0.0079 declining at 0.0032/day.
* Kochenderfer et al., J Clin Oncol 35:1803 (2017): serum IL-15 rises several-fold after
  cyclophosphamide/fludarabine; lymphocytes recover over weeks.

The mapping from those sources to each parameter is in each ``description``; the widths
(``log_sd``) cover the published ranges. The co-stimulation presets shift the medians of six
parameters by factors of about 2–3 in the directions the literature reports ("sprint" versus
"marathon": Kawalekar et al., Immunity 44:380 (2016); Long et al., Nat Med 21:581 (2015);
Cappell & Kochenderfer, Nat Rev Clin Oncol 18:715 (2021)); the factors are a modelling
choice, not fitted values.
"""

from __future__ import annotations

from cartfit.models.base import Parameter

PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "antigen_half_saturation",
        "K_A",
        "scaled tumour",
        "activation threshold: antigen level of half-maximal drive (Kirouac B50 / B_max ≈ 0.01–1)",
        0.1,
        1.5,
    ),
    Parameter(
        "effector_proliferation",
        "β_E",
        "1/day",
        "antigen-driven effector proliferation (Kirouac mu_e; Stein net 0.9/day)",
        1.0,
        0.7,
    ),
    Parameter(
        "effector_death",
        "d_E",
        "1/day",
        "effector death (Kirouac d_e2 0.10; Stein initial decline 0.16/day)",
        0.15,
        0.7,
    ),
    Parameter(
        "memory_formation",
        "k_EM",
        "1/day",
        "effector-to-memory conversion without antigen (Stein: ~1 % of the peak "
        "persists, k_EM/(d_E + k_EM) ≈ 0.01–0.1)",
        0.02,
        1.0,
    ),
    Parameter(
        "exhaustion_rate",
        "k_EX",
        "1/day",
        "antigen-driven exhaustion of effectors (Kirouac kex 0.15/day)",
        0.1,
        1.0,
    ),
    Parameter(
        "memory_reactivation",
        "k_ME",
        "1/day",
        "antigen-driven memory-to-effector conversion (Kirouac mu_m 0.38/day)",
        0.5,
        1.0,
    ),
    Parameter(
        "memory_death",
        "d_M",
        "1/day",
        "memory death (Stein: persisting cells decline net 0.0032/day)",
        0.02,
        1.0,
    ),
    Parameter(
        "exhausted_death", "d_X", "1/day", "exhausted-cell death (Kirouac d_x 0.06/day)", 0.1, 1.0
    ),
    Parameter(
        "kill_rate",
        "k",
        "1/(scaled CAR T · day)",
        "tumour killing per unit effector level",
        0.5,
        1.0,
    ),
    Parameter(
        "homeostatic_rate",
        "α_h",
        "1/day",
        "maximal cytokine-driven homeostatic proliferation of memory",
        0.03,
        1.0,
    ),
    Parameter(
        "cytokine_half_saturation",
        "K_C",
        "× baseline cytokine",
        "cytokine level of half-maximal homeostatic proliferation",
        1.0,
        1.0,
    ),
    Parameter(
        "lymphodepletion",
        "D",
        "fraction",
        "lymphodepletion depth at infusion in [0, 1] (subject covariate)",
        0.9,
        0.1,
    ),
    Parameter(
        "cytokine_consumption_ratio",
        "ρ",
        "dimensionless",
        "lymphocyte consumption over clearance γL_0/δ (IL-15 rises ≈ 3× at D = 0.9)",
        3.0,
        1.0,
    ),
    Parameter(
        "lymphocyte_recovery_time",
        "τ",
        "day",
        "time constant of lymphocyte recovery after lymphodepletion",
        14.0,
        0.5,
    ),
)

#: Phenotype fractions of the infused product (Kirouac f_Tm : f_Te : f_Tx ≈ 6 : 71 : 23 %).
INITIAL_FRACTIONS = {"memory": 0.06, "exhausted": 0.23}

#: Prior overrides ``parameter -> (median, log_sd)`` per co-stimulation domain.
COSTIM_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    # "sprint": low activation threshold, fast proliferation, exhaustion and death
    "CD28": {
        "antigen_half_saturation": (0.03, 0.7),
        "effector_proliferation": (1.5, 0.4),
        "exhaustion_rate": (0.3, 0.5),
        "effector_death": (0.3, 0.5),
        "memory_formation": (0.01, 0.7),
        "memory_death": (0.05, 0.7),
    },
    # "marathon": higher threshold, slower proliferation, little exhaustion, durable memory
    "4-1BB": {
        "antigen_half_saturation": (0.3, 0.7),
        "effector_proliferation": (0.8, 0.4),
        "exhaustion_rate": (0.03, 0.5),
        "effector_death": (0.1, 0.5),
        "memory_formation": (0.05, 0.7),
        "memory_death": (0.01, 0.7),
    },
}

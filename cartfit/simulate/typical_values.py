r"""Typical values of the virtual patients of each model and growth law (the population registry).

Values are in scaled units (CAR T / :data:`~cartfit.simulate.population.CAR_T_SCALE` copies/µg,
tumour / :data:`~cartfit.simulate.population.TUMOR_SCALE` % marrow blasts) for a 4-1BB product;
see :mod:`cartfit.simulate.population` for how a subject is drawn around them. They were chosen
so that a typical 4-1BB subject peaks at about 2×10⁴ copies/µg around day 7 and contracts at
about 0.1/day (tisagenlecleucel: Cmax 24,000 copies/µg at day 9.3, AUC0–28 1.7×10⁵
copies·day/µg, initial decline 0.16/day; Stein et al., CPT Pharmacometrics Syst Pharmacol
8:285, 2019), CD28 subjects peak earlier and contract faster (axi-cel peaks around day 7–9;
Kimmel et al., Proc R Soc B 288:20210229, 2021), about 10 % are primary non-responders and
about half of the responders relapse within a year (B-ALL).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cartfit.models.base import ODEModel
from cartfit.simulate.population import PopulationSpec

_FROZEN = MappingProxyType

GROWTH_POPULATIONS: Mapping[str, PopulationSpec] = _FROZEN(
    {
        "exponential": PopulationSpec(
            typical={"growth_rate": 0.004},
            omega={"growth_rate": 0.5},
        ),
        "logistic": PopulationSpec(
            typical={"growth_rate": 0.025, "carrying_capacity": 2.0},
            omega={"growth_rate": 0.5, "carrying_capacity": 0.08},
            dims={"carrying_capacity": (0, 1)},
        ),
        "gompertz": PopulationSpec(
            typical={"growth_rate": 0.005, "carrying_capacity": 1.9},
            omega={"growth_rate": 0.5, "carrying_capacity": 0.08},
            dims={"carrying_capacity": (0, 1)},
        ),
    }
)
"""Growth-law parameters; carrying capacity 2.0 scaled = 80 % blasts."""

# CAR T kinetics and killing shared by the predator–prey and escape models (4-1BB typical).
_CAR_T = PopulationSpec(
    typical={"kill_rate": 0.7, "proliferation_rate": 2.0, "death_rate": 0.1},
    omega={"kill_rate": 0.4, "proliferation_rate": 0.3, "death_rate": 0.35},
    costim_effect={"CD28": {"proliferation_rate": 1.3, "death_rate": 1.6}},
    dims={"kill_rate": (-1, 0), "proliferation_rate": (0, -1)},
    low_fitness_fraction=0.15,
    low_fitness_effect={"proliferation_rate": 0.12},
)
# Antigen escape: bystander killing of antigen-negative cells about 3 % of on-target killing;
# antigen loss 1e-11 per cell per day: a leukaemia of ~4e11 cells makes a few antigen-negative
# cells a day, but near its plateau only ~1 % of their lineages survive (net growth / division
# rate), so by chance and by subject (omega 1) a subject carries from none to a few thousand
# antigen-negative cells at infusion. Whether they win depends on how deep CAR T kill the
# antigen-positive tumour: ln(T_A/T_-) at infusion is about 20.
_ESCAPE = PopulationSpec(
    typical={"off_target_kill_rate": 0.02, "antigen_loss_rate": 1e-11},
    omega={"off_target_kill_rate": 0.5, "antigen_loss_rate": 1.0},
    dims={"off_target_kill_rate": (-1, 0)},
)


def _multifate() -> PopulationSpec:
    """Multi-fate model: the model's prior medians with its 4-1BB preset as typical values.

    Adjusted so that a typical 4-1BB subject peaks at ~1.3e4 copies/µg near day 13 and keeps
    ~10³ copies/µg of memory at day 90: effector proliferation 1.2/day, killing 1.0,
    homeostatic proliferation 0.005/day, memory formation 0.02/day. CD28 multiplies the six
    preset parameters by the ratios of the two presets (effector proliferation × 1.875,
    exhaustion × 10, memory formation × 0.2, ...), so a simulated CD28 cohort differs from a
    4-1BB one as the fit's priors say it should. 16 subjects (seed 11): CD28 peaks median
    4.1e4 copies/µg (4e3-1e5) against 1.3e4 (5e3-2e4) for 4-1BB.
    """
    from cartfit.models.multifate_priors import COSTIM_PRESETS, PARAMETERS

    ref, sprint = COSTIM_PRESETS["4-1BB"], COSTIM_PRESETS["CD28"]
    typical = {p.name: p.median for p in PARAMETERS} | {k: v[0] for k, v in ref.items()}
    typical |= {
        "effector_proliferation": 1.2,
        "kill_rate": 1.0,
        "homeostatic_rate": 0.005,
        "memory_formation": 0.02,
    }
    cd28 = {k: sprint[k][0] / ref[k][0] for k in sprint}
    omega = {name: 0.3 for name in typical} | {
        "lymphodepletion": 0.03,
        "cytokine_half_saturation": 0.2,
        "cytokine_consumption_ratio": 0.2,
        "lymphocyte_recovery_time": 0.2,
    }
    return PopulationSpec(
        typical=typical,
        omega=omega,
        costim_effect={"CD28": cd28},
        dims={"kill_rate": (-1, 0), "antigen_half_saturation": (0, 1)},
        low_fitness_fraction=0.15,
        low_fitness_effect={"effector_proliferation": 0.4},
    )


MODEL_POPULATIONS: Mapping[str, PopulationSpec] = _FROZEN(
    {"predator_prey": _CAR_T, "escape": _CAR_T.merged(_ESCAPE), "multifate": _multifate()}
)
"""Model parameters (the growth law's come from :data:`GROWTH_POPULATIONS`)."""


def population_for(model: ODEModel) -> PopulationSpec:
    """The population spec of a model composed with its growth law.

    Raises
    ------
    ValueError
        If no spec exists or its parameter names differ from ``model.parameter_names``.
    """
    if model.name not in MODEL_POPULATIONS or model.growth not in GROWTH_POPULATIONS:
        raise ValueError(
            f"no virtual-patient population for model {model.name!r} with growth "
            f"{model.growth!r}; defined for models {sorted(MODEL_POPULATIONS)} and growth laws "
            f"{sorted(GROWTH_POPULATIONS)}"
        )
    spec = GROWTH_POPULATIONS[model.growth].merged(MODEL_POPULATIONS[model.name])
    names, keys = set(model.parameter_names), set(spec.typical)
    if names != keys:
        raise ValueError(
            f"population of {model.name!r}: parameters without a typical value "
            f"{sorted(names - keys)}, typical values without a parameter {sorted(keys - names)}"
        )
    return spec

r"""Between-subject variability and costim effects of virtual patients around typical values.

Each subject's parameter :math:`\theta_{i,j}` (scaled units, see :mod:`cartfit.models.base`) is

.. math::

    \ln \theta_{i,j} = \ln \theta^{\mathrm{typ}}_j + \ln f_{j}(\mathrm{costim}_i)
                       + \omega_j\, \eta_{i,j}, \qquad \eta_{i,j} \sim \mathcal N(0, 1)

with :math:`\theta^{\mathrm{typ}}` the typical value of a 4-1BB product, :math:`f_j` the
multiplicative costim effect (1 for 4-1BB; CD28 "sprint": faster expansion, higher and earlier
peak, faster contraction) and :math:`\omega_j` the log-scale between-subject SD. A latent
low-fitness class (probability :math:`\pi`, e.g. 15 %) multiplies some typical values by a
further factor (e.g. proliferation × 0.12): these products barely expand and give the primary
non-responders seen in every CAR T trial.

Scaled units: CAR T in units of :data:`CAR_T_SCALE` copies/µg (about a typical peak), tumour in
units of :data:`TUMOR_SCALE` % marrow blasts (a typical baseline). A parameter's value in
measured units is ``scaled * car_t_scale**a * tumor_scale**b`` with the exponents ``(a, b)`` of
:attr:`PopulationSpec.dims` (e.g. a kill rate per scaled CAR T level has ``a = -1``).

The typical values of each model are in :mod:`cartfit.simulate.typical_values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

CAR_T_SCALE = 1.0e4
"""Measured CAR T units (copies/µg) per scaled unit."""
TUMOR_SCALE = 40.0
"""Measured tumour units (% marrow blasts) per scaled unit."""
COSTIMS = ("4-1BB", "CD28")


@dataclass(frozen=True)
class PopulationSpec:
    """Typical values (scaled units, 4-1BB), log-scale SDs, costim factors and unit exponents.

    Attributes
    ----------
    typical
        Parameter name -> typical value in scaled units.
    omega
        Parameter name -> between-subject SD of the log value (0 = no variability).
    costim_effect
        Costim -> parameter name -> multiplicative factor on the typical value (default 1).
    dims
        Parameter name -> ``(a, b)``: measured = scaled × car_t_scale**a × tumor_scale**b.
    low_fitness_fraction
        Probability that a subject's CAR T product has low fitness (a latent class).
    low_fitness_effect
        Parameter name -> multiplicative factor applied in the low-fitness class.
    """

    typical: Mapping[str, float]
    omega: Mapping[str, float]
    costim_effect: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    dims: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    low_fitness_fraction: float = 0.0
    low_fitness_effect: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.omega) != set(self.typical):
            raise ValueError(
                f"population: omega keys {sorted(self.omega)} differ from typical keys "
                f"{sorted(self.typical)}"
            )
        effects = {**self.costim_effect, "low fitness": self.low_fitness_effect}
        for what, effect in effects.items():
            unknown = set(effect) - set(self.typical)
            if unknown:
                raise ValueError(f"population: {what} effect on unknown parameters {unknown}")
        if not 0.0 <= self.low_fitness_fraction < 1.0:
            raise ValueError("population: low_fitness_fraction must lie in [0, 1)")

    def merged(self, other: PopulationSpec) -> PopulationSpec:
        """Union of two specs (growth law + model); a name defined twice is an error."""
        twice = set(self.typical) & set(other.typical)
        if twice:
            raise ValueError(f"population: parameters defined twice: {sorted(twice)}")
        costims = set(self.costim_effect) | set(other.costim_effect)
        return PopulationSpec(
            typical={**self.typical, **other.typical},
            omega={**self.omega, **other.omega},
            costim_effect={
                c: {**self.costim_effect.get(c, {}), **other.costim_effect.get(c, {})}
                for c in sorted(costims)
            },
            dims={**self.dims, **other.dims},
            low_fitness_fraction=max(self.low_fitness_fraction, other.low_fitness_fraction),
            low_fitness_effect={**self.low_fitness_effect, **other.low_fitness_effect},
        )


def draw_parameters(
    spec: PopulationSpec, names: tuple[str, ...], costim: str, rng: np.random.Generator
) -> tuple[dict[str, float], bool]:
    r"""One subject's parameters (scaled units) and whether it is in the low-fitness class.

    The log-normal model of this module; in the low-fitness class (probability
    ``spec.low_fitness_fraction``) the typical values are also multiplied by
    ``spec.low_fitness_effect``. ``names`` fixes the order of the draws, so a subject's values
    do not depend on dict order.
    """
    if costim not in COSTIMS:
        raise ValueError(f"costim {costim!r}; expected one of {COSTIMS}")
    eta = rng.standard_normal(len(names))
    low = bool(rng.uniform() < spec.low_fitness_fraction)
    effect = spec.costim_effect.get(costim, {})
    fitness = spec.low_fitness_effect if low else {}
    params = {
        name: float(
            spec.typical[name]
            * effect.get(name, 1.0)
            * fitness.get(name, 1.0)
            * np.exp(spec.omega[name] * z)
        )
        for name, z in zip(names, eta, strict=True)
    }
    return params, low


def to_measured(
    spec: PopulationSpec, params: Mapping[str, float], car_t_scale: float, tumor_scale: float
) -> dict[str, float]:
    """Parameters in measured units: ``scaled * car_t_scale**a * tumor_scale**b``."""
    out = {}
    for name, value in params.items():
        a, b = spec.dims.get(name, (0, 0))
        out[name] = float(value * car_t_scale**a * tumor_scale**b)
    return out

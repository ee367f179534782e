"""Mechanistic ODE models and their registry."""

from cartfit.growth import get_growth_law
from cartfit.models.base import ODEModel, Parameter
from cartfit.models.escape import make_escape
from cartfit.models.multifate import make_multifate
from cartfit.models.predator_prey import make_predator_prey
from cartfit.models.tumor_only import make_tumor_only

_FACTORIES = {
    "predator_prey": make_predator_prey,
    "multifate": make_multifate,
    "escape": make_escape,
}
_CACHE: dict[tuple[str, str], ODEModel] = {}


def get_model(name: str, growth: str = "gompertz") -> ODEModel:
    """Return the model ``name`` composed with growth law ``growth`` (built once, then cached)."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(_FACTORIES)}")
    key = (name, growth)
    if key not in _CACHE:
        _CACHE[key] = _FACTORIES[name](get_growth_law(growth))
    return _CACHE[key]


MODEL_NAMES = tuple(_FACTORIES)

__all__ = [
    "MODEL_NAMES",
    "ODEModel",
    "Parameter",
    "get_model",
    "make_escape",
    "make_multifate",
    "make_predator_prey",
    "make_tumor_only",
]

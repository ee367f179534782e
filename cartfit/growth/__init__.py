"""Tumour growth laws and their registry."""

from cartfit.growth.base import GrowthLaw
from cartfit.growth.exponential import EXPONENTIAL
from cartfit.growth.gompertz import GOMPERTZ
from cartfit.growth.logistic import LOGISTIC

GROWTH_LAWS: dict[str, GrowthLaw] = {g.name: g for g in (EXPONENTIAL, LOGISTIC, GOMPERTZ)}


def get_growth_law(name: str) -> GrowthLaw:
    """Look up a growth law by name, with an error that lists the valid names."""
    try:
        return GROWTH_LAWS[name]
    except KeyError:
        raise ValueError(
            f"unknown growth law {name!r}; expected one of {sorted(GROWTH_LAWS)}"
        ) from None


__all__ = ["GROWTH_LAWS", "EXPONENTIAL", "GOMPERTZ", "LOGISTIC", "GrowthLaw", "get_growth_law"]

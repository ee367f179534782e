"""A positive model parameter with its unit and default prior (shared by models and growth laws)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parameter:
    """A positive model parameter with its meaning, unit and log-normal default prior.

    The prior is ``log(value) ~ Normal(log(median), log_sd)``.
    """

    name: str
    symbol: str
    unit: str
    description: str
    median: float
    log_sd: float

    def __post_init__(self) -> None:
        if not self.median > 0 or not self.log_sd > 0:
            raise ValueError(f"parameter {self.name!r}: prior median and log_sd must be > 0")

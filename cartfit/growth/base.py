"""The tumour growth-law object: per-capita rate in log coordinates and its closed form.

A growth law ``g(B)`` enters every tumour equation through its per-capita rate
``G(u) = g(B)/B`` with ``u = ln B`` (scaled units), so that ``du/dt = G(u) - (killing)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cartfit.parameters import Parameter


@dataclass(frozen=True)
class GrowthLaw:
    """A tumour growth law.

    Attributes
    ----------
    name
        Registry name (``exponential``, ``logistic``, ``gompertz``).
    parameters
        Its positive parameters; they come first in the ``params`` vector of every model
        that composes the law.
    per_capita
        numba function ``G(u, params) -> float``: ``g(B)/B`` at ``u = ln B``.
    per_capita_jac
        numba function ``(u, params, jp, row) -> (G, dG/du)`` that also writes ``dG/dparams``
        into ``jp[row, :n_params]``. ``params`` is the whole parameter vector of the composing
        model (the law's parameters come first), passed without slicing: a slice costs two
        atomic reference-count updates in the solver's innermost call.
    log_solution
        ``log_solution(t, log_b0, params, xp) -> ln B(t)``: closed-form untreated growth from
        ``ln B(0) = log_b0``; ``params`` is a sequence of the law's parameters and ``xp`` is
        ``numpy`` or ``pytensor.tensor``. Used for pre-infusion tumour data (``t < 0``).
    log_solution_grad
        numba function ``(t, log_b0, params, d_log_p) -> (ln B(t), d ln B / d log_b0)`` at one
        time that also writes the derivatives in the log parameters into ``d_log_p``: the
        compiled likelihood's pre-infusion rows.
    equation
        LaTeX of ``dB/dt = g(B)``.
    inflection
        Tumour size at the inflection point of the closed form as a function of the
        parameters (``None`` for exponential growth, which has none).
    """

    name: str
    parameters: tuple[Parameter, ...]
    per_capita: Callable[..., float]
    per_capita_jac: Callable[..., float]
    log_solution: Callable[..., Any]
    log_solution_grad: Callable[..., Any]
    equation: str
    inflection: Callable[..., float] | None = None

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)


GROWTH_RATE = Parameter(
    name="growth_rate",
    symbol="r",
    unit="1/day",
    description="tumour growth rate (per-capita rate at small burden)",
    median=0.03,
    log_sd=1.0,
)
CARRYING_CAPACITY = Parameter(
    name="carrying_capacity",
    symbol="K",
    unit="× reference tumour burden",
    description="tumour carrying capacity, in units of the cohort's reference burden",
    # the reference burden is the median of the subjects' largest measured burdens, so the
    # capacity is a few times it: median 3, 95 % between 0.4 and 21. A vaguer prior (median 10,
    # log-SD 1.5) let Gompertz fits of data/example put chains where the tumour ignores K.
    median=3.0,
    log_sd=1.0,
)

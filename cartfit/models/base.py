"""The declarative model object shared by the reference solver and the inference solver.

Every mechanistic model of cartfit is an :class:`ODEModel`: a lookup name, the names of its
(log-scale) states, its parameters with units and default priors, a pure right-hand side
``rhs(t, y, params)`` and its Jacobians ``jac(t, y, params) -> (J_y, J_p)``, both compiled with
numba so that the same functions feed SciPy (reference) and the compiled sensitivity solver.

Conventions
-----------
* ``y`` holds the natural logarithms of the states in *scaled* units (each analyte divided by
  a reference level of the cohort), so the sampler sees O(1) numbers over ten orders of
  magnitude and no state can become negative.
* ``params`` holds the parameters on their natural (positive) scale, in the order of
  :attr:`ODEModel.parameters`; ``J_p`` is the Jacobian with respect to those natural values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from cartfit.models.logsum import LogSumRatio
from cartfit.parameters import Parameter


@dataclass(frozen=True)
class ODEModel:
    """A mechanistic ODE model in log-state coordinates.

    Attributes
    ----------
    name
        Registry name, e.g. ``"predator_prey"``.
    growth
        Name of the tumour growth law composed into the model (``None`` if not applicable).
    states
        Names of the log states, in the order of ``y``.
    parameters
        Positive parameters in the order of ``params``.
    rhs
        ``rhs(t, y, params) -> dy/dt`` (numba-compiled, pure).
    jac
        ``jac(t, y, params) -> (J_y, J_p)`` with shapes ``(n_states, n_states)`` and
        ``(n_states, n_params)`` (numba-compiled, pure).
    observables
        Analyte name -> :class:`~cartfit.models.logsum.LogSumRatio`, called as
        ``f(log_states, xp)`` for the log of the measured quantity (scaled units) from an array
        whose last axis is the state axis; ``xp`` is ``numpy`` or ``pytensor.tensor`` so the
        same expression serves both, and its index sets serve the compiled likelihood.
    equations
        The equations in LaTeX, for the report's methods page.
    rhs_into, jac_into, rhs_jac_into
        Optional allocation-free kernels ``rhs_into(t, y, params, out)``,
        ``jac_into(t, y, params, j_y, j_p)`` and ``rhs_jac_into(t, y, params, out, j_y, j_p)``
        (``j_y``, ``j_p`` zeroed by the caller) computing the same quantities as ``rhs`` and
        ``jac``. ``y`` and ``out`` may be longer than the state vector (the solver passes its
        augmented vector with the sensitivities, unsliced): a kernel reads and writes only
        entries ``0 .. n_states - 1``. With ``rhs_into`` and either of the others the
        inference solver uses them (about 2x faster than ``rhs``/``jac`` for small systems;
        the fused one takes the exponentials of the log states once per stage instead of
        twice, another 10 %), and ``rhs``/``jac`` must be thin wrappers of them
        (:func:`pure_kernels`).
    """

    name: str
    growth: str | None
    states: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    rhs: Callable[..., Any]
    jac: Callable[..., Any]
    observables: Mapping[str, LogSumRatio]
    equations: str = ""
    extras: Mapping[str, Any] = field(default_factory=dict)
    rhs_into: Callable[..., Any] | None = None
    jac_into: Callable[..., Any] | None = None
    rhs_jac_into: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r}: duplicate parameter names in {names}")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_params(self) -> int:
        return len(self.parameters)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(
            f"model {self.name!r} has no parameter {name!r}; it has {self.parameter_names}"
        )

    def pack(self, values: Mapping[str, float]) -> Any:
        """Order a mapping of parameter values as the ``params`` vector of :attr:`rhs`."""
        import numpy as np

        missing = set(self.parameter_names) - set(values)
        extra = set(values) - set(self.parameter_names)
        if missing or extra:
            raise ValueError(
                f"model {self.name!r}: parameters do not match; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        return np.array([float(values[n]) for n in self.parameter_names])


def check_priors(
    model_name: str, parameters: tuple[Parameter, ...], priors: Mapping[str, Any]
) -> None:
    """Raise if the prior keys and the parameter names are not the same set."""
    names = {p.name for p in parameters}
    keys = set(priors)
    if names != keys:
        raise ValueError(
            f"{model_name}: prior keys and parameters differ; "
            f"parameters without a prior {sorted(names - keys)}, "
            f"priors without a parameter {sorted(keys - names)}"
        )


def fused_kernel(rhs_into: Callable, jac_into: Callable) -> Callable:
    """``rhs_jac_into(t, y, p, out, jy, jp)`` from separate in-place kernels ``rhs_into`` and
    ``jac_into`` (for models without a fused kernel of their own)."""

    @numba.njit(error_model="numpy")
    def rhs_jac_into(t, y, p, out, jy, jp):
        rhs_into(t, y, p, out)
        jac_into(t, y, p, jy, jp)

    return rhs_jac_into


def pure_kernels(rhs_into: Callable, rhs_jac_into: Callable, n_states: int, n_params: int):
    """``(rhs, jac)`` returning new arrays, from a model's in-place kernels
    ``rhs_into(t, y, p, out)`` and ``rhs_jac_into(t, y, p, out, jy, jp)`` (which expects zeroed
    ``jy``, ``jp``; :func:`fused_kernel` makes one from a separate ``jac_into``); the solver
    calls the in-place ones, tests and references the pure ones."""

    @numba.njit(error_model="numpy")
    def rhs(t, y, params):
        dy = np.empty(n_states)
        rhs_into(t, y, params, dy)
        return dy

    @numba.njit(error_model="numpy")
    def jac(t, y, params):
        jy = np.zeros((n_states, n_states))
        jp = np.zeros((n_states, n_params))
        rhs_jac_into(t, y, params, np.empty(n_states), jy, jp)
        return jy, jp

    return rhs, jac

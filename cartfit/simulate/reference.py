r"""The SciPy reference solver for every :class:`~cartfit.models.base.ODEModel`.

It integrates the model's log-state system

.. math::

    \frac{dy}{dt} = f(t, y; \theta), \qquad y(t_0) = y_0, \quad y = \ln(\text{states})

with :func:`scipy.integrate.solve_ivp` and tight default tolerances. Because the states are
logarithms, ten orders of magnitude in cell numbers are O(10) changes in ``y`` and no state can
become negative. The same ``rhs`` and ``jac`` feed the compiled inference solver, so this module
is the independent check of what the sampler sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from cartfit.models.base import ODEModel

_IMPLICIT = {"Radau", "BDF", "LSODA"}


class SolverError(RuntimeError):
    """The numerical integration failed (stiffness, overflow, non-finite values)."""


def _param_vector(model: ODEModel, params: Mapping[str, float] | Any) -> np.ndarray:
    if isinstance(params, Mapping):
        return model.pack(params)
    vector = np.asarray(params, dtype=float).reshape(-1)
    if vector.size != model.n_params:
        raise ValueError(
            f"model {model.name!r} takes {model.n_params} parameters "
            f"{model.parameter_names}, got {vector.size}"
        )
    return vector


def solve_reference(
    model: ODEModel,
    params: Mapping[str, float] | Any,
    log_y0: Any,
    times: Any,
    *,
    t0: float = 0.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str = "LSODA",
    max_evaluations: int = 500_000,
) -> np.ndarray:
    """Solve a model from ``t0`` and return its log states at ``times``.

    Parameters
    ----------
    model
        The model whose ``rhs`` (and, for implicit methods, ``jac``) is integrated.
    params
        Parameter values on the natural scale: a mapping name -> value or a vector in the
        order of ``model.parameter_names``.
    log_y0
        Log states at ``t0`` (scaled units), shape ``(n_states,)``.
    times
        Output times (days), non-decreasing and ``>= t0``.
    t0
        Start time (days).
    rtol, atol
        Tolerances of :func:`scipy.integrate.solve_ivp`; ``atol`` is absolute on log states,
        hence a relative tolerance on the states themselves.
    method
        Any ``solve_ivp`` method; ``Radau``, ``BDF`` and ``LSODA`` use the model's Jacobian.
    max_evaluations
        Give up (:class:`SolverError`) after this many right-hand side evaluations.

    Returns
    -------
    numpy.ndarray
        Log states, shape ``(len(times), n_states)``.

    Raises
    ------
    SolverError
        If the integrator fails, the derivative becomes non-finite or the evaluation budget is
        spent.
    """
    theta = _param_vector(model, params)
    y0 = np.asarray(log_y0, dtype=float).reshape(-1)
    if y0.size != model.n_states:
        raise ValueError(f"model {model.name!r} has {model.n_states} states, got {y0.size}")
    t_out = np.atleast_1d(np.asarray(times, dtype=float))
    if t_out.ndim != 1 or not np.all(np.isfinite(t_out)):
        raise ValueError("times must be a finite one-dimensional sequence")
    if np.any(np.diff(t_out) < 0) or (t_out.size and t_out[0] < t0):
        raise ValueError(f"times must be non-decreasing and >= t0 = {t0}")
    if not np.all(np.isfinite(y0)) or not np.all(np.isfinite(theta)):
        raise SolverError("non-finite initial state or parameter")
    if t_out.size == 0:
        return np.empty((0, model.n_states))
    if t_out[-1] == t0:
        return np.tile(y0, (t_out.size, 1))

    rhs, jac = model.rhs, model.jac
    n_calls = [0]

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        # stop at the first non-finite derivative: some integrators loop forever on inf/nan
        dy = rhs(t, y, theta)
        n_calls[0] += 1
        if not np.all(np.isfinite(dy)):
            raise FloatingPointError(f"non-finite derivative at t = {t:.6g}")
        if n_calls[0] > max_evaluations:
            raise FloatingPointError(f"more than {max_evaluations} right-hand side evaluations")
        return dy

    kwargs: dict[str, Any] = {}
    if method in _IMPLICIT:
        kwargs["jac"] = lambda t, y: jac(t, y, theta)[0]
    try:
        sol = solve_ivp(
            fun, (t0, t_out[-1]), y0, method=method, t_eval=t_out, rtol=rtol, atol=atol, **kwargs
        )
    except (FloatingPointError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise SolverError(f"{model.name}: integration failed: {exc}") from exc
    if not sol.success or sol.y.shape[1] != t_out.size:
        raise SolverError(f"{model.name}: integration failed: {sol.message}")
    out = sol.y.T
    if not np.all(np.isfinite(out)):
        raise SolverError(f"{model.name}: non-finite log state")
    return out


def solve_natural(
    model: ODEModel,
    params: Mapping[str, float] | Any,
    log_y0: Any,
    times: Any,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """Solve a model and return each observable on the natural (scaled-unit) scale.

    Returns a mapping analyte -> ``exp(observable(log states))`` at ``times``; keyword
    arguments are those of :func:`solve_reference`.
    """
    log_states = solve_reference(model, params, log_y0, times, **kwargs)
    return {name: np.exp(f(log_states, np)) for name, f in model.observables.items()}

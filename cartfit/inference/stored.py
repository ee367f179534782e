"""The quantities a fit stores at each draw, evaluated after sampling.

nutpie keeps only the sampler's own coordinates. The model's free variables (on their own
scale) and deterministics (the subjects' parameters ``theta``, the initial states ``log_y0``,
the population parameters) are evaluated here from the draws' raveled unconstrained
coordinates :math:`x`, all draws in one call: the model's graph vectorised over a leading draw
axis (``pytensor.graph.replace.vectorize_graph``) and run by PyTensor's Python linker, which
compiles nothing. Stored by nutpie, they were compiled by numba into its second callback at
the first fit of each model structure on a machine (11.6 s of data/example's 16-subject
population fit, 4.2 s of a one-subject fit). The observations' predicted means ``mu_obs`` are
left to :func:`cartfit.inference.likelihood.predicted_means`, which runs the sampler's own
compiled likelihood kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import vectorize_graph

#: deterministics that are not stored per draw (see the module docstring)
NOT_STORED = ("mu_obs",)


def stored_names(pm_model: pm.Model) -> list[str]:
    """The free variables, then the deterministics, that a fit stores per draw."""
    names = [rv.name for rv in pm_model.free_RVs]
    return names + [d.name for d in pm_model.deterministics if d.name not in NOT_STORED]


def stored_function(pm_model: pm.Model, point_map_info) -> Callable[[np.ndarray], dict]:
    """``f(x)`` with ``x`` (n_draws, n_coordinates) laid out as ``point_map_info`` (the raveled
    value variables of ``pm_model``) returning ``{name: (n_draws, *shape)}`` for every name of
    :func:`stored_names`."""
    names = stored_names(pm_model)
    outputs = pm_model.replace_rvs_by_values([pm_model[n] for n in names])
    x = pt.matrix("x", dtype="float64")
    replace, offset = {}, 0
    for value, (_, shape, size, _) in zip(pm_model.value_vars, point_map_info, strict=True):
        replace[value] = x[:, offset : offset + size].reshape((-1, *shape))
        offset += size
    fn = pytensor.function(
        [x], vectorize_graph(outputs, replace), mode="FAST_COMPILE", on_unused_input="ignore"
    )

    def evaluate(xs: np.ndarray) -> dict[str, np.ndarray]:
        xs = np.array(xs, dtype=float).reshape(-1, offset)
        return {n: np.asarray(v) for n, v in zip(names, fn(xs), strict=True)}

    return evaluate

r"""PyTensor Op around the compiled sensitivity solver, with a numba implementation.

``ODESolveOp()(log_params, log_y0, times, n_times) -> (ys, sens, status)``

* ``ys`` (n_subjects, n_times, n_states): log states at the output times;
* ``sens`` (n_subjects, n_times, n_states, n_params + n_states): forward sensitivities
  :math:`\partial y / \partial (\ln p, y_0)`;
* ``status`` (n_subjects,): 0 = solved, 1 = failed (outputs zeroed).

The pullback (vector–Jacobian product) contracts the cotangent of ``ys`` with ``sens``:

.. math::

    \bar\theta_{s q} = \sum_{t, i} \bar y_{s t i}\, S_{s t i q}

so one forward solve with sensitivities gives the log density and its gradient. The numba
dispatch lets nutpie's numba backend call the solver without going back into Python.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

from cartfit.inference.solver import get_batch_solver
from cartfit.models import get_model
from cartfit.models.base import ODEModel


class SolveOp(Op):
    """An Op that solves a registered model's ODE: its name, growth law, solver tolerances and
    step limit, and whether the forward sensitivities are solved (the props of every such Op,
    so :func:`cartfit.inference.divergences.without_sensitivities` can rebuild any of them)."""

    __props__ = ("model_name", "growth", "rtol", "atol", "max_steps", "sensitivities")

    def __init__(
        self,
        model_name: str,
        growth: str,
        rtol: float = 1e-6,
        atol: float = 1e-6,
        max_steps: int = 2_000,
        sensitivities: bool = True,
    ):
        self.model_name = model_name
        self.growth = growth
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.max_steps = int(max_steps)
        self.sensitivities = bool(sensitivities)

    @property
    def model(self) -> ODEModel:
        return get_model(self.model_name, self.growth)


class ODESolveOp(SolveOp):
    """Batch ODE solve with forward sensitivities for a registered model.

    ``sensitivities=False`` makes the Python implementation (``perform``) solve without them
    and return zeros in their place, with the solver that the analyses use
    (:func:`cartfit.inference.predict.solve_draws`): for evaluations that need no gradient."""

    def make_node(self, log_params, log_y0, times, n_times):
        log_params = pt.as_tensor_variable(log_params, dtype="float64")
        log_y0 = pt.as_tensor_variable(log_y0, dtype="float64")
        times = pt.as_tensor_variable(times, dtype="float64")
        n_times = pt.as_tensor_variable(n_times, dtype="int64")
        outputs = [
            pt.tensor3(dtype="float64"),
            pt.tensor(dtype="float64", shape=(None, None, None, None)),
            pt.lvector(),
        ]
        return Apply(self, [log_params, log_y0, times, n_times], outputs)

    def perform(self, node, inputs, output_storage):
        solve = get_batch_solver(self.model, self.sensitivities)
        log_params, log_y0, times, n_times = inputs
        ys, sens, status = solve(
            np.ascontiguousarray(log_params),
            np.ascontiguousarray(log_y0),
            np.ascontiguousarray(times),
            np.ascontiguousarray(n_times),
            self.rtol,
            self.atol,
            self.max_steps,
        )
        if not self.sensitivities:
            n_q = self.model.n_params + self.model.n_states
            sens = np.zeros((*ys.shape, n_q))
        output_storage[0][0] = ys
        output_storage[1][0] = sens
        output_storage[2][0] = status

    def infer_shape(self, node, shapes):
        lp, y0, times, _ = shapes
        n_q = self.model.n_params + self.model.n_states
        return [
            (times[0], times[1], y0[1]),
            (times[0], times[1], y0[1], n_q),
            (times[0],),
        ]

    def connection_pattern(self, node):
        return [
            [True, False, False],
            [True, False, False],
            [False, False, False],
            [False, False, False],
        ]

    def pullback(self, inputs, outputs, cotangents):
        log_params, log_y0, times, n_times = inputs
        g_ys = cotangents[0]
        n_p = self.model.n_params
        if isinstance(g_ys.type, DisconnectedType):
            g_theta = pt.zeros((log_params.shape[0], n_p + self.model.n_states))
        else:
            sens = outputs[1]
            g_theta = (sens * g_ys[..., None]).sum(axis=(1, 2))
        return [
            g_theta[:, :n_p],
            g_theta[:, n_p:],
            DisconnectedType()(),
            DisconnectedType()(),
        ]


@register_funcify_and_cache_key(ODESolveOp)
def _numba_funcify_ode_solve(op, node=None, **kwargs):
    solve = get_batch_solver(op.model, True)
    rtol, atol, max_steps = op.rtol, op.atol, op.max_steps
    import numba

    @numba.njit(error_model="numpy")
    def ode_solve(log_params, log_y0, times, n_times):
        return solve(
            np.ascontiguousarray(log_params),
            np.ascontiguousarray(log_y0),
            np.ascontiguousarray(times),
            np.ascontiguousarray(n_times),
            rtol,
            atol,
            max_steps,
        )

    return ode_solve, _cache_key(op)


def _cache_key(op: ODESolveOp) -> str:
    """Key for PyTensor's numba cache: the Op's props and the source of everything it compiles."""
    from cartfit.inference.solver import source_digest

    return (
        f"cartfit-ode-{op.model_name}-{op.growth}-{op.rtol}-{op.atol}-{op.max_steps}-"
        f"{source_digest()}"
    )

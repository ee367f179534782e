r"""The whitening map :math:`x = \hat x + L w` of :mod:`cartfit.inference.whiten` as one compiled
PyTensor Op, and its transpose as the Op's gradient.

With the population coordinates :math:`p` (indices ``pop_idx``) and each subject's coordinates
:math:`s` (rows of ``subj_idx``),

.. math::

    x_p = \hat x_p + L_S w_p, \qquad x_s = \hat x_s + L_s w_s + G_s w_p,

and the pullback of a cotangent :math:`\bar x` is :math:`\bar w = L^\top \bar x`:

.. math::

    \bar w_p = L_S^\top \bar x_p + \sum_s G_s^\top \bar x_s, \qquad \bar w_s = L_s^\top \bar x_s.

Written as PyTensor nodes (gathers, a dot product, broadcast products and sums, a join, a
permutation, and their gradients) the map made up most of the compiled graph: on a one-subject
fit 46 of its 74 nodes (the model without the map compiled 11.7 s faster the first time on a
machine). As this Op, a loop over the arrow's blocks and its transpose, the first compile of
that fit took 37.8 s instead of 45.8 s.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_and_cache_key

from cartfit.inference.solver import JIT

#: the compiled Ops' key in PyTensor's numba cache changes with this file
_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@numba.njit(cache=True, **JIT)
def arrow_apply(w, loc, pop, subj, coupling, pop_idx, subj_idx):
    """:math:`x = \\hat x + L w` (module docstring)."""
    x = loc.copy()
    n_p = pop_idx.shape[0]
    wp = np.empty(n_p)
    for j in range(n_p):
        wp[j] = w[pop_idx[j]]
    for i in range(n_p):
        acc = 0.0
        for j in range(n_p):
            acc += pop[i, j] * wp[j]
        x[pop_idx[i]] += acc
    n_s, k = subj_idx.shape
    for s in range(n_s):
        for i in range(k):
            acc = 0.0
            for j in range(k):
                acc += subj[s, i, j] * w[subj_idx[s, j]]
            for q in range(n_p):
                acc += coupling[s, i, q] * wp[q]
            x[subj_idx[s, i]] += acc
    return x


@numba.njit(cache=True, **JIT)
def arrow_transpose(g, pop, subj, coupling, pop_idx, subj_idx):
    """:math:`L^\\top \\bar x` (module docstring)."""
    out = np.zeros(g.shape[0])
    n_p = pop_idx.shape[0]
    for j in range(n_p):
        acc = 0.0
        for i in range(n_p):
            acc += pop[i, j] * g[pop_idx[i]]
        out[pop_idx[j]] = acc
    n_s, k = subj_idx.shape
    for s in range(n_s):
        for j in range(k):
            acc = 0.0
            for i in range(k):
                acc += subj[s, i, j] * g[subj_idx[s, i]]
            out[subj_idx[s, j]] += acc
        for q in range(n_p):
            acc = 0.0
            for i in range(k):
                acc += coupling[s, i, q] * g[subj_idx[s, i]]
            out[pop_idx[q]] += acc
    return out


def _inputs(*values):
    """Float64 tensors, then the two index arrays as int64."""
    *floats, pop_idx, subj_idx = values
    indices = [
        v if isinstance(v, Variable) else np.asarray(v, dtype=np.int64) for v in (pop_idx, subj_idx)
    ]
    return [pt.as_tensor_variable(v, dtype="float64") for v in floats] + [
        pt.as_tensor_variable(v, dtype="int64") for v in indices
    ]


class ArrowTransposeOp(Op):
    """``(x̄, L_S, L_s, G_s, pop_idx, subj_idx) -> Lᵀ x̄`` (the gradient of :class:`ArrowMapOp`)."""

    __props__ = ()

    def make_node(self, g, pop, subj, coupling, pop_idx, subj_idx):
        inputs = _inputs(g, pop, subj, coupling, pop_idx, subj_idx)
        return Apply(self, inputs, [pt.tensor(dtype="float64", shape=inputs[0].type.shape)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = arrow_transpose(*[np.ascontiguousarray(v) for v in inputs])

    def infer_shape(self, node, shapes):
        return [shapes[0]]

    def pullback(self, inputs, outputs, cotangents):
        return [grad_undefined(self, i, inputs[i], "not needed") for i in range(len(inputs))]


class ArrowMapOp(Op):
    """``(w, x̂, L_S, L_s, G_s, pop_idx, subj_idx) -> x = x̂ + L w``; differentiable in ``w``
    only (the rest are the whitening's constants)."""

    __props__ = ()

    def make_node(self, w, loc, pop, subj, coupling, pop_idx, subj_idx):
        inputs = _inputs(w, loc, pop, subj, coupling, pop_idx, subj_idx)
        return Apply(self, inputs, [pt.tensor(dtype="float64", shape=inputs[0].type.shape)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = arrow_apply(*[np.ascontiguousarray(v) for v in inputs])

    def infer_shape(self, node, shapes):
        return [shapes[1]]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in range(6)]

    def pullback(self, inputs, outputs, cotangents):
        (g,) = cotangents
        _, _, pop, subj, coupling, pop_idx, subj_idx = inputs
        if isinstance(g.type, DisconnectedType):
            grad_w = pt.zeros_like(inputs[0])
        else:
            grad_w = ArrowTransposeOp()(g, pop, subj, coupling, pop_idx, subj_idx)
        return [grad_w] + [DisconnectedType()() for _ in range(6)]


@register_funcify_and_cache_key(ArrowMapOp)
def _numba_funcify_arrow_map(op, node=None, **kwargs):
    return arrow_apply, f"cartfit-arrow-map-{_DIGEST}"


@register_funcify_and_cache_key(ArrowTransposeOp)
def _numba_funcify_arrow_transpose(op, node=None, **kwargs):
    return arrow_transpose, f"cartfit-arrow-transpose-{_DIGEST}"
